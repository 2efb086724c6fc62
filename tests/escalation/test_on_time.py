"""On time, in real time: follow-ups reach the customer's group within 2 s of their due time.

The scheduler's heartbeat and the outbox's poll are set to a minute here, so only the wake-ups
(sleep until the next due row; a new row due sooner wakes the sleeper) can make it on time.
Lateness is measured where a user would notice it: when the message reaches the group's
webhook.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.scheduler import EscalationScheduler
from escalation import followups
from storage import wakeups
from storage.db import make_engine, make_sessionmaker, transaction
from storage.enums import FollowUpKind
from storage.models import Circle
from tests.escalation.conftest import sessions_of
from tests.fakes.sink import Sink, sink

__all__ = ["sink"]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def _app(make_client: Callable[..., TestClient], database_url: str, sink: Sink) -> TestClient:
    return make_client(
        database_url=database_url, scheduler_enabled=True, scheduler_interval_seconds=60,
        outbound_dispatch=True, outbound_interval=60.0,
        outbound_routes={"demo-family": {"kind": "webhook", "url": sink.url}},
    )


def _wait(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_fifty_followups_due_over_three_seconds_arrive_within_two_seconds_each(
    make_client: Callable[..., TestClient], database_url: str, sink: Sink,
) -> None:
    app = _app(make_client, database_url, sink)
    time.sleep(0.5)  # the first scan at start has run: the scheduler now sleeps a minute
    start = datetime.now(UTC) + timedelta(seconds=1.5)
    due = {f"准时提醒{i:02d}": start + timedelta(seconds=3 * i / 50) for i in range(50)}
    for text, at in due.items():  # one transaction each, as agents set them one by one
        with transaction(sessions_of(app)) as s:
            circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
            assert circle is not None
            followups.create(s, circle_id=circle.id, ticket_id=None, recipient_id=None,
                             kind=FollowUpKind.MESSAGE, text=text, due_at=at,
                             now=datetime.now(UTC), created_by="demo-agent")
    _wait(lambda: len(sink.arrivals("准时提醒")) == 50, seconds=15)
    arrived = sink.arrivals("准时提醒")
    assert sorted(arrived) == sorted(due), "every follow-up arrived"
    assert all(len(times) == 1 for times in arrived.values()), "each exactly once"
    lateness = [times[0] - due[text].timestamp() for text, times in arrived.items()]
    assert min(lateness) >= 0, "nothing goes out before its time"
    assert p99(lateness) <= 2.0, sorted(lateness)[-5:]


def test_a_held_reply_goes_out_when_its_grace_ends_not_at_the_next_poll(
    make_client: Callable[..., TestClient], database_url: str, sink: Sink,
) -> None:
    """The bot's answer held for a human (here 2 s) is sent when the hold ends."""
    app = make_client(
        database_url=database_url, scheduler_enabled=True, scheduler_interval_seconds=60,
        outbound_dispatch=True, outbound_interval=60.0, human_grace_seconds=2,
        outbound_routes={"demo-family": {"kind": "webhook", "url": sink.url}},
    )
    time.sleep(0.5)
    asked = time.time()
    r = app.post("/api/v1/messages", json={
        "chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
        "text": "保费可以用微信交吗", "msg_id": f"held-{asked}", "mentions": []})
    assert r.status_code == 200, r.text
    _wait(lambda: bool(sink.received), seconds=10)
    assert sink.received, "the held answer was sent"
    first = sink.received[0][0]
    assert 2.0 <= first - asked <= 4.0, first - asked


def test_a_wake_up_during_a_long_scan_is_not_lost() -> None:
    """A row announced while a scan runs gets a scan right after it, not a heartbeat later."""
    release = threading.Event()
    runs: list[float] = []

    def job(now: datetime) -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            release.wait(5)  # the second scan is slow (a big batch)

    runner = EscalationScheduler(job, interval=60)
    runner.start()
    try:
        _wait(lambda: len(runs) == 1, seconds=5)
        runner.wake()  # something is due now: the second scan starts and hangs
        _wait(lambda: len(runs) == 2, seconds=5)
        runner.wake()  # announced during the slow scan
        time.sleep(0.3)
        assert len(runs) == 2, "never two scans at once"
        release.set()
        _wait(lambda: len(runs) == 3, seconds=5)
        assert len(runs) == 3, "the wake-up during the scan got a scan of its own"
        assert runs[2] - runs[1] < 5.5
        later = datetime.now(UTC) + timedelta(seconds=1)
        runner.wake(later)  # a row due in a second: the scan runs then, not at the heartbeat
        _wait(lambda: len(runs) == 4, seconds=5)
        assert len(runs) == 4
        assert 0.8 <= runs[3] - runs[2] <= 3.0, runs[3] - runs[2]
    finally:
        release.set()
        runner.stop()


def test_other_processes_hear_of_a_new_row_only_once_it_commits(pg_server_url: str) -> None:
    """PostgreSQL NOTIFY carries the due time to every listening scheduler, at commit."""
    heard: list[datetime] = []
    listener = wakeups.PgListener(pg_server_url, relay=heard.append)
    listener.start()
    engine = make_engine(pg_server_url)
    try:
        assert listener.connected.wait(10)
        sessions = make_sessionmaker(engine)
        at = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)

        with sessions() as s:  # rolled back
            s.begin()
            wakeups.announce(s, at - timedelta(hours=1))
            s.rollback()
        with transaction(sessions) as s:
            wakeups.announce(s, at)
            time.sleep(0.5)
            assert heard == [], "nothing before the commit"
        _wait(lambda: bool(heard), seconds=5)
        assert heard == [at], "the rolled-back one never, the committed one once"
    finally:
        listener.stop()
        engine.dispose()
