"""GET /api/v1/followups: the follow-ups of the caller's circles, ticket or not; filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from escalation import followups, tickets
from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.enums import FollowUpKind, Priority
from storage.models import Circle, FollowUp
from tests.conftest import Chat, login
from tests.escalation.conftest import MONDAY_10, sessions_of

T = MONDAY_10


def _owe(app: TestClient, chat_id: str, text: str, due: datetime,
         ticket_id: int | None = None) -> int:
    with transaction(sessions_of(app)) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id))
        row, _ = followups.create(s, circle_id=circle.id, ticket_id=ticket_id, recipient_id=None,
                                  kind=FollowUpKind.MESSAGE, text=text, due_at=due, now=T,
                                  created_by=circle.agent_id)
        return row.id


def _ticket(app: TestClient) -> int:
    svc = app.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        return tickets.open_ticket(session=s, circle=circle, member_id="demo-customer",
                                   source_message_id=None, intent="human.request",
                                   reason="intent", summary="请联系我", now=T,
                                   priority=Priority.NORMAL, policy=EscalationPolicy(),
                                   scripts=svc.scripts).id


_LOGINS: dict[tuple[int, str], dict[str, str]] = {}


@pytest.fixture(autouse=True)
def _fresh_logins() -> Iterator[None]:
    _LOGINS.clear()
    yield
    _LOGINS.clear()


def _login(app: TestClient, who: str) -> dict[str, str]:
    """Each login hashes a password on purpose slowly: once per user per app is enough."""
    key = (id(app), who)
    if key not in _LOGINS:
        _LOGINS[key] = login(app, who)
    return _LOGINS[key]


def _ids(app: TestClient, who: str, **params: object) -> list[int]:
    r = app.get("/api/v1/followups", params=params, headers=_login(app, who))
    assert r.status_code == 200, r.text
    return [row["id"] for row in r.json()]


def test_a_promise_made_without_an_open_ticket_is_listed(app: TestClient) -> None:
    """The agent promises in the circle while no ticket is open: the ledger shows it."""
    said = Chat(app).say("demo-agent", "王先生，资料我整理好，明天下午三点前回复您")
    assert said["ticket_id"] is None
    with sessions_of(app)() as s:
        row = s.scalar(select(FollowUp).where(FollowUp.kind == FollowUpKind.PROMISE))
        assert row is not None
        assert row.ticket_id is None
    listed = app.get("/api/v1/followups", headers=login(app, "demo-agent")).json()
    assert [r["id"] for r in listed] == [row.id]
    assert listed[0]["ticket_id"] is None
    assert listed[0]["kind"] == "promise"
    assert _ids(app, "agent-b") == []


def test_followups_by_role_with_filters_newest_due_first(app: TestClient) -> None:
    ticket_id = _ticket(app)
    own_free = _owe(app, "demo-family", "无工单的提醒", T + timedelta(hours=1))
    own_ticket = _owe(app, "demo-family", "工单上的提醒", T + timedelta(hours=3), ticket_id)
    own_later = _owe(app, "demo-family", "下周的提醒", T + timedelta(days=7))
    other = _owe(app, "family-b", "别的团队的提醒", T + timedelta(hours=2))
    mine = [own_later, own_ticket, own_free]  # newest due first
    assert _ids(app, "demo-agent") == mine
    assert _ids(app, "demo-supervisor") == mine
    assert _ids(app, "agent-b") == [other]
    assert _ids(app, "sup-b") == [other]
    assert _ids(app, "admin") == [own_later, own_ticket, other, own_free]
    assert _ids(app, "agent-a2") == [], "a teammate sees only the team pool's tickets"
    # filters
    assert _ids(app, "admin", circle="family-b") == [other]
    assert _ids(app, "demo-agent", circle="family-b") == [], "another team's circle: nothing"
    due_before = (T + timedelta(hours=2, minutes=30)).isoformat()
    assert _ids(app, "demo-agent", due_before=due_before) == [own_free]
    assert _ids(app, "admin", due_before=due_before) == [other, own_free]
    assert _ids(app, "demo-agent", limit=2) == [own_later, own_ticket]
    assert _ids(app, "demo-agent", ticket_id=ticket_id) == [own_ticket]
    svc = app.app.state.services  # type: ignore[attr-defined]
    tick(svc.sessions, svc.scripts, EscalationPolicy(), now=T + timedelta(hours=4),
         owner="test")
    assert _ids(app, "demo-agent", status="sent") == [own_ticket, own_free]
    assert _ids(app, "demo-agent", status="pending") == [own_later]
    assert _ids(app, "demo-agent", status="sent", circle="demo-family",
                due_before=(T + timedelta(hours=2)).isoformat()) == [own_free]
    # bad input is a clear 4xx
    agent = _login(app, "demo-agent")
    unknown = app.get("/api/v1/followups", params={"circle": "no-such-chat"}, headers=agent)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "CIRCLE_UNKNOWN")
    naive = app.get("/api/v1/followups", params={"due_before": "2026-03-02T12:00:00"},
                    headers=agent)
    assert (naive.status_code, naive.json()["error"]["code"]) == (400, "FOLLOWUP_DUE_NAIVE")
    for bad in ({"limit": 0}, {"limit": 501}, {"status": "nope"}, {"due_before": "soon"}):
        assert app.get("/api/v1/followups", params=bad, headers=agent).status_code == 422, bad


def test_a_followup_without_a_ticket_is_cancelled_by_its_circle_only(app: TestClient) -> None:
    fid = _owe(app, "demo-family", "可以取消的提醒", T + timedelta(days=3650))
    url = f"/api/v1/followups/{fid}/cancel"
    assert app.post(url, headers=login(app, "agent-b")).status_code == 403
    assert app.post(url, headers=login(app, "sup-b")).status_code == 403
    first = app.post(url, headers=login(app, "demo-agent"))
    assert (first.status_code, first.json()["status"]) == (200, "cancelled")
    again = app.post(url, headers=login(app, "demo-supervisor"))
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    assert app.post("/api/v1/followups/999999/cancel",
                    headers=login(app, "demo-agent")).status_code == 404
