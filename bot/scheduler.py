"""The scheduler: one APScheduler job that scans the database, pulled in to the next due row.

Never one APScheduler job per follow-up (APScheduler 3 drops missed date jobs, and deletes
pending jobs whose function was renamed): the outbox and the tickets' deadlines are the record,
and each tick reads what is due from them. The one job lives in a MemoryJobStore and calls our
code directly, so nothing about it is persisted and a restart or a rename loses nothing (see
docs/measured-facts.md, "APScheduler"). The first tick runs at start, so what fell due while
the process was down goes out at once; APScheduler's misfire handling never decides
whether a follow-up is sent.

On time: after each scan the job's next run is pulled in to the next due row (a follow-up, an
SLA rung, a lease running out), and `wake(at)` pulls it in when a new row is due sooner
(`storage.wakeups`: in-process after a commit, and across processes by PostgreSQL NOTIFY). The
interval is only the heartbeat that bounds the sleep. At most one scan runs at a time; a wake-up
during a scan queues exactly one more (two instances, one worker thread), so none is lost.

Clock jumps: APScheduler 3 sleeps until the next run time by the wall clock, so a clock
set back 2 h would stall the scan for 2 h. Our scheduler wakes at least once an interval and
pulls the job in when its next run lies implausibly far ahead. The outbox decides what is
sent, so a jump either way sends nothing twice.

Liveness: every successful tick is stamped (`last_tick`, and the Prometheus gauge
`corecircle_scheduler_last_tick_seconds`); a tick that raises is logged (masked by the log
record factory) and counted, and the next tick runs as usual. `GET /readyz` reports the
scheduler stale when its last successful tick is older than `stale_after` (3 intervals, at
least 30 s), measured on the monotonic clock so a wall-clock jump cannot hide a stall.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.metrics import Metrics
from bot.services import Services, build_services
from bot.settings import Settings
from escalation.jobs import TickReport, next_due, tick
from storage import wakeups
from storage.pii import mask

log = logging.getLogger(__name__)

JOB_ID = "escalation-tick"
MIN_STALE_SECONDS = 30.0
STALE_INTERVALS = 3

# The running scheduler of each app's services, for /readyz (the app keeps no other handle).
_RUNNING: dict[int, EscalationScheduler] = {}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _wall_now(tz: tzinfo) -> datetime:
    return datetime.now(tz)


class _JumpSafeScheduler(BackgroundScheduler):
    """A BackgroundScheduler that survives the wall clock being set back.

    APScheduler 3 computes how long to sleep from the wall clock and keeps each job's next run
    time in wall-clock terms; after the clock goes back 2 h both lie 2 h ahead. This one never
    sleeps longer than `max_wait` seconds and reschedules, to now, a job whose next run is more
    than `max_wait` ahead (which a running interval job never is unless the clock went back).
    """

    def __init__(self, *, max_wait: float, **options: Any) -> None:
        super().__init__(**options)
        self._max_wait = max_wait

    def _process_jobs(self) -> float | None:
        wait: float | None = super()._process_jobs()
        if wait is None:  # paused, or no jobs: sleep until resumed or a job is added
            return None
        now = _wall_now(self.timezone)
        for job in self.get_jobs():
            ahead = (job.next_run_time - now).total_seconds() if job.next_run_time else 0.0
            if ahead > self._max_wait + 1:
                log.warning("the wall clock went back by about %.0f s; running %s now",
                            ahead - self._max_wait, job.id)
                job.modify(next_run_time=now)
                wait = 0.0
        return min(wait, self._max_wait)


class EscalationScheduler:
    """One interval job around `job(now)`, with a liveness record a health check can read.

    `next_due(now)` (optional) says when the next row falls due after a scan; the job is pulled
    in to then. `wake(at)` pulls it in from outside (a new row due sooner).
    """

    def __init__(
        self,
        job: Callable[[datetime], TickReport | None],
        *,
        interval: float,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        stale_after: float | None = None,
        next_due: Callable[[datetime], datetime | None] | None = None,
    ) -> None:
        self.job = job
        self.next_due = next_due
        self._wake_lock = threading.Lock()
        self.on_stop: list[Callable[[], None]] = []  # unsubscribe, stop the listener
        self.interval = float(interval)
        self.metrics = metrics
        self.clock = clock  # the `now` each scan runs at, and the time stamped on a tick
        self.monotonic = monotonic  # how long since the last tick (immune to clock jumps)
        self.stale_after = timedelta(
            seconds=stale_after or max(STALE_INTERVALS * self.interval, MIN_STALE_SECONDS)
        )
        self.started_at: datetime | None = None
        self.last_tick: datetime | None = None
        self._alive_since: float | None = None  # monotonic: start, then each successful tick
        self.last_error: str | None = None
        self.errors = 0
        # Only a memory store: a persistent store would pickle a reference to the function and
        # delete the job when that reference no longer resolves.
        self.scheduler = _JumpSafeScheduler(
            max_wait=self.interval,
            timezone=UTC,
            jobstores={"default": MemoryJobStore()},
            # One worker, two instances: a run asked for during a scan waits for it, then runs.
            executors={"default": ThreadPoolExecutor(max_workers=1)},
        )

    # -- running ---------------------------------------------------------------------------
    def start(self, *, paused: bool = False) -> None:
        """The first scan runs at once; `paused` holds every scan until `resume()` (tests)."""
        self.started_at = self.clock()
        self._alive_since = self.monotonic()
        self.scheduler.add_job(
            self.run_once, "interval", seconds=self.interval, id=JOB_ID,
            coalesce=True, max_instances=2,
            # At start, not one interval later: what fell due while we were down goes now.
            next_run_time=datetime.now(UTC),
            # A late run (a busy or suspended process, or one queued behind a long scan) still
            # runs; it scans, so nothing doubles.
            misfire_grace_time=None,
        )
        self.scheduler.start(paused=paused)

    def stop(self) -> None:
        for undo in self.on_stop:
            undo()
        self.on_stop.clear()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # let a running scan commit before the engine closes

    def run_once(self) -> bool:
        """One tick; True if it succeeded. Never raises: a failing scan must not end the loop."""
        now = self.clock()
        try:
            report = self.job(now)
        except Exception as exc:  # any failure is logged; the next tick retries
            self.errors += 1
            self.last_error = mask(f"{type(exc).__name__}: {exc}")[:256]
            if self.metrics is not None:
                self.metrics.scheduler_errors.inc()
            log.exception("escalation scan failed at %s; the next tick runs as usual",
                          now.isoformat())
            return False
        self.last_tick = now
        self._alive_since = self.monotonic()
        self.last_error = None
        if self.metrics is not None:
            self.metrics.scheduler_last_tick.set(now.timestamp())
            if report is not None:
                for outcome in report.followups.values():
                    self.metrics.followups.labels(outcome=outcome).inc()
        self._plan_next(now)
        return True

    def _plan_next(self, now: datetime) -> None:
        """Pull the next run in to the next due row (a failure leaves it to the heartbeat)."""
        if self.next_due is None:
            return
        try:
            at = self.next_due(now)
        except Exception:  # the heartbeat still runs; the trace is logged
            log.exception("could not read the next due time; waiting for the heartbeat")
            return
        if at is not None:
            self.wake(at)

    def wake(self, at: datetime | None = None) -> None:
        """Run a scan at `at` (default: now) unless one is already planned sooner."""
        if not self.scheduler.running:
            return
        at = at or datetime.now(UTC)
        with self._wake_lock:
            job = self.scheduler.get_job(JOB_ID)
            if job is None or job.next_run_time is None:
                return
            if at < job.next_run_time:
                job.modify(next_run_time=at)

    # -- health ----------------------------------------------------------------------------
    def status(self) -> str:
        """ok; stale (no successful tick for `stale_after`); stopped (the thread is gone)."""
        if not self.scheduler.running or self._alive_since is None:
            return "stopped"
        age = self.monotonic() - self._alive_since
        return "stale" if age > self.stale_after.total_seconds() else "ok"

    def job_stores(self) -> dict[str, BaseJobStore]:
        """The scheduler's job stores by alias (APScheduler 3 keeps them in `_jobstores`)."""
        stores: dict[str, BaseJobStore] = self.scheduler._jobstores
        return dict(stores)

    def health(self) -> dict[str, Any]:
        return {
            "status": self.status(),
            "last_tick": self.last_tick.isoformat() if self.last_tick else None,
        }


