"""The agents' queue: which tickets a login sees, filtered, with each one's SLA state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from escalation.access import visible
from storage.enums import Priority, TicketStatus, UserRole
from storage.models import Circle, Ticket

COMPLAINT_REASON, COMPLAINT_INTENT = "complaint_risk", "complaint"


def complaint_alert() -> ColumnElement[bool]:
    """A complaint-risk alert: opened for risk (threats, anger), or a stated complaint."""
    return or_(Ticket.reason == COMPLAINT_REASON, Ticket.intent == COMPLAINT_INTENT)


def is_complaint_alert(t: Ticket) -> bool:
    return t.reason == COMPLAINT_REASON or t.intent == COMPLAINT_INTENT


class Sla(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"  # past the half-time reminder of a clock still running
    BREACHED = "breached"  # a clock ran out before its deadline was met
    DONE = "done"  # resolved within its deadlines


@dataclass(frozen=True)
class TicketFilter:
    scope: str = "team"  # "mine": assigned to me; "team": everything I may see
    status: TicketStatus | None = None
    open_only: bool = False  # any status but resolved
    priority: Priority | None = None
    assignee: str | None = None  # a member id, or "none" for the unassigned
    sla: Sla | None = None  # at_risk | breached (evaluated at `now`)
    reason: str | None = None
    complaint: bool = False  # complaint-risk alerts only
    circle_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 100


def _breached(now: datetime) -> object:
    """SQL: a clock ran out (first response not given in time, or not resolved in time)."""
    return or_(
        and_(Ticket.first_response_due < now, Ticket.first_response_at.is_(None),
             Ticket.status != TicketStatus.RESOLVED),
        and_(Ticket.first_response_at.is_not(None),
             Ticket.first_response_at > Ticket.first_response_due),
        and_(Ticket.resolve_due < now, Ticket.status != TicketStatus.RESOLVED),
        and_(Ticket.resolved_at.is_not(None), Ticket.resolved_at > Ticket.resolve_due),
    )


def _at_risk(now: datetime) -> object:
    """SQL: an open ticket past a half-time reminder, not (yet) breached."""
    return and_(
        Ticket.status != TicketStatus.RESOLVED,
        or_(
            and_(Ticket.first_response_at.is_(None), Ticket.first_response_remind_at <= now),
            Ticket.resolve_remind_at <= now,
        ),
        ~_breached(now),  # type: ignore[operator]
    )


def query(role: UserRole, member_id: str | None, f: TicketFilter,
          now: datetime) -> Select[Ticket, Circle]:
    q = (
        select(Ticket, Circle)
        .join(Circle, Circle.id == Ticket.circle_id)
        .where(visible(role, member_id))
    )
    if f.scope == "mine":
        q = q.where(Ticket.assignee_id == member_id)
    if f.status is not None:
        q = q.where(Ticket.status == f.status)
    if f.open_only:
        q = q.where(Ticket.status != TicketStatus.RESOLVED)
    if f.priority is not None:
        q = q.where(Ticket.priority == f.priority)
    if f.assignee == "none":
        q = q.where(Ticket.assignee_id.is_(None))
    elif f.assignee:
        q = q.where(Ticket.assignee_id == f.assignee)
    if f.sla == Sla.BREACHED:
        q = q.where(_breached(now))  # type: ignore[arg-type]
    elif f.sla == Sla.AT_RISK:
        q = q.where(_at_risk(now))  # type: ignore[arg-type]
    if f.reason:
        q = q.where(Ticket.reason == f.reason)
    if f.complaint:
        q = q.where(complaint_alert())
    if f.circle_id is not None:
        q = q.where(Ticket.circle_id == f.circle_id)
    if f.created_from is not None:
        q = q.where(Ticket.created_at >= f.created_from)
    if f.created_to is not None:
        q = q.where(Ticket.created_at < f.created_to)
    return q


def find_tickets(
    session: Session, role: UserRole, member_id: str | None, f: TicketFilter, *, now: datetime,
    order: str = "newest",
) -> list[tuple[Ticket, Circle]]:
    """Newest first (the API), or by urgency: priority, then the nearest deadline (the queue)."""
    q = query(role, member_id, f, now)
    if order == "urgency":
        rank = {p: i for i, p in enumerate(Priority)}
        rows = [(t, c) for t, c in session.execute(q.order_by(Ticket.id.desc()).limit(f.limit))]
        far = datetime.max.replace(tzinfo=now.tzinfo)
        rows.sort(key=lambda tc: (tc[0].status == TicketStatus.RESOLVED,
                                  rank[tc[0].priority], next_deadline(tc[0]) or far))
        return rows
    q = q.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(f.limit)
    return [(t, c) for t, c in session.execute(q)]


def next_deadline(t: Ticket) -> datetime | None:
    """The deadline the agent is racing: first response until given, then resolution."""
    if t.status == TicketStatus.RESOLVED:
        return None
    if t.first_response_at is None and t.first_response_due is not None:
        return t.first_response_due
    return t.resolve_due


def sla_state(t: Ticket, now: datetime) -> Sla:
    """The same rule as the SQL filters, for one ticket in hand."""
    first_late = False
    if t.first_response_due is not None:
        if t.first_response_at is not None:
            first_late = t.first_response_at > t.first_response_due
        elif t.status != TicketStatus.RESOLVED:
            first_late = now > t.first_response_due
    end = t.resolved_at if t.status == TicketStatus.RESOLVED else now
    resolve_late = t.resolve_due is not None and end is not None and end > t.resolve_due
    if first_late or resolve_late:
        return Sla.BREACHED
    if t.status == TicketStatus.RESOLVED:
        return Sla.DONE
    reminded = (
        (t.first_response_at is None and t.first_response_remind_at is not None
         and t.first_response_remind_at <= now)
        or (t.resolve_remind_at is not None and t.resolve_remind_at <= now)
    )
    return Sla.AT_RISK if reminded else Sla.OK
