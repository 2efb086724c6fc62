"""The outbox on a fake clock against MockWX: the group robot's 20 a minute (G27) and split
sends that resume where they failed instead of repeating what the customer already got."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.outbound.dispatcher import PARTS, Dispatcher
from bot.outbound.quota import SlidingLimit
from bot.outbound.routing import Router
from bot.outbound.senders import RobotSender
from bot.outbound.split import split_text
from storage.db import make_engine, make_sessionmaker, transaction
from storage.enums import CircleKind, Direction
from storage.models import Base, ChannelCursor, Circle, Message
from storage.state import MemoryStateStore
from tests.fakes.mockwx import MockWX

ROBOT = "/cgi-bin/webhook/send"
CHAT = "grp-robot"


class FakeClock:
    """One clock for the dispatcher (datetime) and the rate limiter (epoch seconds)."""

    def __init__(self) -> None:
        self.t = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def time(self) -> float:
        return self.t.timestamp()

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def outbox(tmp_path: Path, mockwx: MockWX) -> Iterator[tuple[sessionmaker[Session], Dispatcher,
                                                               FakeClock]]:
    engine = make_engine(f"sqlite:///{tmp_path}/outbox.db")
    Base.metadata.create_all(engine)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as s:
        s.add(Circle(chat_id=CHAT, kind=CircleKind.CORE, name="robot group"))
    clock = FakeClock()
    http = httpx.Client(timeout=2.0)
    router = Router(oa={}, default_oa=None, kf={},
                    groups={CHAT: ("robot", RobotSender(http, f"{mockwx.base}{ROBOT}?key=k1"))})
    limiter = SlidingLimit(MemoryStateStore(), 20, clock=clock.time)
    yield sessions, Dispatcher(sessions, router, limiter, clock=clock.now), clock
    http.close()
    engine.dispose()


def _queue(sessions: sessionmaker[Session], texts: list[str], at: list[datetime]) -> list[int]:
    with transaction(sessions) as s:
        circle = s.scalar(select(Circle.id).where(Circle.chat_id == CHAT))
        rows = [Message(circle_id=circle, direction=Direction.OUT, channel="webhook", text=t,
                        status="queued", next_attempt_at=when, created_at=when)
                for t, when in zip(texts, at, strict=True)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _rows(sessions: sessionmaker[Session]) -> list[Message]:
    with sessions() as s:
        return list(s.scalars(select(Message).order_by(Message.id)))


def _contents(mockwx: MockWX) -> list[str]:
    return [c.body["text"]["content"] for c in mockwx.sent(ROBOT)]


def _max_in_any_minute(times: list[datetime]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + timedelta(seconds=60)) for t in times)


def test_g27_thirty_messages_in_ten_seconds_go_twenty_a_minute_in_order(
    outbox: tuple[sessionmaker[Session], Dispatcher, FakeClock], mockwx: MockWX
) -> None:
    sessions, dispatcher, clock = outbox
    start = clock.now()
    texts = [f"第{i}条通知" for i in range(1, 31)]
    _queue(sessions, texts, [start + timedelta(seconds=i / 3) for i in range(30)])
    timeline: list[tuple[float, int]] = []
    for _ in range(75):  # 150 s of fake time in 2 s steps; no real sleeping
        dispatcher.dispatch_once()
        timeline.append(((clock.now() - start).total_seconds(), len(mockwx.sent(ROBOT))))
        clock.advance(2)
    rows = _rows(sessions)
    assert {r.status for r in rows} == {"sent"}  # delayed, none dropped
    assert _contents(mockwx) == texts  # each once, in the order they were queued
    sent_at = [r.sent_at.replace(tzinfo=UTC) for r in rows if r.sent_at]
    assert _max_in_any_minute(sent_at) <= 20
    # the first 20 go at once; the other 10 wait for the rolling minute, then go
    assert max(n for t, n in timeline if t < 60) == 20
    assert all(r.attempts == 1 for r in rows)  # waiting for the limit is not a failed attempt


def test_g27_robot_45009_pauses_it_then_everything_goes_in_order(
    outbox: tuple[sessionmaker[Session], Dispatcher, FakeClock], mockwx: MockWX
) -> None:
    sessions, dispatcher, clock = outbox
    start = clock.now()
    texts = [f"提醒{i}" for i in range(1, 11)]
    _queue(sessions, texts, [start] * 10)
    mockwx.program(ROBOT, 0, 0, 0, 45009)  # the 4th call: "api freq out of limit"
    dispatcher.dispatch_once()
    assert len(mockwx.sent(ROBOT)) == 4  # it stopped at the 45009: no hammering
    paused = _rows(sessions)[3]
    assert paused.status == "queued"
    assert paused.last_error
    assert paused.last_error.startswith("45009")
    for _ in range(29):  # 58 s later: still paused, nothing more reached the robot
        clock.advance(2)
        dispatcher.dispatch_once()
    assert len(mockwx.sent(ROBOT)) == 4
    clock.advance(3)
    dispatcher.dispatch_once()
    rows = _rows(sessions)
    assert {r.status for r in rows} == {"sent"}
    assert _contents(mockwx) == texts[:4] + texts[3:]  # the refused one again, then the rest
    assert len(mockwx.sent(ROBOT)) == 11  # 10 messages + the one refused call
    assert all(r.last_error is None for r in rows)


def test_split_send_failing_on_part_two_resumes_at_part_two(
    outbox: tuple[sessionmaker[Session], Dispatcher, FakeClock], mockwx: MockWX
) -> None:
    sessions, dispatcher, clock = outbox
    long_text = "尊敬的客户，" + "您的保单续期缴费提醒内容。" * 400  # ~15.6 KB: 8 parts
    parts = split_text(long_text)
    assert len(parts) >= 3
    [row_id] = _queue(sessions, [long_text], [clock.now()])
    mockwx.program(ROBOT, 0, -1)  # part 1 arrives; part 2: "system busy"
    dispatcher.dispatch_once()
    assert _contents(mockwx) == parts[:2]
    row = _rows(sessions)[0]
    assert row.status == "queued"
    assert row.last_error
    assert row.last_error.startswith("-1")
    assert row.next_attempt_at
    assert row.next_attempt_at.replace(tzinfo=UTC) > clock.now()
    with sessions() as s:
        progress = s.scalar(select(ChannelCursor.value).where(
            ChannelCursor.channel == PARTS, ChannelCursor.key == str(row_id)))
    assert progress is not None
    assert json.loads(progress) == {"sent": 1, "of": len(parts)}
    clock.advance(10)  # past the backoff
    dispatcher.dispatch_once()
    # part 1 only once; part 2 (refused) once more; then the rest, in order
    assert _contents(mockwx) == parts[:2] + parts[1:]
    row = _rows(sessions)[0]
    assert row.status == "sent"
    assert row.last_error is None
    with sessions() as s:  # nothing left behind for a finished row
        assert s.scalar(select(ChannelCursor.id).where(ChannelCursor.channel == PARTS)) is None


def test_split_send_failing_for_good_tells_the_operator_what_went(
    outbox: tuple[sessionmaker[Session], Dispatcher, FakeClock], mockwx: MockWX
) -> None:
    sessions, dispatcher, clock = outbox
    long_text = "理赔材料清单：" + "身份证、银行卡、病历、发票。" * 300
    total = len(split_text(long_text))
    _queue(sessions, [long_text], [clock.now()])
    mockwx.program(ROBOT, 0, 0, 40008)  # part 3: a permanent error (invalid message type)
    dispatcher.dispatch_once()
    row = _rows(sessions)[0]
    assert row.status == "failed"
    assert row.last_error == f"40008 mock 40008; parts 1-2 of {total} were delivered"
    clock.advance(3600)
    dispatcher.dispatch_once()
    assert len(mockwx.sent(ROBOT)) == 3  # a failed row is not retried
