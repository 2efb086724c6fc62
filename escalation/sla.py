"""SLA deadlines per priority and the ladder: remind at half time, alert the supervisor at breach.

The ladder runs from a periodic scan of the deadlines in the database, so a restart loses
nothing; each rung is a ticket event with a unique key, so it fires once however often (or by
however many schedulers) the scan runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from escalation import events
from escalation.hours import BusinessCalendar
from escalation.notify import queue, support_circle_of, ticket_variables
from storage.enums import Priority, TicketStatus
from storage.formats import moment
from storage.models import Circle, Member, Ticket
from storage.scripts import ScriptLibrary

HALF_SCRIPT, BREACH_SCRIPT = "support.sla_reminder", "support.sla_breach"


@dataclass(frozen=True)
class Deadlines:
    first_response_remind_at: datetime
    first_response_due: datetime
    resolve_remind_at: datetime
    resolve_due: datetime


def deadlines(priority: Priority, start: datetime, calendar: BusinessCalendar) -> Deadlines:
    policy = calendar.policy
    first = policy.first_response_minutes[priority]
    resolve = policy.resolve_minutes[priority]
    if priority in policy.round_the_clock:

        def at(minutes: float) -> datetime:
            return start + timedelta(minutes=minutes)
    else:

        def at(minutes: float) -> datetime:
            return calendar.add_business_minutes(start, round(minutes))

    return Deadlines(at(first / 2), at(first), at(resolve / 2), at(resolve))


def apply_deadlines(ticket: Ticket, start: datetime, calendar: BusinessCalendar) -> None:
    d = deadlines(ticket.priority, start, calendar)
    ticket.first_response_remind_at, ticket.first_response_due = (
        d.first_response_remind_at, d.first_response_due,
    )
    ticket.resolve_remind_at, ticket.resolve_due = d.resolve_remind_at, d.resolve_due


@dataclass(frozen=True)
class Rung:
    clock: str  # first_response | resolve
    step: str  # half | breach
    due: datetime


def _due_rungs(ticket: Ticket, now: datetime) -> list[Rung]:
    deadlines: list[tuple[str, str, datetime | None]] = []
    if ticket.first_response_at is None:
        deadlines += [("first_response", "half", ticket.first_response_remind_at),
                      ("first_response", "breach", ticket.first_response_due)]
    deadlines += [("resolve", "half", ticket.resolve_remind_at),
                  ("resolve", "breach", ticket.resolve_due)]
    return [Rung(clock, step, due) for clock, step, due in deadlines
            if due is not None and due <= now]


def scan(session: Session, scripts: ScriptLibrary, *, now: datetime) -> list[tuple[int, str]]:
    """Fire every rung that is due and not yet on record; returns (ticket id, rung) fired."""
    tickets = session.scalars(
        select(Ticket)
        .where(
            Ticket.status != TicketStatus.RESOLVED,
            or_(
                Ticket.first_response_at.is_(None) & (Ticket.first_response_remind_at <= now),
                Ticket.resolve_remind_at <= now,
            ),
        )
        .order_by(Ticket.id)
    )
    fired: list[tuple[int, str]] = []
    for ticket in tickets:
        rungs = _due_rungs(ticket, now)
        breached = {r.clock for r in rungs if r.step == "breach"}
        for rung in rungs:
            name = f"sla_{rung.clock}_{rung.step}"
            # A half-time reminder that comes due after the breach (the scanner was down) is
            # recorded as skipped: the breach alert says it all.
            skipped = rung.step == "half" and rung.clock in breached
            key = f"sla:{ticket.id}:{rung.clock}:{rung.step}:{rung.due.isoformat()}"
            if not events.record_once(session, ticket.id, name, key=key, now=now,
                                      due=rung.due.isoformat(), skipped=skipped):
                continue
            if not skipped:
                _notify(session, scripts, ticket, rung, now)
                fired.append((ticket.id, name))
    return fired


def next_rung(session: Session, *, after: datetime) -> datetime | None:
    """The earliest SLA rung of an open ticket that falls due after `after`."""
    open_ = Ticket.status != TicketStatus.RESOLVED
    waiting = Ticket.first_response_at.is_(None)
    found = [
        session.scalar(select(func.min(column)).where(open_, *extra, column > after))
        for column, extra in (
            (Ticket.first_response_remind_at, (waiting,)),
            (Ticket.first_response_due, (waiting,)),
            (Ticket.resolve_remind_at, ()),
            (Ticket.resolve_due, ()),
        )
    ]
    times = [t for t in found if t is not None]
    return min(times) if times else None


def _notify(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, rung: Rung, now: datetime
) -> None:
    """Half time: a private reminder to the holder of the ticket; breach: the whole support
    circle (agent and supervisor), naming who holds it so the supervisor can reassign."""
    circle = session.get(Circle, ticket.circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        return
    owner = ticket.assignee_id or circle.agent_id
    support = support_circle_of(session, owner) or support_circle_of(session, circle.agent_id)
    if support is None:
        return
    variables = ticket_variables(session, scripts, ticket, circle, due_time=moment(rung.due))
    if rung.step == "half":
        rendered = scripts.render(HALF_SCRIPT, variables)
        queue(session, support, rendered.text, now=now, to=ticket.assignee_id, script=rendered)
        return
    supervisor = session.get(Member, circle.agent_id) if circle.agent_id else None
    rendered = scripts.render(BREACH_SCRIPT, variables)
    queue(session, support, rendered.text, now=now, script=rendered)
    if supervisor is not None and supervisor.supervisor_id:
        events.record(session, ticket.id, "supervisor_alerted", now=now,
                      supervisor_id=supervisor.supervisor_id, rung=rung.clock)
