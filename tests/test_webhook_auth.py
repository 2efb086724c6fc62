"""Only the bridge speaks for members: the signed webhook, the action-server token, ops data."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from bot.app import InsecureConfig, create_app
from bot.cli import main
from bot.settings import Settings
from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from storage.models import Message
from tests.conftest import Chat, post_signed

SECRET = "bridge-s3cret"
ASK = {"chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
       "text": "@小助手 下次保费什么时候交", "msg_id": "sig-1", "mentions": ["小助手"]}


def _stored(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as c:
        n = int(c.execute(select(func.count()).select_from(Message)).scalar_one())
    engine.dispose()
    return n


@pytest.fixture
def signed(make_client: Callable[..., TestClient], database_url: str) -> TestClient:
    return make_client(database_url=database_url, webhook_secret=SECRET)


def _post(client: TestClient, raw: bytes, **headers: str) -> object:
    return client.post("/api/v1/messages", content=raw,
                       headers={"content-type": "application/json", **headers})


def test_a_signed_message_is_answered(signed: TestClient) -> None:
    r = post_signed(signed, ASK, SECRET)
    assert r.status_code == 200, r.text
    assert any(reply["to"] == "demo-customer" for reply in r.json()["replies"])


def test_chat_helper_signs_every_message(signed: TestClient) -> None:
    chat = Chat(signed, secret=SECRET)
    assert chat.say("demo-customer", "下次保费什么时候交", at_bot=True)["replies"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "HOOK_SIG_MISSING"),
        ({TIMESTAMP_HEADER: "{now}"}, "HOOK_SIG_MISSING"),
        ({SIGNATURE_HEADER: "{good}"}, "HOOK_SIG_MISSING"),
        ({TIMESTAMP_HEADER: "{now}", SIGNATURE_HEADER: "v1=" + "0" * 64}, "HOOK_SIG_INVALID"),
        ({TIMESTAMP_HEADER: "{now}", SIGNATURE_HEADER: "sha256={legacy}"}, "HOOK_SIG_INVALID"),
        ({TIMESTAMP_HEADER: "{old}", SIGNATURE_HEADER: "{sig_old}"}, "HOOK_TS_STALE"),
        ({TIMESTAMP_HEADER: "{ahead}", SIGNATURE_HEADER: "{sig_ahead}"}, "HOOK_TS_STALE"),
        ({TIMESTAMP_HEADER: "yesterday", SIGNATURE_HEADER: "{good}"}, "HOOK_TS_STALE"),
        ({TIMESTAMP_HEADER: "9" * 40, SIGNATURE_HEADER: "{good}"}, "HOOK_TS_STALE"),
    ],
)
def test_unsigned_stale_or_forged_messages_are_401_and_nothing_is_stored(
    signed: TestClient, database_url: str, headers: dict[str, str], code: str
) -> None:
    """Posting as the holder without the bridge's secret gets nothing, not even a reply."""
    raw = json.dumps(ASK).encode()
    now = int(time.time())
    values = {
        "now": str(now), "old": str(now - 301), "ahead": str(now + 301),
        "good": signature(SECRET, str(now), raw),
        "sig_old": signature(SECRET, str(now - 301), raw),
        "sig_ahead": signature(SECRET, str(now + 301), raw),
        "legacy": signature(SECRET, str(now), raw).removeprefix("v1="),
    }
    filled = {k: v.format(**values) for k, v in headers.items()}
    r = _post(signed, raw, **filled)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == code
    assert _stored(database_url) == 0


def test_a_signature_for_another_body_is_refused(signed: TestClient) -> None:
    now = str(int(time.time()))
    raw = json.dumps(ASK).encode()
    other = json.dumps({**ASK, "sender_id": "demo-agent"}).encode()
    r = _post(signed, other, **{TIMESTAMP_HEADER: now,
                                SIGNATURE_HEADER: signature(SECRET, now, raw)})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "HOOK_SIG_INVALID"


def test_authentication_comes_before_anything_else(signed: TestClient) -> None:
    """An unknown circle, broken JSON or a wrong content type: 401 first, never 404/400/415."""
    unknown = json.dumps({**ASK, "chat_id": "no-such-circle"}).encode()
    for raw, ctype in ((unknown, "application/json"), (b'{"chat_id": "de', "application/json"),
                       (unknown, "text/plain")):
        r = signed.post("/api/v1/messages", content=raw, headers={"content-type": ctype})
        assert r.status_code == 401, (raw, r.text)
        assert r.json()["error"]["code"] == "HOOK_SIG_MISSING"


def test_signed_but_not_json_is_415(signed: TestClient) -> None:
    raw = json.dumps(ASK).encode()
    now = str(int(time.time()))
    r = signed.post("/api/v1/messages", content=raw, headers={
        "content-type": "text/plain", TIMESTAMP_HEADER: now,
        SIGNATURE_HEADER: signature(SECRET, now, raw)})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_without_a_secret_outside_demo_the_service_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfig, match="CORECIRCLE_WEBHOOK_SECRET"):
        create_app(Settings(data_dir=tmp_path))


def test_insecure_webhook_starts_with_a_loud_warning_every_time(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        client = make_client(demo=False, insecure_webhook=True)
    assert client.get("/healthz").status_code == 200
    assert any("INSECURE WEBHOOK" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_cli_refuses_without_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CORECIRCLE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CORECIRCLE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SystemExit, match="--insecure-webhook"):
        main(["serve", "--port", "1"])
    # demo mode stays open on loopback only
    with pytest.raises(SystemExit, match=r"0\.0\.0\.0"):
        main(["serve", "--demo", "--host", "0.0.0.0", "--port", "1"])


def _rasa_call() -> dict[str, object]:
    return {"next_action": "action_cancel_form", "sender_id": "u",
            "tracker": {"sender_id": "u", "slots": {}, "latest_message": {}, "events": []}}


def test_action_server_needs_its_token_when_configured(
    make_client: Callable[..., TestClient]
) -> None:
    client = make_client(action_token="rasa-t0ken")
    for bad in ("/webhook", "/webhook?token=wrong"):
        r = client.post(bad, json=_rasa_call())
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "ACTION_TOKEN_INVALID"
    assert client.get("/actions").status_code == 401
    assert client.post("/webhook?token=rasa-t0ken", json=_rasa_call()).status_code == 200


def test_metrics_and_readiness_details_can_be_restricted(
    make_client: Callable[..., TestClient]
) -> None:
    client = make_client(ops_token="ops-t0ken")
    r = client.get("/metrics")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "OPS_TOKEN_REQUIRED"
    ops = {"Authorization": "Bearer ops-t0ken"}
    assert "corecircle_" in client.get("/metrics", headers=ops).text
    assert set(client.get("/readyz").json()) == {"status"}
    assert "database" in client.get("/readyz", headers=ops).json()
    open_client = make_client(data_dir=client.app.state.services.settings.data_dir / "x")  # type: ignore[attr-defined]
    assert "database" in open_client.get("/readyz").json()
