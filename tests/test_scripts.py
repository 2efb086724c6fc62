"""The script library: complete for the catalogue, compliant, renderable, reloadable."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from storage.scripts import MIN_EXAMPLES, REQUIRED_KEYS, ScriptError, ScriptLibrary

CATALOGUE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "intents.yaml"


def test_the_library_lints_clean(scripts: ScriptLibrary) -> None:
    assert scripts.lint() == []


def test_every_catalogue_intent_has_scripts_and_enough_examples(scripts: ScriptLibrary) -> None:
    if not CATALOGUE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CATALOGUE} is missing: CI runs beside shared/")
        pytest.skip("shared/spec not beside this checkout")
    catalogue = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))["intents"]
    assert set(catalogue) == set(scripts.intents)
    for intent_id, spec in catalogue.items():
        ours = scripts.intents[intent_id]
        assert ours.action == spec["action"], intent_id
        assert len(ours.examples) >= MIN_EXAMPLES, intent_id
        for key in REQUIRED_KEYS[ours.action]:
            assert scripts.has(f"{intent_id}.{key}"), f"{intent_id}.{key}"


def test_rendering_fills_variables_and_records_the_version(scripts: ScriptLibrary) -> None:
    r = scripts.render("policy.surrender.holding", {"agent_name": "李娜", "honorific": "王先生",
                                                    "bot_name": "小助手", "customer_name": "王建国",
                                                    "speaker_name": "王建国"})
    assert "李娜" in r.text
    assert "{" not in r.text
    assert r.script_id == "policy.surrender.holding"
    assert r.version >= 1


def test_rendering_without_a_needed_variable_is_a_clear_error(scripts: ScriptLibrary) -> None:
    with pytest.raises(ScriptError, match="needs"):
        scripts.render("support.new_ticket", {"ticket_id": 1})
    with pytest.raises(ScriptError, match="no script"):
        scripts.render("no.such.script", {})


@pytest.fixture
def scratch(tmp_path: Path, scripts: ScriptLibrary) -> Path:
    root = tmp_path / "scripts_zh"
    shutil.copytree(scripts.root, root)
    return root


def test_lint_refuses_promises_and_unknown_variables(scratch: Path) -> None:
    path = scratch / "intents" / "policy.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["intents"]["policy.loan"]["responses"]["reply"] = {
        "version": 2, "text": "放心，这款保本保息，{unknown_thing}"
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    problems = ScriptLibrary(scratch).lint()
    assert any("保本保息" in p for p in problems)
    assert any("unknown_thing" in p for p in problems)


def test_lint_requires_the_responses_of_an_action(scratch: Path) -> None:
    path = scratch / "intents" / "premium.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["intents"]["premium.due"]["responses"]["not_authorized"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert any("not_authorized" in p for p in ScriptLibrary(scratch).lint())


def test_scripts_reload_when_files_change(scratch: Path) -> None:
    lib = ScriptLibrary(scratch)
    assert lib.reload_if_changed() is False
    path = scratch / "common.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["responses"]["rating.thanks"] = {"version": 9, "text": "谢谢您的{rating}星评价！"}
    time.sleep(0.01)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert lib.reload_if_changed() is True
    assert lib.render("rating.thanks", {"rating": 5}).version == 9