def start_scheduler(
    svc: Services, *, clock: Callable[[], datetime] = _utcnow
) -> EscalationScheduler | None:
    settings = svc.settings
    if not settings.scheduler_enabled:
        return None
    policy = settings.escalation_policy()
    # Unique per scheduler (a second one in this process must not share its leases).
    owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"  # <= 64
    stale_after = timedelta(hours=settings.followup_stale_hours)
    care = settings.care_settings() if settings.care_enabled else None

    def scan(now: datetime) -> TickReport:
        return tick(svc.sessions, svc.scripts, policy, now=now, owner=owner,
                    stale_after=stale_after, batch_size=settings.followup_batch_size,
                    care=care, bot_name=settings.bot_name)

    def due(now: datetime) -> datetime | None:
        return next_due(svc.sessions, now=now, care=care)

    runner = EscalationScheduler(scan, interval=settings.scheduler_interval_seconds,
                                 metrics=svc.metrics, clock=clock, next_due=due)
    for alias, store in runner.job_stores().items():
        if not isinstance(store, MemoryJobStore):  # pragma: no cover - a guard for edits
            raise RuntimeError(f"job store {alias!r} persists jobs; the database is the record")
    runner.start()
    runner.on_stop.append(wakeups.subscribe(runner.wake))
    if svc.db.dialect.name == "postgresql":  # other processes' new rows wake us too
        listener = wakeups.PgListener(settings.resolved_database_url())
        listener.start()
        runner.on_stop.append(listener.stop)
    _RUNNING[id(svc)] = runner
    return runner


def scheduler_of(svc: Services) -> EscalationScheduler | None:
    """The scheduler running for these services, if any (read by /readyz)."""
    return _RUNNING.get(id(svc))


def stop_scheduler(scheduler: EscalationScheduler | None) -> None:
    if scheduler is None:
        return
    for key, running in list(_RUNNING.items()):
        if running is scheduler:
            del _RUNNING[key]
    scheduler.stop()


def run_standalone(settings: Settings, *, stop: threading.Event | None = None) -> None:
    """`corecircle scheduler`: the scan, the outbox dispatcher and the wake-up listener, until
    SIGTERM or SIGINT (or `stop`). Any number may run: every claim is fenced."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    svc = build_services(settings)
    svc.channels.start()
    runner = start_scheduler(svc)
    log.info("scheduler started (dispatching: %s); stop with SIGTERM",
             svc.channels.dispatching)
    try:
        while not stop.wait(1.0):
            if runner is not None and runner.status() == "stopped":
                raise SystemExit("the scheduler thread is gone; exiting so a supervisor restarts")
    finally:
        stop_scheduler(runner)
        svc.close()
        log.info("scheduler stopped")
