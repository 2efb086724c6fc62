"""When the outbox cannot (or may not have) delivered, a person is told, and nothing retries
forever: a crash mid-send (`unknown`), a robot answering 45009 for an hour, a permanent error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from bot.nlu.engine import IntentEngine
from bot.outbound.dispatcher import Dispatcher
from escalation.notify import DELIVERY_FAILED_SCRIPT, DELIVERY_UNKNOWN_SCRIPT, queue
from storage.db import transaction
from storage.models import Circle, Message, Ticket, TicketEvent
from tests.conftest import login
from tests.fakes.mockwx import MockWX

ROBOT = "/cgi-bin/webhook/send"
T = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app(make_client: Callable[..., TestClient], mockwx: MockWX, tmp_path: Path,
        nlu: IntentEngine) -> TestClient:
    """The demo family's group goes through a WeCom group robot (MockWX); we drive the outbox."""
    return make_client(
        database_url=f"sqlite:///{tmp_path / 'told.db'}", scheduler_enabled=False,
        outbound_dispatch=False,
        outbound_routes={"demo-family": {"kind": "robot", "url": f"{mockwx.base}{ROBOT}?key=k"}},
    )


def _dispatcher(app: TestClient, clock: Clock) -> Dispatcher:
    dispatcher: Dispatcher = app.app.state.services.channels.dispatcher  # type: ignore[attr-defined]
    dispatcher.clock = clock
    return dispatcher


def _say_in_family(app: TestClient, text: str, now: datetime) -> int:
    with transaction(app.app.state.services.sessions) as s:  # type: ignore[attr-defined]
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        assert circle is not None
        return queue(s, circle, text, now=now).id


def _support_texts(app: TestClient, script: str) -> list[str]:
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        support = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-support"))
        return list(s.scalars(select(Message.text).where(
            Message.circle_id == support, Message.script_id == script)))


def _tickets(app: TestClient, reason: str) -> list[Ticket]:
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        return list(s.scalars(select(Ticket).where(Ticket.reason == reason)))


def test_a_row_left_sending_by_a_dead_worker_becomes_unknown_and_a_person_is_told(
    app: TestClient, mockwx: MockWX,
) -> None:
    clock = Clock()
    row_id = _say_in_family(app, "您的体检预约已确认，周五上午九点", T)
    sessions = app.app.state.services.sessions  # type: ignore[attr-defined]
    with transaction(sessions) as s:  # a worker marked it sending, then died (kill -9)
        s.execute(update(Message).where(Message.id == row_id).values(
            status="sending", attempts=1, next_attempt_at=T + timedelta(seconds=30)))
    dispatcher = _dispatcher(app, clock)
    clock.now = T + timedelta(seconds=10)
    dispatcher.dispatch_once()
    with sessions() as s:
        assert s.get(Message, row_id).status == "sending", "its lease still runs"
    clock.now = T + timedelta(seconds=31)
    for _ in range(3):
        dispatcher.dispatch_once()
        clock.now += timedelta(minutes=5)
    with sessions() as s:
        row = s.get(Message, row_id)
        assert row.status == "unknown"
        assert "mid-send" in row.last_error
    assert mockwx.sent(ROBOT) == [], "at most once: never resent by itself"
    [ticket] = _tickets(app, "delivery_unknown")
    assert ticket.context["outbound_id"] == row_id
    [notice] = _support_texts(app, DELIVERY_UNKNOWN_SCRIPT)
    assert "体检预约" in notice
    assert f"#{ticket.id}" in notice
    assert "王建国" in notice or "家庭" in notice, notice  # which circle
    # the agent finds it in the console, with the event saying why
    headers = login(app, "demo-agent")
    listed = app.get("/api/v1/tickets", headers=headers).json()
    assert ticket.id in [t["id"] for t in listed]
    detail = app.get(f"/api/v1/tickets/{ticket.id}", headers=headers).json()
    assert "delivery_unknown" in [e["kind"] for e in detail["events"]]


def test_a_robot_answering_45009_forever_is_given_up_after_an_hour_and_handed_over(
    app: TestClient, mockwx: MockWX,
) -> None:
    clock = Clock()
    row_id = _say_in_family(app, "明天上午十点理赔材料截止，请记得提交", T)
    mockwx.always[ROBOT] = 45009
    dispatcher = _dispatcher(app, clock)
    for _ in range(150):  # 2.5 hours of fake time, a pass a minute
        dispatcher.dispatch_once()
        clock.now += timedelta(minutes=1)
    sessions = app.app.state.services.sessions  # type: ignore[attr-defined]
    with sessions() as s:
        row = s.get(Message, row_id)
    assert row.status == "failed"
    assert row.last_error.startswith("gave up: not delivered within 60 min")
    assert "45009" in row.last_error, "the reason says why"
    calls = len(mockwx.sent(ROBOT))
    assert 0 < calls <= 61, "paused a minute per 45009, and stopped after an hour"
    assert len(_tickets(app, "delivery_gave_up")) == 1
    [notice] = _support_texts(app, DELIVERY_FAILED_SCRIPT)
    assert "停止重试" in notice
    assert "理赔材料截止" in notice
    for _ in range(10):
        dispatcher.dispatch_once()
        clock.now += timedelta(minutes=10)
    assert len(mockwx.sent(ROBOT)) == calls, "a failed row is never retried"


def test_a_permanent_error_fails_the_row_and_tells_the_agent(
    app: TestClient, mockwx: MockWX,
) -> None:
    clock = Clock()
    row_id = _say_in_family(app, "您好，续期保费已到账", T)
    mockwx.always[ROBOT] = 40008  # invalid message type: retrying cannot help
    dispatcher = _dispatcher(app, clock)
    dispatcher.dispatch_once()
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        row = s.get(Message, row_id)
        events = list(s.scalars(select(TicketEvent.kind)))
    assert row.status == "failed"
    assert row.last_error.startswith("40008")
    assert len(_tickets(app, "delivery_failed")) == 1
    assert "delivery_failed" in events
    [notice] = _support_texts(app, DELIVERY_FAILED_SCRIPT)
    assert "平台拒收" in notice


def test_a_notice_to_the_support_circle_that_fails_does_not_loop(
    app: TestClient, mockwx: MockWX,
) -> None:
    """The support circle has no route here: its notices wait, then give up, quietly."""
    clock = Clock()
    with transaction(app.app.state.services.sessions) as s:  # type: ignore[attr-defined]
        support = s.scalar(select(Circle).where(Circle.chat_id == "demo-support"))
        queue(s, support, "【新工单】测试", now=T)
    dispatcher = _dispatcher(app, clock)
    for _ in range(10):
        dispatcher.dispatch_once()
        clock.now += timedelta(minutes=15)
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        statuses = list(s.scalars(select(Message.status).where(Message.text == "【新工单】测试")))
        tickets = s.scalar(select(func.count()).select_from(Ticket))
    assert statuses == ["failed"]
    assert tickets == 0
