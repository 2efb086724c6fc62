"""The promise ledger: follow-ups in the outbox, kept, cancelled or sent exactly once.

Exactly once: a row is claimed with a conditional UPDATE (only a pending row that is due, or a
claimed row whose lease ran out), and marked sent by an UPDATE fenced on the claimer's name in
the same transaction that queues its outbound messages. A claimer whose lease was taken over
writes nothing. The unique dedupe_key stops the same promise from being enqueued twice.

Lateness: a row found due later than it should be (the process was down, the clock
jumped, a backlog after an outage) is still sent once while it is at most `stale_after` late;
beyond that it is marked stale, nothing goes to the customer, and the agent and supervisor are
told through the support circle so a human contacts the customer. Due rows are claimed oldest
first in batches, so a backlog drains in order a batch per tick.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from escalation import events
from escalation.notify import display_name, queue, support_circle_of, ticket_variables
from storage import outbox, wakeups
from storage.db import transaction
from storage.enums import CircleStatus, FollowUpKind, FollowUpStatus, TicketStatus
from storage.errors import BadRequest, Conflict, NotFound
from storage.formats import moment
from storage.models import Circle, FollowUp, Ticket
from storage.outbox import Outbox
from storage.scripts import ScriptError, ScriptLibrary

log = logging.getLogger(__name__)

PROGRESS_SCRIPT = "followup.progress_note"
MISSED_SCRIPT = "followup.promise_missed"
FAILED_SCRIPT = "support.followup_failed"
OPEN_STATUSES = (FollowUpStatus.PENDING, FollowUpStatus.CLAIMED)
STALE_AFTER = timedelta(hours=24)  # default lateness limit; the app passes its setting
BATCH_SIZE = 100  # default rows claimed per tick
MAX_CLAIMS = 5  # a row claimed this often without an end (its sender keeps dying) fails
STALE_STATUS = FollowUpStatus.STALE
STALE_PREFIX = "stale:"


def make_key(ticket_id: int | None, circle_id: int, kind: str, due_at: datetime, text: str) -> str:
    """The same promise (ticket, kind, time, words) always gets the same key."""
    digest = hashlib.sha256(f"{kind}|{due_at.isoformat()}|{text}".encode()).hexdigest()[:32]
    return f"t{ticket_id or 0}:c{circle_id}:{digest}"


def create(
    session: Session,
    *,
    circle_id: int,
    ticket_id: int | None,
    recipient_id: str | None,
    kind: FollowUpKind,
    text: str,
    due_at: datetime,
    now: datetime,
    created_by: str,
    dedupe_key: str | None = None,
) -> tuple[FollowUp, bool]:
    """The follow-up and whether this call created it (False: the same one was already owed)."""
    if due_at.tzinfo is None:
        raise BadRequest("due_at needs a time zone, e.g. 2026-12-05T15:00:00+08:00",
                         code="FOLLOWUP_DUE_NAIVE")
    if due_at <= now:
        raise BadRequest("due_at is in the past; a follow-up must be due later",
                         code="FOLLOWUP_DUE_PAST")
    circle = session.get(Circle, circle_id)
    if circle is None:
        raise NotFound(f"no circle {circle_id}", code="CIRCLE_UNKNOWN")
    if circle.status != CircleStatus.ACTIVE:
        raise Conflict(f"circle {circle.chat_id!r} has been dissolved; nobody would receive it",
                       code="CIRCLE_DISSOLVED")
    key = dedupe_key or make_key(ticket_id, circle_id, kind, due_at, text)
    existing = session.scalar(select(FollowUp).where(FollowUp.dedupe_key == key))
    if existing is not None:
        return existing, False
    row = FollowUp(
        dedupe_key=key, kind=kind, circle_id=circle_id, ticket_id=ticket_id,
        recipient_id=recipient_id, text=text, due_at=due_at, status=FollowUpStatus.PENDING,
        created_by=created_by, created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # A concurrent duplicate (a retried webhook) committed first: one row, theirs.
        found = session.scalar(select(FollowUp).where(FollowUp.dedupe_key == key))
        if found is None:  # pragma: no cover - the unique key said it exists
            raise
        return found, False
    wakeups.announce(session, due_at)  # a scheduler asleep until later wakes in time
    if ticket_id is not None:
        events.record(session, ticket_id, "followup_set", now=now, actor_id=created_by,
                      followup_id=row.id, followup_kind=kind.value,
                      due_at=due_at.isoformat())
    return row, True


def keep_promises(session: Session, ticket_ids: list[int], *, now: datetime) -> int:
    """The agent answered in the circle before the promise came due: nothing will be sent."""
    if not ticket_ids:
        return 0
    result = session.execute(
        update(FollowUp)
        .where(
            FollowUp.ticket_id.in_(ticket_ids),
            FollowUp.kind == FollowUpKind.PROMISE,
            FollowUp.status == FollowUpStatus.PENDING,
            FollowUp.due_at > now,
            FollowUp.created_at < now,
        )
        .values(status=FollowUpStatus.KEPT, sent_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def settle_for_resolved(session: Session, ticket_id: int, *, now: datetime) -> None:
    """A resolved ticket keeps its promises and cancels its scheduled messages (idempotent)."""
    for kind, status in ((FollowUpKind.PROMISE, FollowUpStatus.KEPT),
                         (FollowUpKind.MESSAGE, FollowUpStatus.CANCELLED)):
        session.execute(
            update(FollowUp)
            .where(FollowUp.ticket_id == ticket_id, FollowUp.kind == kind,
                   FollowUp.status == FollowUpStatus.PENDING)
            .values(status=status)
            .execution_options(synchronize_session=False)
        )


def cancel(session: Session, followup: FollowUp, *, actor_id: str, now: datetime) -> FollowUp:
    """Cancelling twice is fine; cancelling one already sent is a conflict."""
    if followup.status == FollowUpStatus.CANCELLED:
        return followup
    if followup.status != FollowUpStatus.PENDING:
        raise Conflict(f"follow-up {followup.id} is {followup.status}; only pending ones cancel",
                       code="FOLLOWUP_NOT_PENDING")
    followup.status = FollowUpStatus.CANCELLED
    if followup.ticket_id is not None:
        events.record(session, followup.ticket_id, "followup_cancelled", now=now,
                      actor_id=actor_id, followup_id=followup.id)
    return followup


# -- the sender -------------------------------------------------------------------------------
FOLLOWUPS = Outbox(
    name="followups", model=FollowUp, status=FollowUp.status, due=FollowUp.due_at,
    lease_until=FollowUp.lease_until, attempts=FollowUp.attempts,
    ready=(FollowUpStatus.PENDING,), claimed=FollowUpStatus.CLAIMED,
    order_by=(FollowUp.due_at, FollowUp.id), owner=FollowUp.lease_owner,
)


def claim_due(
    sessions: sessionmaker[Session], *, owner: str, now: datetime, lease_seconds: int,
    limit: int = BATCH_SIZE,
) -> list[int]:
    """Claim at most `limit` due rows, oldest due first, for `owner`; each by one claimer only.

    One statement (`storage.outbox.claim`): concurrent claimers skip each other's rows. A clock
    that jumped back leaves sent rows sent and claimed rows leased (a lease is only taken over
    once it ran out by the claimer's own clock), so no jump sends anything twice.
    """
    with transaction(sessions) as s:
        claims = outbox.claim(s, FOLLOWUPS, owner=owner, now=now, limit=limit,
                              lease=timedelta(seconds=lease_seconds))
    ids = [c.id for c in claims]
    outbox.claimed_hook(FOLLOWUPS.name, ids)
    return ids


def next_due(session: Session, *, now: datetime) -> datetime | None:
    """When the next follow-up falls due, or the next lease runs out."""
    return outbox.next_due(session, FOLLOWUPS, now=now)


class _Fenced(Exception):
    """Our lease was taken over: everything this delivery wrote must roll back."""


def deliver(
    sessions: sessionmaker[Session], scripts: ScriptLibrary, followup_id: int, *, owner: str,
    now: datetime, stale_after: timedelta = STALE_AFTER,
) -> str:
    """Turn one claimed follow-up into queued outbound messages.

    Returns the outcome: the final status ("sent", "kept", "failed"), "stale" for a row found
    more than `stale_after` late (not sent; the support circle alerted), or "fenced".
    """
    try:
        with transaction(sessions) as s:
            row = s.get(FollowUp, followup_id)
            if row is None or row.status != FollowUpStatus.CLAIMED or row.lease_owner != owner:
                raise _Fenced
            fence = row.attempts
            status, error = _decide(s, scripts, row, now, stale_after)
            if not outbox.finish(s, FOLLOWUPS, followup_id, fence=fence, owner=owner, values={
                "status": status, "sent_at": now if status == FollowUpStatus.SENT else None,
                "lease_owner": None, "lease_until": None, "last_error": error,
            }):
                raise _Fenced
            return _outcome(status, error)
    except _Fenced:
        log.warning("follow-up %s: lease lost by %s; another sender owns it", followup_id, owner)
        return "fenced"


def deliver_batch(
    sessions: sessionmaker[Session], scripts: ScriptLibrary, followup_ids: list[int], *,
    owner: str, now: datetime, stale_after: timedelta = STALE_AFTER,
) -> dict[int, str]:
    """Deliver a claimed batch in one transaction (the fast path; outcomes as `deliver`).

    The first statement re-asserts our claim on every row (`UPDATE ... WHERE owner = us
    RETURNING id`): rows another sender took over are "fenced", and the rest stay locked to
    us until the commit (PostgreSQL row locks; SQLite's single writer), so the plain updates
    that follow need no further fence. If anything in the batch fails, the transaction rolls
    back and the caller delivers row by row, so one bad row never holds up the others.
    """
    if not followup_ids:
        return {}
    with transaction(sessions) as s:
        mine = set(s.scalars(
            update(FollowUp)
            .where(FollowUp.id.in_(followup_ids), FollowUp.status == FollowUpStatus.CLAIMED,
                   FollowUp.lease_owner == owner)
            .values(lease_owner=owner)
            .returning(FollowUp.id)
            .execution_options(synchronize_session=False)
        ))
        outcomes = {fid: "fenced" for fid in followup_ids if fid not in mine}
        rows = list(s.scalars(select(FollowUp).where(FollowUp.id.in_(mine))
                              .order_by(FollowUp.due_at, FollowUp.id)))
        # One query each for the circles and tickets; held here (the identity map is weak)
        # so s.get() answers from memory. No autoflush: the INSERTs and UPDATEs go as batches
        # at the commit.
        circles = list(s.scalars(select(Circle).where(
            Circle.id.in_({r.circle_id for r in rows}))))
        ticket_ids = {r.ticket_id for r in rows if r.ticket_id}
        tickets = list(s.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)))) \
            if ticket_ids else []
        with s.no_autoflush:
            for row in rows:
                status, error = _decide(s, scripts, row, now, stale_after, flush=False)
                row.status, row.last_error = status, error
                row.sent_at = now if status == FollowUpStatus.SENT else None
                row.lease_owner, row.lease_until = None, None
                outcomes[row.id] = _outcome(status, error)
        del circles, tickets
    for fid, outcome in outcomes.items():
        if outcome == "fenced":
            log.warning("follow-up %s: lease lost by %s; another sender owns it", fid, owner)
    return {fid: outcomes[fid] for fid in followup_ids}


def _outcome(status: FollowUpStatus, error: str | None) -> str:
    return "stale" if error is not None and error.startswith(STALE_PREFIX) else status.value


def _decide(
    s: Session, scripts: ScriptLibrary, row: FollowUp, now: datetime, stale_after: timedelta,
    *, flush: bool = True,
) -> tuple[FollowUpStatus, str | None]:
    if row.attempts > MAX_CLAIMS:  # claimed again and again, never finished: a person decides
        circle = s.get(Circle, row.circle_id)
        ticket = s.get(Ticket, row.ticket_id) if row.ticket_id else None
        _alert_failed(s, scripts, row, circle, ticket, now=now)
        return FollowUpStatus.FAILED, f"gave up after {row.attempts - 1} claims"
    if not flush and row.kind == FollowUpKind.MESSAGE:
        return _work(s, scripts, row, now, stale_after, flush=False)
    return _work(s, scripts, row, now, stale_after)


def lateness(row: FollowUp, now: datetime) -> timedelta:
    return now - row.due_at


def is_stale(row: FollowUp, now: datetime, stale_after: timedelta = STALE_AFTER) -> bool:
    return lateness(row, now) > stale_after


def _work(
    s: Session, scripts: ScriptLibrary, row: FollowUp, now: datetime,
    stale_after: timedelta = STALE_AFTER, *, flush: bool = True,
) -> tuple[FollowUpStatus, str | None]:
    circle = s.get(Circle, row.circle_id)
    ticket = s.get(Ticket, row.ticket_id) if row.ticket_id else None
    if row.kind == FollowUpKind.PROMISE and ticket and ticket.status == TicketStatus.RESOLVED:
        return FollowUpStatus.KEPT, None
    if circle is None or circle.status != CircleStatus.ACTIVE:
        _alert_failed(s, scripts, row, circle, ticket, now=now)
        return FollowUpStatus.FAILED, "circle dissolved"
    if is_stale(row, now, stale_after):
        # Too late to say it as written ("提醒您明天体检" two days on): a human takes over.
        late_h = lateness(row, now).total_seconds() / 3600
        limit_h = stale_after.total_seconds() / 3600
        log.warning("follow-up %s is %.1f h late (limit %g h): marked stale, not sent",
                    row.id, late_h, limit_h)
        _alert_failed(s, scripts, row, circle, ticket, now=now, event="followup_stale")
        return STALE_STATUS, f"{STALE_PREFIX} {late_h:.1f} h late (limit {limit_h:g} h); not sent"
    try:
        if row.kind == FollowUpKind.MESSAGE:
            queue(s, circle, row.text, now=now, to=row.recipient_id, flush=flush)
            return FollowUpStatus.SENT, None
        _promise_missed(s, scripts, row, circle, ticket, now=now)
    except ScriptError as exc:
        _alert_failed(s, scripts, row, circle, ticket, now=now)
        return FollowUpStatus.FAILED, str(exc)[:256]
    return FollowUpStatus.SENT, None


def _promise_missed(
    s: Session, scripts: ScriptLibrary, row: FollowUp, circle: Circle, ticket: Ticket | None,
    *, now: datetime,
) -> None:
    """跟单到底: a warm progress note to the customer, an alert to agent and supervisor."""
    customer = circle.customer
    # Name the circle's agent: "您的顾问" only when the circle has none.
    variables = {
        "honorific": customer.honorific if customer else scripts.default("honorific"),
        "agent_name": display_name(s, circle.agent_id, scripts.default("agent_name")),
        "due_time": moment(row.due_at),
    }
    if ticket is not None:
        variables |= ticket_variables(s, scripts, ticket, circle, due_time=moment(row.due_at))
    note = scripts.render(PROGRESS_SCRIPT, variables)
    queue(s, circle, note.text, now=now, to=row.recipient_id, script=note)
    support = support_circle_of(s, (ticket.assignee_id if ticket else None) or circle.agent_id)
    if ticket is not None:
        events.record(s, ticket.id, "promise_missed", now=now, followup_id=row.id)
        if support is not None:
            alert = scripts.render(MISSED_SCRIPT, variables)
            queue(s, support, alert.text, now=now, script=alert)


def _alert_failed(
    s: Session, scripts: ScriptLibrary, row: FollowUp, circle: Circle | None,
    ticket: Ticket | None, *, now: datetime, event: str = "followup_failed",
) -> None:
    """It cannot be sent: the supervisor hears of it, through the agent's support circle."""
    if ticket is not None:
        events.record(s, ticket.id, event, now=now, followup_id=row.id)
    support = support_circle_of(s, circle.agent_id if circle else None)
    if support is None or circle is None:
        return
    alert = scripts.render(FAILED_SCRIPT, {"circle_name": circle.name,
                                           "due_time": moment(row.due_at),
                                           "excerpt": row.text[:60]})
    queue(s, support, alert.text, now=now, script=alert)
