"""storage.outbox: one statement claims a batch; fences hold; backoff is jittered (SQLite + PG)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from escalation import followups
from storage import outbox
from storage.db import make_engine, make_sessionmaker, transaction, upgrade
from storage.enums import CircleKind, FollowUpKind, FollowUpStatus
from storage.models import Circle, FollowUp

T = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as s:
        s.add(Circle(chat_id="c1", kind=CircleKind.CORE, name="群"))
    yield factory
    engine.dispose()


def _rows(sessions: sessionmaker[Session], n: int, *, start: datetime = T) -> list[int]:
    with transaction(sessions) as s:
        circle = s.scalar(select(Circle.id))
        rows = [FollowUp(dedupe_key=f"k{i}", kind=FollowUpKind.MESSAGE, circle_id=circle,
                         text=f"第{i}条", due_at=start + timedelta(seconds=n - i),
                         status=FollowUpStatus.PENDING, created_at=T - timedelta(days=1))
                for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_a_batch_is_claimed_in_one_statement_oldest_due_first(
    sessions: sessionmaker[Session],
) -> None:
    ids = _rows(sessions, 5)
    statements: list[str] = []
    engine = sessions.kw["bind"]

    def seen(_conn: object, _cur: object, stmt: str, *_a: object) -> None:
        statements.append(stmt)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with transaction(sessions) as s:
            claims = outbox.claim(s, followups.FOLLOWUPS, owner="a", now=T + timedelta(hours=1),
                                  lease=timedelta(seconds=60), limit=3)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    writes = [x for x in statements if x.lstrip().upper().startswith(("UPDATE", "WITH"))]
    assert len(writes) == 1, statements
    if engine.dialect.name == "postgresql":
        assert "SKIP LOCKED" in writes[0]
    assert [c.id for c in claims] == list(reversed(ids))[:3], "due_at order, not id order"
    assert [c.fence for c in claims] == [1, 1, 1]


def test_concurrent_claimers_never_share_a_row(sessions: sessionmaker[Session]) -> None:
    ids = _rows(sessions, 200)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def run(owner: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while True:
            with transaction(sessions) as s:
                batch = outbox.claim(s, followups.FOLLOWUPS, owner=owner, limit=7,
                                     now=T + timedelta(hours=1), lease=timedelta(seconds=60))
            if not batch:
                break
            mine += [c.id for c in batch]
        got[owner] = mine

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [i for batch in got.values() for i in batch]
    assert sorted(claimed) == sorted(ids), "every row once, none twice"
    with sessions() as s:
        owners = {r[0]: r[1] for r in s.execute(select(FollowUp.id, FollowUp.lease_owner))}
    assert all(owners[i] == w for w, batch in got.items() for i in batch)


def test_an_expired_lease_is_reclaimed_and_the_old_owner_is_fenced(
    sessions: sessionmaker[Session],
) -> None:
    box = followups.FOLLOWUPS
    [fid] = _rows(sessions, 1, start=T - timedelta(seconds=1))  # due at T
    with sessions() as s:
        assert outbox.next_due(s, box, now=T - timedelta(hours=1)) == T
    with transaction(sessions) as s:
        [first] = outbox.claim(s, box, owner="a", now=T, lease=timedelta(seconds=30), limit=10)
    with transaction(sessions) as s:  # within the lease: nothing to claim
        assert outbox.claim(s, box, owner="b", now=T + timedelta(seconds=29),
                            lease=timedelta(seconds=30), limit=10) == []
        assert outbox.next_due(s, box, now=T) == T + timedelta(seconds=30), "the lease end"
    with transaction(sessions) as s:
        [second] = outbox.claim(s, box, owner="b", now=T + timedelta(seconds=31),
                                lease=timedelta(seconds=30), limit=10)
    assert (first.fence, second.fence) == (1, 2)
    with transaction(sessions) as s:
        assert not outbox.finish(s, box, fid, fence=first.fence, owner="a",
                                 values={"status": FollowUpStatus.SENT})
        assert not outbox.finish(s, box, fid, fence=second.fence, owner="a",
                                 values={"status": FollowUpStatus.SENT}), "owner fences too"
        assert outbox.finish(s, box, fid, fence=second.fence, owner="b",
                             values={"status": FollowUpStatus.SENT})
    with sessions() as s:
        assert s.get(FollowUp, fid).status == FollowUpStatus.SENT
        assert outbox.next_due(s, box, now=T) is None


def test_backoff_grows_is_capped_and_jittered() -> None:
    assert outbox.backoff(1, rand=lambda: 0.5) == timedelta(seconds=5)
    assert outbox.backoff(3, rand=lambda: 0.5) == timedelta(seconds=20)
    assert outbox.backoff(30, rand=lambda: 0.5) == timedelta(seconds=300)
    assert outbox.backoff(1, rand=lambda: 0.0) == timedelta(seconds=4)
    assert outbox.backoff(1, rand=lambda: 1.0) == timedelta(seconds=6)
    spread = {outbox.backoff(4) for _ in range(50)}
    assert len(spread) > 10, "two workers failing together do not come back together"
