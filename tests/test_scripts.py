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
    assert set(catalogue) <= set(scripts.intents)  # ours may go further (bot_identity)
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


def test_admin_reloads_scripts_without_a_restart(
    make_client: object, database_url: str, scratch: Path
) -> None:
    from bot.auth import hash_password  # noqa: PLC0415
    from storage.db import transaction  # noqa: PLC0415
    from storage.enums import UserRole  # noqa: PLC0415
    from storage.models import User  # noqa: PLC0415
    from tests.conftest import Chat, login  # noqa: PLC0415

    client = make_client(database_url=database_url)  # type: ignore[operator]
    svc = client.app.state.services
    svc.scripts = ScriptLibrary(scratch)  # serve from a copy we may edit
    with transaction(svc.sessions) as s:
        s.add(User(username="root", password_hash=hash_password("pw"), role=UserRole.ADMIN))
    path = scratch / "intents" / "chitchat.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["intents"]["chitchat.greet"]["responses"]["reply"] = {
        "version": 7, "text": "{honorific}您好，新版问候已上线～"
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    # Agents may not reload; admins may.
    refused = client.post("/api/v1/admin/scripts/reload", headers=login(client, "demo-agent"))
    assert refused.status_code == 403
    r = client.post("/api/v1/admin/scripts/reload", headers=login(client, "root", "pw"))
    assert r.status_code == 200, r.text
    out = Chat(client).say("demo-customer", "你好", at_bot=True)
    assert "新版问候已上线" in out["replies"][0]["text"]


def test_admin_reload_refuses_a_broken_library(
    make_client: object, database_url: str, scratch: Path
) -> None:
    from bot.auth import hash_password  # noqa: PLC0415
    from storage.db import transaction  # noqa: PLC0415
    from storage.enums import UserRole  # noqa: PLC0415
    from storage.models import User  # noqa: PLC0415
    from tests.conftest import login  # noqa: PLC0415

    client = make_client(database_url=database_url)  # type: ignore[operator]
    svc = client.app.state.services
    before = svc.scripts
    svc.scripts = ScriptLibrary(scratch)
    with transaction(svc.sessions) as s:
        s.add(User(username="root", password_hash=hash_password("pw"), role=UserRole.ADMIN))
    (scratch / "compliance.yaml").write_text("forbidden: [您好]\n", encoding="utf-8")
    r = client.post("/api/v1/admin/scripts/reload", headers=login(client, "root", "pw"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "SCRIPTS_INVALID"
    assert svc.pipeline.scripts is before  # the last good library keeps serving
