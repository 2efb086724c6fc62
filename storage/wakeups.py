"""Wake-ups: a committed row that falls due soon wakes whoever sends it, here and elsewhere.

The schedulers sleep until the next due row they know of. A transaction that adds a row due
sooner calls `announce(session, due_at)`:

- in this process, subscribers (`subscribe`) hear of it after the transaction commits (never
  before: a woken scheduler must find the row), and never if it rolls back;
- on PostgreSQL the same transaction runs `pg_notify('corecircle_due', <ISO time>)`, which
  PostgreSQL delivers on commit to every process listening (`PgListener`), so a scheduler in
  its own process wakes too. On SQLite (one process by design) the in-process path suffices;
  a scheduler process over SQLite falls back to its heartbeat.

A wake-up is only a hint: the database is the record, and every scheduler also rescans on a
heartbeat, so a lost notification delays a row by at most one heartbeat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "corecircle_due"
_KEY = "corecircle_wakeups"

Subscriber = Callable[[datetime], None]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def announce(session: Session, at: datetime) -> None:
    """A row in this transaction falls due at `at`: wake the schedulers once it commits."""
    pending: list[datetime] = session.info.setdefault(_KEY, [])
    if pending and min(pending) <= at:
        return  # an earlier wake-up is already on its way
    pending.append(at)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, at.astimezone(UTC).isoformat())))


def subscribe(fn: Subscriber) -> Callable[[], None]:
    """Call `fn(at)` for every announced due time; returns the unsubscribe function."""
    with _lock:
        _subscribers.append(fn)

    def unsubscribe() -> None:
        with _lock:
            if fn in _subscribers:
                _subscribers.remove(fn)

    return unsubscribe


def publish(at: datetime) -> None:
    """Tell every subscriber in this process (a listener relays other processes' wake-ups)."""
    with _lock:
        targets = list(_subscribers)
    for fn in targets:
        try:
            fn(at)
        except Exception:  # a subscriber's failure must not break the committer
            log.exception("a wake-up subscriber failed")


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: list[datetime] | None = session.info.pop(_KEY, None)
    if pending:
        publish(min(pending))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)


def parse(payload: str) -> datetime:
    """A notification's payload; anything unreadable means "now" (a rescan is always safe)."""
    try:
        at = datetime.fromisoformat(payload)
    except ValueError:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class PgListener:
    """LISTEN on PostgreSQL in a thread and relay each notification to `publish`.

    A lost connection is retried with a growing pause; after reconnecting it publishes "now",
    because notifications sent while it was away are gone.
    """

    def __init__(self, url: str, *, relay: Subscriber = publish, poll: float = 0.25) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.relay, self.poll = relay, poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the thread to end (it notices within `poll` seconds); wait at most `timeout`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        pause = 0.5
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if not first:
                        self.relay(datetime.now(UTC))
                    first, pause = False, 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=self.poll):
                            self.relay(parse(note.payload))
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("wake-up listener lost PostgreSQL (%s); retrying in %.1f s",
                            type(exc).__name__, pause)
                self._stop.wait(pause)
                pause = min(pause * 2, 10.0)
