"""S1, S6, S12: the scan scheduler across a restart, with no job store, and its liveness."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.interval import IntervalTrigger
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, inspect, select

from bot import logmask
from bot.app import create_app
from bot.metrics import Metrics
from bot.nlu.engine import IntentEngine
from bot.scheduler import JOB_ID, EscalationScheduler, scheduler_of
from bot.settings import Settings
from escalation import followups
from escalation.jobs import TickReport
from storage.db import transaction
from storage.enums import FollowUpKind, FollowUpStatus
from storage.models import Circle, FollowUp, Message
from tests.escalation.conftest import MONDAY_10, Clock, sessions_of


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll a background thread's effect; it normally takes a few milliseconds."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the background scheduler did not act in time"
        time.sleep(0.01)


def _runner(client: TestClient) -> EscalationScheduler:
    runner = scheduler_of(client.app.state.services)  # type: ignore[attr-defined]
    assert runner is not None
    return runner


# -- S1: the process was down when the follow-up fell due -------------------------------------
def test_a_followup_due_while_the_process_was_down_is_sent_once_at_start(
    nlu: IntentEngine, database_url: str, tmp_path: Path,
) -> None:
    base = {"data_dir": tmp_path / "data", "demo": True, "database_url": database_url}
    now = datetime.now(UTC)
    owed = {"重启前约好的提醒": timedelta(seconds=10),   # down for 10 s past its time
            "一天前约好的提醒": timedelta(hours=23),      # late, but within the 24 h policy
            "过期太久的提醒": timedelta(hours=25)}        # beyond it: stale, not sent
    ids: dict[str, int] = {}
    first = create_app(Settings(**base, scheduler_enabled=False), nlu_engine=nlu)
    with TestClient(first) as up, transaction(sessions_of(up)) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        for text, late in owed.items():
            row, _ = followups.create(
                s, circle_id=circle.id, ticket_id=None, recipient_id=None,
                kind=FollowUpKind.MESSAGE, text=text, due_at=now - late,
                now=now - late - timedelta(minutes=1), created_by="demo-agent")
            ids[text] = row.id
    # ... the process is down across the due times, then starts again with its scheduler
    restarted = Settings(**base, scheduler_enabled=True, scheduler_interval_seconds=3600)
    with TestClient(create_app(restarted, nlu_engine=nlu)) as back:
        runner = _runner(back)
        # the first scan runs at start, not an interval later, and not as an APScheduler
        # date job that could be "missed": the outbox row is the record
        _wait_for(lambda: runner.last_tick is not None)
        jobs = runner.scheduler.get_jobs()
        assert [j.id for j in jobs] == [JOB_ID]
        assert isinstance(jobs[0].trigger, IntervalTrigger)
        assert runner.run_once(), "a second scan finds nothing more to do"
        with sessions_of(back)() as s:
            status = {t: s.get(FollowUp, fid).status for t, fid in ids.items()}
            sent = {t: int(s.scalar(select(func.count()).select_from(Message)
                                    .where(Message.text == t)) or 0) for t in owed}
    assert status == {"重启前约好的提醒": FollowUpStatus.SENT,
                      "一天前约好的提醒": FollowUpStatus.SENT,
                      "过期太久的提醒": followups.STALE_STATUS}
    assert sent == {"重启前约好的提醒": 1, "一天前约好的提醒": 1, "过期太久的提醒": 0}


# -- S6: nothing about the job is persisted -----------------------------------------------------
def test_the_scheduler_keeps_its_one_job_in_memory_and_no_job_store_in_the_database(
    make_client: Callable[..., TestClient], tmp_path: Path,
) -> None:
    client = make_client(database_url=f"sqlite:///{tmp_path / 's6.db'}", scheduler_enabled=True,
                         scheduler_interval_seconds=3600)
    runner = _runner(client)
    stores = runner.job_stores()
    assert list(stores) == ["default"]
    assert all(type(store) is MemoryJobStore for store in stores.values())
    jobs = runner.scheduler.get_jobs()
    assert [j.id for j in jobs] == [JOB_ID]
    assert jobs[0].func == runner.run_once, "our code calls the scan by import, not by a name"
    svc = client.app.state.services  # type: ignore[attr-defined]
    tables = inspect(svc.db).get_table_names()
    assert "followups" in tables
    assert not [t for t in tables if "apscheduler" in t]
    with transaction(svc.sessions) as s:  # a new follow-up is a row, never a job
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        followups.create(s, circle_id=circle.id, ticket_id=None, recipient_id=None,
                         kind=FollowUpKind.MESSAGE, text="不是任务，是一行", now=MONDAY_10,
                         due_at=MONDAY_10 + timedelta(days=3650), created_by="demo-agent")
    assert len(runner.scheduler.get_jobs()) == 1


# -- S12: liveness ------------------------------------------------------------------------------
def _failing_once(calls: list[datetime]) -> Callable[[datetime], TickReport]:
    def job(now: datetime) -> TickReport:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("数据库写入失败：客户身份证110101199003071234")
        return TickReport(followups={1: "sent", 2: "stale"})

    return job


def test_a_tick_that_raises_is_logged_masked_and_the_next_tick_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logmask.install()
    metrics = Metrics()
    calls: list[datetime] = []
    runner = EscalationScheduler(_failing_once(calls), interval=0.05, metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        runner.start()
        try:
            _wait_for(lambda: runner.last_tick is not None)
            assert runner.scheduler.running, "the loop survived the exception"
        finally:
            runner.stop()
    assert len(calls) >= 2
    assert runner.errors == 1
    assert runner.last_tick in calls[1:], "stamped by a successful tick only"
    failures = [r for r in caplog.records if r.name == "bot.scheduler"]
    assert len(failures) == 1
    assert "escalation scan failed" in caplog.text
    assert "RuntimeError" in caplog.text, "the traceback is kept"
    assert "110101199003071234" not in caplog.text, "masked, traceback included"
    sample = metrics.registry.get_sample_value
    assert sample("corecircle_scheduler_tick_errors_total") == 1
    assert sample("corecircle_scheduler_last_tick_seconds") == runner.last_tick.timestamp()
    assert sample("corecircle_followups_total", {"outcome": "stale"}) >= 1


def test_liveness_goes_stale_after_three_intervals_or_30_s_with_a_fake_clock() -> None:
    clock = Clock(MONDAY_10)

    def elapsed() -> float:  # the fake clock stands in for the monotonic one too
        return clock.now.timestamp()

    calls: list[datetime] = []
    runner = EscalationScheduler(_failing_once(calls), interval=15, clock=clock,
                                 monotonic=elapsed)
    assert runner.stale_after == timedelta(seconds=45)
    assert EscalationScheduler(_failing_once([]), interval=1).stale_after == timedelta(seconds=30)
    runner.start(paused=True)  # the thread runs; every scan waits for our hand
    try:
        assert runner.status() == "ok", "a fresh start counts from its start"
        clock.now += timedelta(seconds=46)
        assert runner.status() == "stale"
        assert runner.run_once() is False, "an exception is caught, recorded, not raised"
        assert runner.status() == "stale", "a failed tick is not a sign of life"
        assert runner.last_error is not None
        assert "110101199003071234" not in runner.last_error
        assert runner.run_once() is True
        assert (runner.status(), runner.last_tick, runner.last_error) == ("ok", clock.now, None)
        clock.now += timedelta(seconds=45)
        assert runner.status() == "ok"
        clock.now += timedelta(seconds=1)
        assert runner.status() == "stale"
    finally:
        runner.stop()
    assert runner.status() == "stopped"


def test_readyz_is_503_for_a_stale_scheduler_only_when_it_is_enabled(
    make_client: Callable[..., TestClient], tmp_path: Path,
) -> None:
    enabled = make_client(database_url=f"sqlite:///{tmp_path / 'on.db'}",
                          scheduler_enabled=True, scheduler_interval_seconds=3600)
    runner = _runner(enabled)
    _wait_for(lambda: runner.status() == "ok" and runner.last_tick is not None)
    ready = enabled.get("/readyz")
    assert (ready.status_code, ready.json()["scheduler"]) == (200, "ok")
    # the first scan ran at start; the next is an hour away. Three intervals and a second on:
    skew = {"seconds": 0.0}
    clock = Clock(datetime.now(UTC) + timedelta(hours=3, seconds=1))
    runner.clock = clock
    runner.monotonic = lambda: time.monotonic() + skew["seconds"]
    skew["seconds"] = 3 * 3600 + 1
    ready = enabled.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unready", "database": "ok", "state": "ok",
                            "scheduler": "stale"}
    assert runner.run_once()
    assert enabled.get("/readyz").status_code == 200
    gauges = {sample.name: sample.value
              for family in text_string_to_metric_families(enabled.get("/metrics").text)
              for sample in family.samples}
    assert gauges["corecircle_scheduler_last_tick_seconds"] == pytest.approx(
        clock.now.timestamp())
    runner.scheduler.shutdown(wait=True)  # the thread is gone
    ready = enabled.get("/readyz")
    assert (ready.status_code, ready.json()["scheduler"]) == (503, "stopped")

    disabled = make_client(database_url=f"sqlite:///{tmp_path / 'off.db'}",
                           scheduler_enabled=False)
    ready = disabled.get("/readyz")
    assert (ready.status_code, ready.json()["scheduler"]) == (200, "disabled")


# -- S10: the wall clock jumps under the running scheduler --------------------------------------
class _WallClock:
    """The system clock as APScheduler and our scan read it, with a settable jump."""

    jump = timedelta(0)

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:
        return datetime.now(tz) + cls.jump


def test_the_loop_keeps_ticking_when_the_wall_clock_jumps_back_or_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """APScheduler 3 alone would sleep 2 h after the clock goes back 2 h (it waits by wall time)."""
    monkeypatch.setattr(_WallClock, "jump", timedelta(0))
    monkeypatch.setattr("apscheduler.schedulers.base.datetime", _WallClock)
    monkeypatch.setattr("apscheduler.executors.base.datetime", _WallClock)
    monkeypatch.setattr("bot.scheduler._wall_now", _WallClock.now)
    calls: list[datetime] = []
    runner = EscalationScheduler(lambda now: calls.append(now) or None, interval=0.1,
                                 clock=lambda: _WallClock.now(UTC))
    runner.start()
    try:
        _wait_for(lambda: len(calls) >= 2)
        for jump in (timedelta(hours=-2), timedelta(hours=2)):
            _WallClock.jump = jump
            seen = len(calls)
            _wait_for(lambda seen=seen: len(calls) >= seen + 3, seconds=5)
            assert abs(calls[-1] - datetime.now(UTC) - jump) < timedelta(minutes=1)
            assert runner.status() == "ok"
    finally:
        runner.stop()
