"""The `corecircle` command as other tools use it: JSON lines in, JSON lines out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from storage.scripts import ScriptLibrary

CLI = [sys.executable, "-m", "bot.cli"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_pii_mask_jsonl() -> None:
    lines = [
        {"text": "我手机13812345678，身份证110101199003071234"},
        {"text": "保单号CC2024000123，金额12000元，热线95519"},
    ]
    out = run("pii", "mask", "--jsonl", stdin="\n".join(json.dumps(x) for x in lines))
    assert out.returncode == 0, out.stderr
    masked = [json.loads(line)["masked"] for line in out.stdout.splitlines()]
    assert masked[0] == "我手机138****5678，身份证110***********1234"
    assert masked[1] == lines[1]["text"]


def test_pii_mask_rejects_bad_lines_clearly() -> None:
    out = run("pii", "mask", "--jsonl", stdin='{"nope": 1}\n')
    assert out.returncode != 0
    assert "line 1" in out.stderr


def test_nlu_parse_jsonl_one_parse_per_line() -> None:
    stdin = "\n".join(json.dumps({"text": t}) for t in ["我要投诉", "明天下午三点给我回个电话"])
    out = run("nlu", "parse", "--jsonl", "--now", "2026-11-23T10:00:00+08:00", stdin=stdin)
    assert out.returncode == 0, out.stderr
    parses = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(parses) == 2
    assert parses[0]["intent"]["name"] == "complaint"
    times = [e for e in parses[1]["entities"] if e["entity"] == "time"]
    assert times[0]["value"] == "2026-11-24T15:00:00+08:00"


def test_scripts_lint_passes_and_export_lists_examples() -> None:
    lint = run("scripts", "lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    export = run("scripts", "export", "--jsonl")
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert len(rows) > 27 * 40
    assert {"text", "intent"} == set(rows[0])
    assert {r["intent"] for r in rows} == set(ScriptLibrary().intents)


@pytest.mark.parametrize("args", [["nope"], ["nlu"], []])
def test_bad_usage_exits_nonzero(args: list[str]) -> None:
    assert run(*args).returncode != 0
