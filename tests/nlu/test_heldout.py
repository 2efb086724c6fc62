"""The held-out sets stay held out: nothing in them is a training example, and training never
reads them."""

from __future__ import annotations

import json
from pathlib import Path

from bot.nlu.normalize import normalize
from storage.scripts import ScriptLibrary

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "benchmarks" / "data"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_no_heldout_message_is_a_training_example() -> None:
    library = ScriptLibrary()
    known = {normalize(t) for t, _ in library.examples()}
    rows = _rows("heldout_v2.jsonl")
    assert len(rows) >= 600
    assert {r["intent"] for r in rows} <= set(library.intents)
    assert [r["text"] for r in rows if normalize(r["text"]) in known] == []
    assert len({r["text"] for r in rows}) == len(rows)


def test_time_heldout_is_not_in_the_unit_tests() -> None:
    rows = _rows("time_heldout.jsonl")
    assert len(rows) >= 60
    unit = (ROOT / "tests" / "nlu" / "test_timeparse.py").read_text(encoding="utf-8")
    assert [r["text"] for r in rows if f'"{r["text"]}"' in unit] == []


def test_nothing_outside_benchmarks_reads_the_heldout_files() -> None:
    for package in ("bot", "storage", "escalation", "scripts_zh"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "heldout" not in text, path
            assert "benchmarks/data" not in text, path
