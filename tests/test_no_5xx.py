"""No input makes it fail: hostile ids, calendar edges, lone surrogates, garbage slots, wrong
content types: all 4xx with the standard envelope, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from storage.models import Ticket
from tests.channels.wx import PLAIN_APP, plain_request, text_xml
from tests.conftest import Chat, login

EDGES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00"]
BIG = str(2**63)
MSG = {"chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
       "text": "你好", "msg_id": "edge", "mentions": []}


def _envelope(r: Any, status: int | tuple[int, ...]) -> str:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert set(body["error"]) >= {"code", "message"}
    return str(body["error"]["code"])


@pytest.fixture
def app(make_client: Callable[..., TestClient], tmp_path: Any) -> TestClient:
    return make_client(database_url=f"sqlite:///{tmp_path / 'edge.db'}", scheduler_enabled=False,
                       wechat_apps=PLAIN_APP)


def _ticket(app: TestClient) -> int:
    out = Chat(app).say("demo-customer", "转人工", at_bot=True)
    return int(out["ticket_id"])


@pytest.mark.parametrize("path", [
    f"/api/v1/tickets/{BIG}", f"/api/v1/tickets/-{BIG}", "/api/v1/tickets/99999999999999999999999",
])
def test_ids_beyond_int64_are_422(app: TestClient, path: str) -> None:
    r = app.get(path, headers=login(app, "demo-supervisor"))
    assert _envelope(r, 422) == "VALIDATION_ERROR"
    r = app.post(f"/api/v1/followups/{BIG}/cancel", headers=login(app, "demo-supervisor"))
    assert _envelope(r, 422) == "VALIDATION_ERROR"
    r = app.get(f"/api/v1/followups?ticket_id={BIG}", headers=login(app, "demo-supervisor"))
    assert _envelope(r, 422) == "VALIDATION_ERROR"


@pytest.mark.parametrize("edge", EDGES)
def test_calendar_edges_are_422(app: TestClient, edge: str) -> None:
    boss = login(app, "demo-supervisor")
    ticket_id = _ticket(app)
    r = app.post(f"/api/v1/tickets/{ticket_id}/followups", headers=boss,
                 json={"due_at": edge, "text": "回电"})
    _envelope(r, 422)
    r = app.get("/api/v1/followups", params={"due_before": edge}, headers=boss)
    _envelope(r, (400, 422))
    _envelope(app.post("/model/parse", json={"text": "明天下午三点", "now": edge}), 422)


@pytest.mark.parametrize("edge", EDGES)
def test_an_absurd_ts_is_422_and_opens_no_ticket(app: TestClient, edge: str) -> None:
    r = app.post("/api/v1/messages", json={**MSG, "msg_id": f"ts-{edge}", "ts": edge,
                                           "text": "@小助手 明天下午三点提醒我"})
    assert _envelope(r, 422) == "VALIDATION_ERROR"
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0


@pytest.mark.parametrize("create_time", ["99999999999999999999", "-99999999999", "253402300800"])
def test_wechat_create_time_at_the_edges_is_4xx(app: TestClient, create_time: str) -> None:
    xml = text_xml("你好").replace(
        f"<CreateTime>{text_xml('x').split('<CreateTime>')[1].split('<')[0]}</CreateTime>", "")
    xml = xml.replace("<MsgType>", f"<CreateTime>{create_time}</CreateTime><MsgType>", 1)
    query, body = plain_request(xml)
    r = app.post("/wechat/plain", params=query, content=body,
                 headers={"Content-Type": "text/xml"})
    _envelope(r, 400)


@pytest.mark.parametrize(("path", "template"), [
    ("/api/v1/messages", '{"chat_id": "demo-family", "sender_id": "demo-customer", '
     '"text": "%s", "msg_id": "sur-1"}'),
    ("/api/v1/messages", '{"chat_id": "demo-family", "sender_id": "demo-customer", '
     '"text": "hi", "msg_id": "%s"}'),
    ("/model/parse", '{"text": "%s"}'),
])
@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udfff", "a\\udc00b"])
def test_lone_surrogates_are_400(app: TestClient, path: str, template: str,
                                 surrogate: str) -> None:
    r = app.post(path, content=(template % surrogate).encode(),
                 headers={"content-type": "application/json"})
    assert _envelope(r, 400) == "BAD_JSON"


def test_lone_surrogates_in_console_bodies_are_400(app: TestClient) -> None:
    ticket_id = _ticket(app)
    r = app.post(f"/api/v1/tickets/{ticket_id}/notes", content=b'{"text": "\\ud800"}',
                 headers={**login(app, "demo-agent"), "content-type": "application/json"})
    assert _envelope(r, 400) == "BAD_JSON"


@pytest.mark.parametrize("path", ["/model/parse", "/webhook", "/api/v1/messages"])
def test_json_routes_refuse_other_content_types(app: TestClient, path: str) -> None:
    r = app.post(path, content=b"text=hi", headers={"content-type": "text/plain"})
    assert _envelope(r, 415) == "UNSUPPORTED_MEDIA_TYPE"
    r = app.post(path, data={"text": "hi"})  # a form
    assert _envelope(r, 415) == "UNSUPPORTED_MEDIA_TYPE"


def test_console_json_routes_refuse_forms(app: TestClient) -> None:
    ticket_id = _ticket(app)
    r = app.post(f"/api/v1/tickets/{ticket_id}/notes", data={"text": "hi"},
                 headers=login(app, "demo-agent"))
    assert _envelope(r, 415) == "UNSUPPORTED_MEDIA_TYPE"


def test_rasa_webhook_body_errors_use_the_envelope(app: TestClient) -> None:
    r = app.post("/webhook", content=b'{"next_action": ', headers={"content-type":
                                                                    "application/json"})
    assert _envelope(r, 400) == "BAD_JSON"
    assert _envelope(app.post("/webhook", json={"next_action": "x"}), 422) == "VALIDATION_ERROR"


GARBAGE: list[Any] = [None, 0, -1, 1e308, True, [], {}, [{"a": [None]}], {"x": {"y": 1}},
                      "\x00\x01", "9" * 500, "😀" * 50]


@pytest.mark.parametrize("form", ["change_contact_form", "change_bank_card_form",
                                  "change_beneficiary_form", "claim_report_form",
                                  "appointment_form", "invoice_form"])
def test_garbage_in_form_slots_is_never_a_5xx(app: TestClient, form: str) -> None:
    actions = {a["name"] for a in app.get("/actions").json()}
    validate = f"validate_{form}"
    assert validate in actions or not any(form in a for a in actions)
    for value in GARBAGE:
        slots = {"requested_slot": value, **dict.fromkeys(_slots_of(form), value)}
        for action in (validate, f"action_submit_{form}"):
            body = {"next_action": action, "sender_id": "u", "tracker": {
                "sender_id": "u", "slots": slots, "active_loop": {"name": form},
                "latest_message": {"text": value, "entities": value},
                "events": [{"event": "slot", "name": k, "value": v} for k, v in slots.items()]}}
            r = app.post("/webhook", json=body)
            assert r.status_code < 500, (action, value, r.text)
            if r.status_code >= 400:
                assert "code" in r.json()["error"]


def _slots_of(form: str) -> list[str]:
    from dialogs.domain import build_domain  # noqa: PLC0415

    domain = build_domain()
    return list(domain.get("forms", {}).get(form, {}).get("required_slots", [])) or list(
        domain.get("slots", {}))


