"""SLA ladder and the follow-up outbox with a fake clock; assignment fallbacks; exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escalation import followups, tickets
from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.enums import FollowUpKind, Priority
from storage.models import Circle, FollowUp, Message, Ticket, TicketEvent
from tests.conftest import login
from tests.escalation.conftest import MONDAY_10, sessions_of

POLICY = EscalationPolicy()


def _open(app: TestClient, *, now=MONDAY_10, priority=Priority.NORMAL,
          policy: EscalationPolicy = POLICY) -> int:
    svc = app.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        t = tickets.open_ticket(session=s, circle=circle, member_id="demo-customer",
                                source_message_id=None, intent="human.request", reason="intent",
                                summary="请联系我", now=now, priority=priority, policy=policy,
                                scripts=svc.scripts)
        return t.id


def _tick(app: TestClient, now, owner: str = "test") -> dict:
    svc = app.app.state.services  # type: ignore[attr-defined]
    return tick(svc.sessions, svc.scripts, POLICY, now=now, owner=owner).__dict__


def _count(s: Session, model: type, *where: object) -> int:
    return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_sla_ladder_fires_each_rung_once(app: TestClient) -> None:
    ticket_id = _open(app)  # normal: first response 240 business minutes, resolve 1440
    assert _tick(app, MONDAY_10 + timedelta(minutes=119))["sla_rungs"] == []
    half = _tick(app, MONDAY_10 + timedelta(minutes=120))["sla_rungs"]
    assert half == [(ticket_id, "sla_first_response_half")]
    assert _tick(app, MONDAY_10 + timedelta(minutes=121))["sla_rungs"] == []
    breach = _tick(app, MONDAY_10 + timedelta(minutes=240))["sla_rungs"]
    assert breach == [(ticket_id, "sla_first_response_breach")]
    for _ in range(3):  # the scan runs again and again: nothing repeats
        assert _tick(app, MONDAY_10 + timedelta(minutes=241))["sla_rungs"] == []
    with sessions_of(app)() as s:
        kinds = list(s.scalars(select(TicketEvent.kind).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.kind.like("sla_%"))))
        assert kinds == ["sla_first_response_half", "sla_first_response_breach"]
        scripts = list(s.scalars(select(Message.script_id).where(
            Message.script_id.like("support.sla_%"))))
        assert scripts == ["support.sla_reminder", "support.sla_breach"]
    headers = login(app, "demo-supervisor")  # after a breach the supervisor reassigns
    r = app.post(f"/api/v1/tickets/{ticket_id}/assign", json={"assignee_id": "agent-a2"},
                 headers=headers)
    assert r.status_code == 200
    assert r.json()["assignee_id"] == "agent-a2"


def test_a_scanner_down_past_the_breach_sends_the_breach_alone(app: TestClient) -> None:
    ticket_id = _open(app)
    fired = _tick(app, MONDAY_10 + timedelta(hours=5))["sla_rungs"]
    assert fired == [(ticket_id, "sla_first_response_breach")]


def test_assignment_falls_back_to_the_pool_or_a_teammate(app: TestClient) -> None:
    own = _open(app)
    night = _open(app, now=MONDAY_10.replace(hour=22))
    holiday = _open(app, now=MONDAY_10.replace(month=10, day=1))
    new_year_2027 = _open(app, now=MONDAY_10.replace(year=2027, month=1, day=4))
    busy = _open(app, policy=EscalationPolicy(agent_capacity=1))
    with sessions_of(app)() as s:
        got = {t.id: (t.assignee_id, t.context["assignment"]) for t in s.scalars(select(Ticket))}
    assert got[own] == ("demo-agent", "own_agent")
    assert got[night] == (None, "pool:off_hours")
    assert got[holiday] == (None, "pool:holiday")
    assert got[new_year_2027] == ("demo-agent", "own_agent")
    assert got[busy] == ("agent-a2", "teammate:over_capacity")


def _promise(app: TestClient, ticket_id: int, kind: FollowUpKind, minutes: int = 60,
             text: str = "下午给您答复") -> int:
    with transaction(sessions_of(app)) as s:
        row, _ = followups.create(s, circle_id=1, ticket_id=ticket_id, recipient_id=None,
                                  kind=kind, text=text, due_at=MONDAY_10 + timedelta(
                                      minutes=minutes), now=MONDAY_10, created_by="demo-agent")
        return row.id


def test_promise_kept_when_the_agent_answers_first(app: TestClient) -> None:
    ticket_id = _open(app)
    fid = _promise(app, ticket_id, FollowUpKind.PROMISE)
    with transaction(sessions_of(app)) as s:
        ticket = s.get(Ticket, ticket_id)
        tickets.reply(s, ticket, actor_id="demo-agent", text="已经查到了",
                      now=MONDAY_10 + timedelta(minutes=30))
    assert _tick(app, MONDAY_10 + timedelta(minutes=61))["followups"] == {}
    with sessions_of(app)() as s:
        assert s.get(FollowUp, fid).status == "kept"
        assert _count(s, Message, Message.script_id == "followup.progress_note") == 0


def test_promise_missed_sends_a_progress_note_and_alerts_once(app: TestClient) -> None:
    ticket_id = _open(app)
    fid = _promise(app, ticket_id, FollowUpKind.PROMISE)
    msg = _promise(app, ticket_id, FollowUpKind.MESSAGE, minutes=30, text="提醒您明天体检")
    assert _tick(app, MONDAY_10 + timedelta(minutes=59))["followups"] == {msg: "sent"}
    assert _tick(app, MONDAY_10 + timedelta(minutes=61))["followups"] == {fid: "sent"}
    assert _tick(app, MONDAY_10 + timedelta(minutes=90))["followups"] == {}
    with sessions_of(app)() as s:
        assert _count(s, Message, Message.script_id == "followup.progress_note") == 1
        note = s.scalar(select(Message.text).where(Message.script_id == "followup.progress_note"))
        assert note is not None
        assert "李娜" in note  # the customer hears who is following up, by name
        assert _count(s, Message, Message.script_id == "followup.promise_missed") == 1
        assert _count(s, Message, Message.text == "提醒您明天体检") == 1
        assert s.get(FollowUp, fid).sent_at is not None
    headers = login(app, "demo-agent")
    listed = app.get("/api/v1/followups", params={"status": "sent"}, headers=headers).json()
    assert {r["id"] for r in listed} == {fid, msg}
    assert all(r["sent_at"] for r in listed)


def test_two_concurrent_senders_send_each_followup_once(app: TestClient) -> None:
    ticket_id = _open(app)
    ids = {_promise(app, ticket_id, FollowUpKind.MESSAGE, minutes=5, text=f"第{i}条")
           for i in range(20)}
    barrier = threading.Barrier(2)
    results: dict[str, dict] = {}

    def run(owner: str) -> None:
        barrier.wait()
        results[owner] = _tick(app, MONDAY_10 + timedelta(minutes=10), owner=owner)["followups"]

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [fid for r in results.values() for fid, st in r.items() if st == "sent"]
    assert sorted(sent) == sorted(ids)
    with sessions_of(app)() as s:
        assert _count(s, Message, Message.text.like("第%条")) == 20


def test_a_lease_taken_over_fences_the_slow_sender(app: TestClient) -> None:
    ticket_id = _open(app)
    fid = _promise(app, ticket_id, FollowUpKind.MESSAGE, minutes=5, text="只发一次")
    sessions = sessions_of(app)
    svc = app.app.state.services  # type: ignore[attr-defined]
    t1 = MONDAY_10 + timedelta(minutes=6)
    assert followups.claim_due(sessions, owner="slow", now=t1, lease_seconds=60) == [fid]
    t2 = t1 + timedelta(minutes=2)  # the lease ran out: another sender takes it over
    assert followups.claim_due(sessions, owner="fast", now=t2, lease_seconds=60) == [fid]
    assert followups.deliver(sessions, svc.scripts, fid, owner="slow", now=t2) == "fenced"
    assert followups.deliver(sessions, svc.scripts, fid, owner="fast", now=t2) == "sent"
    with sessions() as s:
        assert _count(s, Message, Message.text == "只发一次") == 1


def test_the_same_promise_enqueued_twice_is_one_row(app: TestClient) -> None:
    ticket_id = _open(app)
    headers = login(app, "demo-agent")
    due = (MONDAY_10 + timedelta(days=3650)).isoformat()
    payload = {"due_at": due, "text": "周五前把材料清单发您", "kind": "promise"}
    first = app.post(f"/api/v1/tickets/{ticket_id}/followups", json=payload, headers=headers)
    again = app.post(f"/api/v1/tickets/{ticket_id}/followups", json=payload, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    past = app.post(f"/api/v1/tickets/{ticket_id}/followups", headers=headers,
                    json={**payload, "due_at": "2020-01-01T00:00:00+08:00"})
    assert past.status_code == 400
    assert past.json()["error"]["code"] == "FOLLOWUP_DUE_PAST"
    with sessions_of(app)() as s:
        assert _count(s, FollowUp) == 1
