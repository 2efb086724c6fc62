"""S10/S11: the lateness policy, clock jumps and a backlog after an outage (fake clock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escalation import followups, tickets
from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.enums import FollowUpKind, FollowUpStatus, Priority
from storage.models import Circle, FollowUp, Message, TicketEvent
from tests.escalation.conftest import MONDAY_10, sessions_of

POLICY = EscalationPolicy()
T = MONDAY_10


@pytest.fixture
def sqlite_app(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    """The embedded default only: 1000 one-row transactions are the slow part of a test."""
    return make_client(database_url=f"sqlite:///{tmp_path / 'backlog.db'}",
                       scheduler_enabled=False)


def _circle(s: Session, chat_id: str = "demo-family") -> Circle:
    circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id))
    assert circle is not None
    return circle


def _owe(app: TestClient, text: str, due: datetime, *, kind: FollowUpKind = FollowUpKind.MESSAGE,
         ticket_id: int | None = None) -> int:
    with transaction(sessions_of(app)) as s:
        row, created = followups.create(
            s, circle_id=_circle(s).id, ticket_id=ticket_id, recipient_id=None, kind=kind,
            text=text, due_at=due, now=due - timedelta(minutes=1), created_by="demo-agent")
        assert created
        return row.id


def _open_ticket(app: TestClient) -> int:
    svc = app.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        t = tickets.open_ticket(session=s, circle=_circle(s), member_id="demo-customer",
                                source_message_id=None, intent="human.request", reason="intent",
                                summary="请联系我", now=T, priority=Priority.NORMAL, policy=POLICY,
                                scripts=svc.scripts)
        return t.id


def _tick(app: TestClient, now: datetime, owner: str = "test", **kw: object) -> dict[int, str]:
    svc = app.app.state.services  # type: ignore[attr-defined]
    report = tick(svc.sessions, svc.scripts, POLICY, now=now, owner=owner, **kw)  # type: ignore[arg-type]
    return report.followups


def _count(s: Session, *where: object) -> int:
    return int(s.scalar(select(func.count()).select_from(Message).where(*where)) or 0)


def test_a_late_followup_is_sent_once_within_the_limit_and_marked_stale_beyond_it(
    app: TestClient,
) -> None:
    ticket_id = _open_ticket(app)
    too_late = _owe(app, "提醒您明天上午体检", T + timedelta(hours=1))
    in_time = _owe(app, "材料已经寄出，请查收", T + timedelta(hours=2))
    promise = _owe(app, "下午给您答复", T + timedelta(hours=1), kind=FollowUpKind.PROMISE,
                   ticket_id=ticket_id)
    found_at = T + timedelta(hours=25, minutes=30)  # 24.5 h late, 23.5 h late, 24.5 h late
    assert _tick(app, found_at) == {too_late: "stale", promise: "stale", in_time: "sent"}
    assert _tick(app, found_at + timedelta(minutes=1)) == {}, "decided once, never again"
    with sessions_of(app)() as s:
        family = _circle(s)
        support = _circle(s, "demo-support")
        in_family = Message.circle_id == family.id
        assert _count(s, in_family, Message.text == "材料已经寄出，请查收") == 1
        # nothing stale reaches the customer: neither the text nor a progress note
        assert _count(s, Message.text == "提醒您明天上午体检") == 0
        assert _count(s, Message.script_id == followups.PROGRESS_SCRIPT) == 0
        # ... but the agent and supervisor hear of each, in their support circle
        alerts = list(s.scalars(select(Message.text).where(
            Message.circle_id == support.id, Message.script_id == followups.FAILED_SCRIPT)))
        assert len(alerts) == 2
        assert any("提醒您明天上午体检" in a for a in alerts)
        for fid in (too_late, promise):
            row = s.get(FollowUp, fid)
            assert row.status == followups.STALE_STATUS
            assert row.last_error.startswith("stale: 24.5 h late (limit 24 h)")
            assert row.sent_at is None
        assert s.get(FollowUp, in_time).status == FollowUpStatus.SENT
        kinds = list(s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id)))
        assert kinds.count("followup_stale") == 1


def test_the_staleness_limit_is_configurable(app: TestClient) -> None:
    fid = _owe(app, "一小时内要发的提醒", T + timedelta(hours=1))
    again = _owe(app, "同样的提醒，再一条", T + timedelta(hours=2, minutes=30))
    outcome = _tick(app, T + timedelta(hours=3), stale_after=timedelta(hours=1))
    assert outcome == {fid: "stale", again: "sent"}


def test_a_clock_jump_forward_or_back_sends_each_followup_once(app: TestClient) -> None:
    due = {m: _owe(app, f"跳变测试{m}", T + timedelta(minutes=m)) for m in (-5, 30, 90, 150)}
    assert _tick(app, T) == {due[-5]: "sent"}
    # +2 h: everything due in between goes once (30 and 90 minutes late: within the limit)
    assert _tick(app, T + timedelta(hours=2)) == {due[30]: "sent", due[90]: "sent"}
    # -2 h (NTP puts the clock back), then it runs forward again over the same span
    for minutes in (0, 1, 30, 90, 120, 149):
        assert _tick(app, T + timedelta(minutes=minutes)) == {}, minutes
    assert _tick(app, T + timedelta(minutes=150)) == {due[150]: "sent"}
    assert _tick(app, T + timedelta(hours=2)) == {}
    with sessions_of(app)() as s:
        for m in due:
            assert _count(s, Message.text == f"跳变测试{m}") == 1, m


def test_a_backwards_jump_after_a_claim_delays_but_never_duplicates(app: TestClient) -> None:
    fid = _owe(app, "只发一次的跳变提醒", T + timedelta(minutes=1))
    sessions = sessions_of(app)
    ahead = T + timedelta(hours=2)  # sender A's clock is 2 h fast; it claims, then dies
    assert followups.claim_due(sessions, owner="a", now=ahead, lease_seconds=60) == [fid]
    assert _tick(app, T + timedelta(minutes=5), owner="b") == {}, "A's lease still holds"
    assert _tick(app, ahead + timedelta(seconds=61), owner="b") == {fid: "sent"}
    svc = app.app.state.services  # type: ignore[attr-defined]
    assert followups.deliver(sessions, svc.scripts, fid, owner="a", now=ahead) == "fenced"
    with sessions() as s:
        assert _count(s, Message.text == "只发一次的跳变提醒") == 1


def test_a_backlog_of_1000_drains_oldest_first_in_bounded_batches(sqlite_app: TestClient) -> None:
    """After a 30 h outage: the 200 items more than 24 h late are stale, the rest sent."""
    app = sqlite_app
    now = T + timedelta(days=2)
    start = now - timedelta(hours=30) + timedelta(minutes=1)  # row 200: 23 h 59 min late
    with transaction(sessions_of(app)) as s:
        circle_id = _circle(s).id
        rows = [
            FollowUp(dedupe_key=f"backlog-{i}", kind=FollowUpKind.MESSAGE, circle_id=circle_id,
                     text=f"积压{i}", due_at=start + timedelta(seconds=108 * i),
                     status=FollowUpStatus.PENDING, created_by="demo-agent",
                     created_at=start - timedelta(days=1))
            for i in reversed(range(1000))  # inserted newest first: order comes from due_at
        ]
        s.add_all(rows)
        s.flush()
        oldest_first = [r.id for r in reversed(rows)]
    drained: list[int] = []
    outcomes: list[str] = []
    for batch in range(10):
        report = _tick(app, now + timedelta(seconds=batch), batch_size=100)
        assert len(report) == 100, batch
        drained += list(report)
        outcomes += list(report.values())
    assert _tick(app, now + timedelta(seconds=11), batch_size=100) == {}
    assert drained == oldest_first
    assert outcomes == ["stale"] * 200 + ["sent"] * 800
    with sessions_of(app)() as s:
        assert _count(s, Message.text.like("积压%")) == 800
        sent = list(s.scalars(select(Message.text).where(Message.text.like("积压%"))
                              .order_by(Message.id)))
        assert sent == [f"积压{i}" for i in range(200, 1000)], "queued oldest first"
        assert _count(s, Message.script_id == followups.FAILED_SCRIPT) == 200
