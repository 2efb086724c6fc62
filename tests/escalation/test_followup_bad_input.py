"""Bad follow-ups: a clear 4xx through the API; at send time a failed status with the reason and
the agent told; a row that keeps failing is not retried forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from escalation import followups, tickets
from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.enums import CircleStatus, FollowUpKind, FollowUpStatus, Priority
from storage.errors import Conflict
from storage.models import Circle, FollowUp, Message, TicketEvent
from tests.conftest import login
from tests.escalation.conftest import MONDAY_10, sessions_of

POLICY = EscalationPolicy()


def _ticket(app: TestClient) -> int:
    svc = app.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        return tickets.open_ticket(session=s, circle=circle, member_id="demo-customer",
                                   source_message_id=None, intent="human.request",
                                   reason="intent", summary="请联系我", now=MONDAY_10,
                                   priority=Priority.NORMAL, policy=POLICY,
                                   scripts=svc.scripts).id


def _dissolve(app: TestClient, chat_id: str = "demo-family") -> None:
    with transaction(sessions_of(app)) as s:
        s.execute(update(Circle).where(Circle.chat_id == chat_id)
                  .values(status=CircleStatus.DISSOLVED, dissolved_at=MONDAY_10))


def _later() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(("due_at", "status", "code"), [
    ("2020-01-01T09:00:00+08:00", 400, "FOLLOWUP_DUE_PAST"),
    ("明天下午三点", 422, "VALIDATION_ERROR"),
    ("2026-13-45T25:61:00+08:00", 422, "VALIDATION_ERROR"),
    ("2030-01-01T09:00:00", 400, "FOLLOWUP_DUE_NAIVE"),
])
def test_a_bad_due_time_is_a_clear_4xx(app: TestClient, due_at: str, status: int,
                                       code: str) -> None:
    ticket_id = _ticket(app)
    r = app.post(f"/api/v1/tickets/{ticket_id}/followups", headers=login(app, "demo-agent"),
                 json={"due_at": due_at, "text": "给您回电", "kind": "promise"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    if status == 422:
        assert "due_at" in r.json()["error"]["message"]
    with sessions_of(app)() as s:
        assert s.scalar(select(FollowUp.id)) is None


def test_an_unknown_ticket_and_a_dissolved_circle_are_refused(app: TestClient) -> None:
    headers = login(app, "demo-agent")
    payload = {"due_at": _later(), "text": "明天给您回电", "kind": "promise"}
    r = app.post("/api/v1/tickets/999999/followups", headers=headers, json=payload)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "TICKET_NOT_FOUND")
    ticket_id = _ticket(app)
    _dissolve(app)
    r = app.post(f"/api/v1/tickets/{ticket_id}/followups", headers=headers, json=payload)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "CIRCLE_DISSOLVED")
    assert "dissolved" in r.json()["error"]["message"]
    with sessions_of(app)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        with pytest.raises(Conflict):
            followups.create(s, circle_id=circle.id, ticket_id=None, recipient_id=None,
                             kind=FollowUpKind.MESSAGE, text="x", now=MONDAY_10,
                             due_at=MONDAY_10 + timedelta(hours=1), created_by="demo-agent")


def test_a_circle_dissolved_before_the_send_fails_it_with_the_reason_and_tells_the_agent(
    app: TestClient,
) -> None:
    ticket_id = _ticket(app)
    with transaction(sessions_of(app)) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        row, _ = followups.create(s, circle_id=circle.id, ticket_id=ticket_id,
                                  recipient_id=None, kind=FollowUpKind.MESSAGE,
                                  text="周五提醒您体检", due_at=MONDAY_10 + timedelta(hours=1),
                                  now=MONDAY_10, created_by="demo-agent")
        fid = row.id
    _dissolve(app)
    svc = app.app.state.services  # type: ignore[attr-defined]
    report = tick(svc.sessions, svc.scripts, POLICY, now=MONDAY_10 + timedelta(hours=1),
                  owner="t")
    assert report.followups == {fid: "failed"}
    with sessions_of(app)() as s:
        row = s.get(FollowUp, fid)
        assert (row.status, row.last_error) == (FollowUpStatus.FAILED, "circle dissolved")
        assert s.scalar(select(Message.id).where(Message.text == "周五提醒您体检")) is None
        support = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-support"))
        alert = s.scalar(select(Message.text).where(
            Message.circle_id == support, Message.script_id == followups.FAILED_SCRIPT))
        assert alert is not None
        assert "周五提醒您体检" in alert
        assert "followup_failed" in s.scalars(select(TicketEvent.kind).where(
            TicketEvent.ticket_id == ticket_id)).all()
    listed = app.get("/api/v1/followups", params={"status": "failed"},
                     headers=login(app, "demo-agent")).json()
    assert [(f["id"], f["last_error"]) for f in listed] == [(fid, "circle dissolved")]


def test_a_followup_whose_delivery_keeps_crashing_is_given_up_not_retried_forever(
    app: TestClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with transaction(sessions_of(app)) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        ids = {}
        for text in ("坏的一条", "好的一条"):
            row, _ = followups.create(s, circle_id=circle.id, ticket_id=None, recipient_id=None,
                                      kind=FollowUpKind.MESSAGE, text=text, now=MONDAY_10,
                                      due_at=MONDAY_10 + timedelta(minutes=1),
                                      created_by="demo-agent")
            ids[text] = row.id
    real = followups._work

    def work(s, scripts, row, now, stale_after):  # type: ignore[no-untyped-def]
        if row.text == "坏的一条":
            raise RuntimeError("boom")
        return real(s, scripts, row, now, stale_after)

    monkeypatch.setattr(followups, "_work", work)
    svc = app.app.state.services  # type: ignore[attr-defined]
    now = MONDAY_10 + timedelta(minutes=1)
    outcomes = []
    for _ in range(8):  # each pass after the lease ran out
        outcomes.append(tick(svc.sessions, svc.scripts, POLICY, now=now, owner="t").followups)
        now += timedelta(seconds=POLICY.followup_lease_seconds + 1)
    assert outcomes[0] == {ids["坏的一条"]: "error", ids["好的一条"]: "sent"}, "the batch goes on"
    bad = [o.get(ids["坏的一条"]) for o in outcomes]
    assert bad == ["error"] * followups.MAX_CLAIMS + ["failed", None, None]
    with sessions_of(app)() as s:
        row = s.get(FollowUp, ids["坏的一条"])
        assert row.status == FollowUpStatus.FAILED
        assert row.last_error == f"gave up after {followups.MAX_CLAIMS} claims"
        assert s.scalar(select(Message.id).where(
            Message.script_id == followups.FAILED_SCRIPT)) is not None
