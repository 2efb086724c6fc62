"""Bad input gets a 4xx with a stable code and a reason; nothing is half-written."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from storage.models import Message

GOOD = {
    "chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
    "text": "你好", "msg_id": "b-1", "mentions": ["小助手"],
}


def _messages(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as c:
        n = int(c.execute(select(func.count()).select_from(Message)).scalar_one())
    engine.dispose()
    return n


def _error(r: object) -> dict[str, str]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert body["error"]["code"]
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_malformed_json_is_400(client: TestClient, database_url: str) -> None:
    r = client.post("/api/v1/messages", content=b'{"chat_id": "demo-fa',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert _error(r)["code"] == "BAD_JSON"
    assert _messages(database_url) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "chat_id"}, "chat_id"),
        ({k: v for k, v in GOOD.items() if k != "msg_id"}, "msg_id"),
        ({**GOOD, "text": 123}, "text"),
        ({**GOOD, "mentions": "小助手"}, "mentions"),
        ({**GOOD, "chat_id": ""}, "chat_id"),
        ({**GOOD, "ts": "yesterday-ish"}, "ts"),
    ],
)
def test_wrong_fields_are_422_naming_the_field(
    client: TestClient, database_url: str, body: dict[str, object], field: str
) -> None:
    r = client.post("/api/v1/messages", json=body)
    assert r.status_code == 422
    err = _error(r)
    assert err["code"] == "VALIDATION_ERROR"
    assert field in err["message"]
    assert _messages(database_url) == 0


def test_not_an_object_is_422(client: TestClient) -> None:
    r = client.post("/api/v1/messages", json=["a", "b"])
    assert r.status_code == 422


def test_extra_fields_are_ignored(client: TestClient) -> None:
    r = client.post("/api/v1/messages", json={**GOOD, "msg_id": "x-extra", "colour": "blue"})
    assert r.status_code == 200


def test_unknown_circle_is_404_and_nothing_is_stored(
    client: TestClient, database_url: str
) -> None:
    r = client.post("/api/v1/messages", json={**GOOD, "chat_id": "nobody-here"})
    assert r.status_code == 404
    assert _error(r)["code"] == "CIRCLE_UNKNOWN"
    assert _messages(database_url) == 0


def test_oversized_text_is_413(client: TestClient, database_url: str) -> None:
    r = client.post("/api/v1/messages", json={**GOOD, "text": "保" * 4001})
    assert r.status_code == 413
    assert _error(r)["code"] == "TEXT_TOO_LONG"
    assert _messages(database_url) == 0


def test_body_over_the_cap_is_refused_before_reading(client: TestClient) -> None:
    r = client.post("/api/v1/messages", content=b"x" * (65 * 1024),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert _error(r)["code"] == "BODY_TOO_LARGE"


def test_chunked_body_over_the_cap_is_refused(client: TestClient) -> None:
    def chunks() -> object:
        for _ in range(40):
            yield b"x" * 4096

    r = client.post("/api/v1/messages", content=chunks(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("text", ["", "😀😀😀", "？？？！！！", "\x00\x01\x02\ufffd", "a" * 4000])
def test_junk_text_never_crashes(client: TestClient, text: str) -> None:
    r = client.post("/api/v1/messages", json={**GOOD, "msg_id": f"junk-{hash(text)}", "text": text})
    assert r.status_code == 200
    assert isinstance(r.json()["replies"], list)


def test_wrong_method_and_unknown_route(client: TestClient) -> None:
    assert client.get("/api/v1/messages").status_code == 405
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404
    assert _error(r)["code"] == "NOT_FOUND"


def test_database_outage_is_a_clear_503(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    client = make_client(database_url=database_url)
    svc = client.app.state.services  # type: ignore[attr-defined]
    # Point the sessions at a closed port: what a PostgreSQL outage looks like to us.
    from storage.db import make_engine, make_sessionmaker  # noqa: PLC0415

    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    svc.pipeline.sessions = make_sessionmaker(dead)
    r = client.post("/api/v1/messages", json={**GOOD, "msg_id": "db-down"})
    assert r.status_code == 503
    assert _error(r)["code"] == "DB_UNAVAILABLE"
    assert r.headers["retry-after"]
    assert "Traceback" not in r.text
    dead.dispose()


def test_hostile_text_is_stored_verbatim_and_harms_nothing(
    client: TestClient, database_url: str
) -> None:
    """P13: SQL and markup in a message or a name are data, bound as parameters."""
    from tests.conftest import login  # noqa: PLC0415

    hostile = "'; DROP TABLE tickets;-- <script>alert(1)</script>"
    r = client.post("/api/v1/messages", json={
        **GOOD, "msg_id": "p13", "text": hostile, "sender_name": "<img src=x onerror=alert(1)>",
    })
    assert r.status_code == 200
    rows = client.get("/api/v1/circles/demo-family/messages",
                      headers=login(client, "demo-agent")).json()
    assert any(m["text"] == hostile for m in rows)
    assert _messages(database_url) >= 1  # the messages table is still there ...
    tickets = client.get("/api/v1/tickets", headers=login(client, "demo-agent"))
    assert tickets.status_code == 200  # ... and so is the tickets table
