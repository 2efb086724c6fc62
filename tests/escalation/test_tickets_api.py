"""Tickets end to end through the webhook and the console API (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from storage.models import Circle, Message, Ticket, TicketEvent
from tests.conftest import Chat, login
from tests.escalation.conftest import sessions_of

SH = ZoneInfo("Asia/Shanghai")


def _circle_out(app: TestClient, chat_id: str) -> list[Message]:
    with sessions_of(app)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id))
        assert circle is not None
        return list(s.scalars(select(Message).where(
            Message.circle_id == circle.id, Message.direction == "out").order_by(Message.id)))


def _ticket(app: TestClient, ticket_id: int) -> Ticket:
    with sessions_of(app)() as s:
        t = s.get(Ticket, ticket_id)
        assert t is not None
        return t


def _events(app: TestClient, ticket_id: int) -> list[str]:
    with sessions_of(app)() as s:
        return list(s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id)
                              .order_by(TicketEvent.id)))


def test_human_request_opens_a_ticket_with_handoff_context(app: TestClient) -> None:
    chat = Chat(app)
    chat.say("demo-customer", "我的身份证号110101199003071234，帮我查下保单", at_bot=True)
    out = chat.say("demo-customer", "转人工", at_bot=True)
    assert out["ticket_id"] is not None
    t = _ticket(app, out["ticket_id"])
    ctx = t.context
    assert ctx["intent"] == "human.request"
    assert [m for m in ctx["transcript"] if "转人工" in m["text"]]
    assert all("110101199003071234" not in m["text"] for m in ctx["transcript"])
    assert {p["policy_no"] for p in ctx["policies"]} == {"CC2024000123", "CC2025000456"}
    assert ctx["customer"]["honorific"] == "王先生"
    assert ctx["suggested_scripts"]
    assert t.first_response_due is not None
    assert t.resolve_due is not None
    assert _events(app, t.id)[:2] == ["opened", "assigned"]
    notices = _circle_out(app, "demo-support")
    assert any(f"#{t.id}" in m.text and m.status == "queued" for m in notices)


def test_complaint_risk_makes_any_message_urgent_and_alerts_the_supervisor(
    app: TestClient,
) -> None:
    chat = Chat(app)
    out = chat.say("demo-customer", "你们再拖着不赔，我就去12378投诉！！！")
    assert out["ticket_id"] is not None, "a threat is heard even without @"
    t = _ticket(app, out["ticket_id"])
    assert t.priority == "urgent"
    assert any(r.startswith("lexicon:") for r in t.context["risk"])
    alerts = [m for m in _circle_out(app, "demo-support") if m.script_id == "support.urgent_alert"]
    assert len(alerts) == 1
    assert f"#{t.id}" in alerts[0].text


def test_agent_message_mutes_the_bot_until_resolution_then_asks_for_a_rating(
    app: TestClient,
) -> None:
    chat = Chat(app)
    ticket_id = chat.say("demo-customer", "转人工", at_bot=True)["ticket_id"]
    chat.say("demo-agent", "王先生您好，我来处理")
    assert _ticket(app, ticket_id).first_response_at is not None
    muted = chat.say("demo-customer", "下次保费什么时候交", at_bot=True)
    assert muted["replies"] == []
    headers = login(app, "demo-agent")
    r = app.post(f"/api/v1/tickets/{ticket_id}/resolve", json={"note": "已解释"}, headers=headers)
    assert r.status_code == 200, r.text
    asks = [m for m in _circle_out(app, "demo-family") if m.script_id == "rating.ask"]
    assert len(asks) == 1
    rated = chat.say("demo-customer", "5")
    assert rated["replies"]
    assert "5" in rated["replies"][0]["text"]
    assert _ticket(app, ticket_id).rating == 5
    back = chat.say("demo-customer", "下次保费什么时候交", at_bot=True)
    assert back["replies"], "after resolution the bot answers again"


def test_the_bot_resumes_after_the_human_is_silent(app: TestClient) -> None:
    chat = Chat(app)
    ticket_id = chat.say("demo-customer", "转人工", at_bot=True)["ticket_id"]
    chat.say("demo-agent", "我看一下")
    with sessions_of(app).begin() as s:
        t = s.get(Ticket, ticket_id)
        assert t is not None
        assert t.human_active_at is not None
        t.human_active_at = datetime.now(UTC) - timedelta(minutes=31)
    assert chat.say("demo-customer", "下次保费什么时候交", at_bot=True)["replies"]


def test_agent_reply_is_queued_in_the_circle_as_the_agent(app: TestClient) -> None:
    chat = Chat(app)
    ticket_id = chat.say("demo-customer", "转人工", at_bot=True)["ticket_id"]
    headers = login(app, "demo-agent")
    r = app.post(f"/api/v1/tickets/{ticket_id}/reply", json={"text": "王先生，已经帮您查好了"},
                 headers=headers)
    assert r.status_code == 201, r.text
    sent = [m for m in _circle_out(app, "demo-family") if m.sender_id == "demo-agent"]
    assert len(sent) == 1
    assert sent[0].status == "queued"
    assert sent[0].sender_name == "李娜"
    t = _ticket(app, ticket_id)
    assert t.first_response_at is not None
    assert t.status == "claimed"
    for path, payload in (("notes", {"text": "客户比较着急"}), ("claim", None)):
        assert app.post(f"/api/v1/tickets/{ticket_id}/{path}", json=payload,
                        headers=headers).status_code in (200, 201)
    detail = app.get(f"/api/v1/tickets/{ticket_id}", headers=headers).json()
    kinds = [e["kind"] for e in detail["events"]]
    assert {"opened", "reply", "first_response", "note"} <= set(kinds)


def test_promise_proposed_from_the_agents_words(app: TestClient) -> None:
    chat = Chat(app)
    ticket_id = chat.say("demo-customer", "转人工", at_bot=True)["ticket_id"]
    ts = datetime.now(SH).replace(hour=10, minute=0, second=0, microsecond=0)
    chat.say("demo-agent", "王先生，我明天下午三点前回复您", ts=ts.isoformat())
    headers = login(app, "demo-agent")
    rows = app.get("/api/v1/followups", params={"ticket_id": ticket_id}, headers=headers).json()
    assert len(rows) == 1
    due = datetime.fromisoformat(rows[0]["due_at"]).astimezone(SH)
    assert (due.date(), due.hour, due.minute) == ((ts + timedelta(days=1)).date(), 15, 0)
    assert rows[0]["kind"] == "promise"
    assert rows[0]["status"] == "pending"
