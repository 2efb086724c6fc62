"""The README documents every setting, and CI runs the README's test command."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"| {name} |" not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert "make run" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
