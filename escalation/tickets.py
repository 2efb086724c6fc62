"""Escalation tickets: opened when the bot cannot settle something, then claimed, answered,
reassigned, resolved or reopened by people; every change is a ticket event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalation import (
    assignment,
    events,
    followups,
    handoff,
    matters,
    ratings,
    sla,
    summary_store,
)
from escalation.context import build as build_context
from escalation.hours import BusinessCalendar
from escalation.notify import (
    EXCERPT_CHARS,
    Notice,
    display_name,
    queue,
    support_circle_of,
    ticket_variables,
)
from escalation.policy import EscalationPolicy
from escalation.risk import Risk
from storage.enums import FollowUpKind, Priority, TicketStatus, UserRole
from storage.errors import AppError, BadRequest, Conflict, NotFound
from storage.formats import moment
from storage.models import Circle, FollowUp, Member, Message, Ticket, User
from storage.pii import mask
from storage.scripts import ScriptLibrary

NEW_TICKET_SCRIPT, URGENT_SCRIPT = "support.new_ticket", "support.urgent_alert"
ASSIGNABLE_ROLES = (UserRole.AGENT, UserRole.SUPERVISOR)


def open_ticket(
    *,
    session: Session,
    circle: Circle,
    member_id: str | None,
    source_message_id: int | None,
    intent: str | None,
    reason: str,
    summary: str,
    now: datetime,
    priority: Priority = Priority.NORMAL,
    context: dict[str, Any] | None = None,
    policy: EscalationPolicy | None = None,
    scripts: ScriptLibrary | None = None,
    slots: dict[str, Any] | None = None,
    risk: Risk | None = None,
) -> Ticket:
    """Persist a ticket with its handoff context, assignee and SLA deadlines, in the caller's
    transaction; nobody is told about it before that transaction commits."""
    policy = policy or EscalationPolicy()
    calendar = BusinessCalendar(policy)
    if risk is not None and risk.level is not None and _rank(risk.level) < _rank(priority):
        priority = risk.level
    chosen = assignment.choose(session, circle, now=now, calendar=calendar)
    handoff_context = build_context(
        session, scripts, circle, intent=intent, slots=slots, limit=policy.transcript_messages
    )
    ticket = Ticket(
        circle_id=circle.id,
        member_id=member_id,
        source_message_id=source_message_id,
        intent=intent,
        reason=reason,
        status=TicketStatus.OPEN,
        priority=priority,
        assignee_id=chosen.assignee_id,
        summary=mask(summary),
        context={
            **handoff_context,
            **(context or {}),
            "assignment": chosen.reason,
            "risk": list(risk.reasons) if risk else [],
        },
        created_at=now,
    )
    sla.apply_deadlines(ticket, now, calendar)
    session.add(ticket)
    session.flush()
    events.record(session, ticket.id, "opened", now=now, reason=reason, intent=intent,
                  priority=str(priority))
    events.record(session, ticket.id, "assigned", now=now, assignee_id=chosen.assignee_id,
                  why=chosen.reason)
    return ticket


_RANKS = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


def _rank(priority: Priority) -> int:
    return _RANKS[priority]


def handoff_notices(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, circle: Circle
) -> list[Notice]:
    """The support circle hears of every new ticket; an urgent one alerts the supervisor too."""
    support = support_circle_of(session, circle.agent_id)
    if support is None:
        return []
    variables = ticket_variables(session, scripts, ticket, circle,
                                 due_time=moment(ticket.first_response_due))
    notices = [Notice(support, scripts.render(NEW_TICKET_SCRIPT, variables))]
    if ticket.priority == Priority.URGENT:
        notices.append(Notice(support, scripts.render(URGENT_SCRIPT, variables)))
    return notices


# -- what people do with a ticket --------------------------------------------------------------
def _require_open(ticket: Ticket) -> None:
    if ticket.status == TicketStatus.RESOLVED:
        raise Conflict(f"ticket {ticket.id} is resolved; reopen it first", code="TICKET_RESOLVED")


def claim(session: Session, ticket: Ticket, *, actor_id: str, now: datetime) -> Ticket:
    _require_open(ticket)
    if ticket.assignee_id != actor_id or ticket.status == TicketStatus.OPEN:
        events.record(session, ticket.id, "claimed", now=now, actor_id=actor_id,
                      previous=ticket.assignee_id)
    ticket.assignee_id, ticket.status = actor_id, TicketStatus.CLAIMED
    return ticket


def assign(
    session: Session, ticket: Ticket, *, assignee_id: str, actor_id: str, now: datetime
) -> Ticket:
    _require_open(ticket)
    member = session.get(Member, assignee_id)
    if member is None or member.is_bot:
        raise NotFound(f"no agent {assignee_id!r} to assign ticket {ticket.id} to",
                       code="ASSIGNEE_UNKNOWN")
    staff = session.scalar(select(User.id).where(
        User.member_id == assignee_id, User.active, User.role.in_(ASSIGNABLE_ROLES)))
    if staff is None:  # a customer, a family member, a specialist, a deactivated login
        raise AppError(f"{assignee_id!r} is not an active agent or supervisor; tickets go to "
                       "staff only", code="ASSIGNEE_NOT_STAFF", status=422)
    events.record(session, ticket.id, "reassigned", now=now, actor_id=actor_id,
                  previous=ticket.assignee_id, assignee_id=assignee_id)
    ticket.assignee_id = assignee_id
    return ticket


def add_note(session: Session, ticket: Ticket, *, actor_id: str, text: str, now: datetime) -> None:
    events.record(session, ticket.id, "note", now=now, actor_id=actor_id, text=mask(text))


def add_followup(
    session: Session, ticket: Ticket, *, actor_id: str, text: str, due_at: datetime,
    now: datetime, kind: FollowUpKind = FollowUpKind.PROMISE, dedupe_key: str | None = None,
) -> tuple[FollowUp, bool]:
    """A promise (or a scheduled message) on this ticket's circle; the same one twice is one
    row, and the second call says it was not created."""
    if ticket.status == TicketStatus.RESOLVED:
        raise BadRequest(f"ticket {ticket.id} is resolved", code="TICKET_RESOLVED")
    return followups.create(
        session, circle_id=ticket.circle_id, ticket_id=ticket.id, recipient_id=None, kind=kind,
        text=text, due_at=due_at, now=now, created_by=actor_id,
        dedupe_key=f"api:{ticket.id}:{dedupe_key}" if dedupe_key else None,
    )


def reply(
    session: Session, ticket: Ticket, *, actor_id: str, text: str, now: datetime,
    to: str | None = None,
) -> Message:
    """The agent's words reach the circle as the agent (a queued outbound message), count as
    the first response and keep any promise that was still due."""
    _require_open(ticket)
    circle = session.get(Circle, ticket.circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"circle of ticket {ticket.id} is gone", code="CIRCLE_UNKNOWN")
    row = queue(session, circle, text, now=now, to=to, sender_id=actor_id,
                sender_name=display_name(session, actor_id, actor_id))
    if ticket.assignee_id is None:
        ticket.assignee_id = actor_id
    handoff.human_spoke(session, circle_id=circle.id, staff_id=actor_id, now=now,
                        message_id=row.id)
    events.record(session, ticket.id, "reply", now=now, actor_id=actor_id, message_id=row.id,
                  excerpt=row.text[:EXCERPT_CHARS])
    return row


def resolve(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, *, actor_id: str, now: datetime,
    note: str | None = None,
) -> Ticket:
    """Resolved: promises settled, matter circles dissolved, the customer asked for a rating."""
    _require_open(ticket)
    ticket.status, ticket.resolved_at = TicketStatus.RESOLVED, now
    ticket.human_active_at = None  # the bot speaks again
    events.record(session, ticket.id, "resolved", now=now, actor_id=actor_id,
                  note=mask(note) if note else None)
    followups.settle_for_resolved(session, ticket.id, now=now)
    matters.dissolve_for_ticket(session, scripts, ticket, now=now)
    circle = session.get(Circle, ticket.circle_id)
    if circle is not None:
        ratings.ask(session, scripts, ticket, circle, now=now)
    # 服务小结: the case's summary is written with its resolution, in the same transaction
    summary_store.on_resolved(session, scripts, ticket, now=now)
    return ticket


def reopen(
    session: Session, ticket: Ticket, *, actor_id: str, now: datetime, policy: EscalationPolicy
) -> Ticket:
    """A new SLA clock from now; the ladder's rungs fire again against the new deadlines."""
    if ticket.status != TicketStatus.RESOLVED:
        raise Conflict(f"ticket {ticket.id} is not resolved", code="TICKET_NOT_RESOLVED")
    ticket.status, ticket.resolved_at = TicketStatus.OPEN, None
    ticket.first_response_at = None
    sla.apply_deadlines(ticket, now, BusinessCalendar(policy))
    events.record(session, ticket.id, "reopened", now=now, actor_id=actor_id)
    return ticket
