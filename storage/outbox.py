"""Claim and lease for any outbox table: one statement claims a batch, a fence guards each finish.

An outbox is a table of rows that become due, are claimed by one worker for a lease, and are
finished (sent, failed, put back) by that worker only. `Outbox` names the columns; the helpers
know nothing of what the rows mean.

- `claim`: a single statement. On PostgreSQL
  `WITH picked AS (SELECT id ... ORDER BY ... LIMIT n FOR UPDATE SKIP LOCKED)
  UPDATE ... WHERE id IN (SELECT id FROM picked) RETURNING id, attempts`: concurrent claimers
  skip each other's rows instead of waiting or doubling. On SQLite the same statement without
  the lock clause: SQLite runs one writer at a time, so the statement is atomic by itself.
  A row is claimable when it is ready and due, or claimed with a lease that ran out.
- The fence of a claim is the attempt number it set (and the owner, where the table records
  one): `finish` writes only while the row still carries both, so a worker whose lease was
  taken over writes nothing.
- `backoff`: exponential with jitter, so a platform outage does not bring every worker back at
  the same instant.
- `next_due`: when the earliest ready row falls due or the earliest lease runs out (the
  scheduler sleeps until then).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

# A test hook: called with (outbox name, claimed ids) right after a claim commits.
AfterClaim = Callable[[str, list[int]], None]
_after_claim: list[AfterClaim] = []


def on_claim(hook: AfterClaim | None) -> None:
    """Install (or with None remove) the hook run after every committed claim (fault tests)."""
    _after_claim.clear()
    if hook is not None:
        _after_claim.append(hook)


def claimed_hook(name: str, ids: list[int]) -> None:
    """Run the installed hook; the caller calls it after its claim transaction committed."""
    if ids:
        for hook in _after_claim:
            hook(name, ids)


@dataclass(frozen=True)
class Outbox:
    """The columns of one outbox table."""

    name: str
    model: type[Any]
    status: InstrumentedAttribute[Any]
    due: InstrumentedAttribute[Any]  # a ready row is due when this is NULL or <= now
    lease_until: InstrumentedAttribute[Any]  # a claimed row is reclaimable after this
    attempts: InstrumentedAttribute[Any]
    ready: tuple[str, ...]
    claimed: str
    order_by: tuple[InstrumentedAttribute[Any], ...]
    owner: InstrumentedAttribute[Any] | None = None
    where: Sequence[ColumnElement[bool]] = field(default_factory=tuple)  # e.g. outbound only

    @property
    def id(self) -> InstrumentedAttribute[Any]:
        return self.model.id  # type: ignore[no-any-return]

    def claimable(self, now: datetime) -> ColumnElement[bool]:
        return and_(
            *self.where,
            or_(
                and_(self.status.in_(self.ready), or_(self.due.is_(None), self.due <= now)),
                and_(self.status == self.claimed, self.lease_until < now),
            ),
        )


@dataclass(frozen=True)
class Claim:
    id: int
    fence: int  # the attempt number this claim set


def claim(
    session: Session, box: Outbox, *, owner: str, now: datetime, lease: timedelta, limit: int,
    values: dict[str, Any] | None = None,
) -> list[Claim]:
    """Claim at most `limit` claimable rows in one statement, in the outbox's order."""
    locking = session.get_bind().dialect.name == "postgresql"
    pick = select(box.id).where(box.claimable(now)).order_by(*box.order_by).limit(limit)
    if locking:
        pick = pick.with_for_update(skip_locked=True)
    picked = pick.cte("picked")
    sets: dict[Any, Any] = {box.status: box.claimed, box.lease_until: now + lease,
                            box.attempts: box.attempts + 1, **(values or {})}
    if box.owner is not None:
        sets[box.owner] = owner
    stmt = (
        update(box.model)
        .where(box.id.in_(select(picked.c.id)), box.claimable(now))
        .values(sets)
        .returning(box.id, box.attempts, *box.order_by)
        .execution_options(synchronize_session=False)
    )
    # RETURNING comes in no promised order: sort here
    rows = sorted(session.execute(stmt).all(), key=lambda r: tuple((v is None, v) for v in r[2:]))
    return [Claim(int(r[0]), int(r[1])) for r in rows]


def finish(
    session: Session, box: Outbox, row_id: int, *, fence: int, owner: str | None = None,
    from_status: str | None = None, values: dict[str, Any],
) -> bool:
    """Write `values` only if the row is still ours (same attempt, owner and status)."""
    conditions: list[ColumnElement[bool]] = [box.id == row_id, box.attempts == fence]
    if box.owner is not None and owner is not None:
        conditions.append(box.owner == owner)
    conditions.append(box.status == (from_status or box.claimed))
    result = session.execute(
        update(box.model).where(*conditions).values(values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def next_due(session: Session, box: Outbox, *, now: datetime) -> datetime | None:
    """The earliest moment a row of this outbox becomes claimable (now or later), if any."""
    ready = session.scalar(
        select(func.min(box.due)).where(*box.where, box.status.in_(box.ready))
    )
    unready = session.scalar(
        select(box.id).where(*box.where, box.status.in_(box.ready), box.due.is_(None)).limit(1)
    )
    leased = session.scalar(
        select(func.min(box.lease_until)).where(*box.where, box.status == box.claimed)
    )
    times = [t for t in (ready, leased) if t is not None]
    if unready is not None:
        times.append(now)
    return min(times) if times else None


def backoff(
    attempt: int, *, base: float = 5.0, cap: float = 300.0, jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> timedelta:
    """base * 2**(attempt-1), at most `cap`, spread by +/- `jitter` (a fraction)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return timedelta(seconds=delay * (1 - jitter + 2 * jitter * rand()))


