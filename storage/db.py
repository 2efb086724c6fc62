"""Database engine, sessions and schema migrations (Alembic, applied on start)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# filelock logs every acquire and release at DEBUG with the lock object's id(), a long number
# that reads like a phone number to anyone scanning logs for personal data: keep it quiet.
logging.getLogger("filelock").setLevel(logging.INFO)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or cannot take writes right now."""


# Threads that may run the pipeline at once, and the connections behind them. SQLite has one
# writer at a time (and this process serialises its own), so a few threads is all it can use;
# more only queue inside SQLite's busy handler. PostgreSQL gets one connection per thread.
SQLITE_THREADS = 8
POSTGRES_THREADS = 20
WRITER_WAIT_SECONDS = 10.0

_writer_locks: dict[str, threading.RLock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(url: str) -> threading.RLock:
    """One in-process writer lock per SQLite database file."""
    with _writer_locks_guard:
        return _writer_locks.setdefault(url, threading.RLock())


def worker_threads(url: str) -> int:
    """How many request threads the app should run for this database."""
    return SQLITE_THREADS if url.startswith("sqlite") else POSTGRES_THREADS


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine tuned for the dialect: SQLite gets WAL, a busy timeout and one writer at a time
    in this process; PostgreSQL a pool as large as the request threads."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False},
            pool_size=SQLITE_THREADS, max_overflow=SQLITE_THREADS, pool_timeout=10,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit is atomic and survives the process being killed; only the
            # last transactions before an operating-system crash or power cut may roll back
            # (no fsync per commit, which was the largest share of a message's time).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        _serialise_sqlite_writers(engine, _writer_lock(url))
        return engine
    # No pre-ping: it costs a round trip per checkout. After a database restart the first
    # statement on a stale connection fails (that request gets a 503 with Retry-After and is
    # retried) and SQLAlchemy then discards every pooled connection from before the restart.
    return create_engine(
        url,
        echo=echo,
        pool_size=POSTGRES_THREADS,
        max_overflow=5,
        pool_timeout=3,
        connect_args={"connect_timeout": 3},
    )


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _serialise_sqlite_writers(engine: Engine, lock: threading.RLock) -> None:
    """Take the process's writer lock at a transaction's first write, release it once the
    transaction has committed or rolled back.

    pysqlite opens the write transaction at the first DML, so this brackets exactly the time
    SQLite's own write lock is held: threads queue here, in order, instead of spinning in
    SQLite's busy handler (which answered `database is locked` after 5 s under 50 writers).
    Other processes on the same file still meet the busy timeout."""
    holders: set[int] = set()  # id() of the DBAPI connections holding the lock
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def _release(dbapi_conn: Any) -> None:
        if id(dbapi_conn) in holders:
            holders.discard(id(dbapi_conn))
            with suppress(RuntimeError):  # released by another thread (GC): nothing held
                lock.release()

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        dbapi_conn = cursor.connection
        if id(dbapi_conn) in holders or not statement.lstrip()[:7].upper().startswith(_WRITES):
            return
        if not lock.acquire(timeout=WRITER_WAIT_SECONDS):
            raise sqlite3.OperationalError("database is locked (in-process writer queue)")
        holders.add(id(dbapi_conn))

    def do_commit(dbapi_conn: Any) -> None:
        try:
            commit(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def do_rollback(dbapi_conn: Any) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, _record: Any) -> None:
        _release(dbapi_conn)  # belt and braces: a connection back in the pool holds nothing


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


STARTUP_LOCK_KEY = 0x636F7265  # "core": pg_advisory_lock key for migrations and seeding


@contextmanager
def startup_lock(engine: Engine, timeout: float = 120.0) -> Iterator[None]:
    """One process at a time through migrations and seeding, so workers that start together
    all come up (unserialised, two of them raced on `alembic_version` and on the demo rows):
    a PostgreSQL session advisory lock, or a file lock beside the SQLite file. Either is freed
    by the operating system or the server if the process dies holding it."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = {int(timeout * 1000)}"))
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": STARTUP_LOCK_KEY})
                conn.rollback()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with FileLock(f"{database}.startup.lock", timeout=timeout):
        yield


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; safe on every start, and on
    several processes starting at once)."""
    with startup_lock(engine):
        command.upgrade(alembic_config(engine), "heads")


def schema_is_current(engine: Engine) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == heads
