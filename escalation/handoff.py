"""Human handoff: an agent speaking in a circle takes the case; the bot stays quiet meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from escalation import events, followups
from storage.enums import TicketStatus
from storage.models import Matter, Ticket


def _open_tickets_of_circle(session: Session, circle_id: int) -> list[Ticket]:
    """Tickets of this circle, or of the case a matter circle was made for."""
    via_matter = select(Matter.ticket_id).where(Matter.circle_id == circle_id)
    return list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.status != TicketStatus.RESOLVED,
                or_(Ticket.circle_id == circle_id, Ticket.id.in_(via_matter)),
            )
            .order_by(Ticket.id)
        )
    )


def human_spoke(
    session: Session, *, circle_id: int, staff_id: str, now: datetime,
    message_id: int | None = None,
) -> list[int]:
    """Any agent message in the circle: first response, human active, promises kept."""
    tickets = _open_tickets_of_circle(session, circle_id)
    for ticket in tickets:
        if ticket.first_response_at is None:
            ticket.first_response_at = now
            events.record(session, ticket.id, "first_response", now=now, actor_id=staff_id,
                          message_id=message_id)
        if ticket.human_active_at is None:
            events.record(session, ticket.id, "human_active", now=now, actor_id=staff_id)
        ticket.human_active_at, ticket.human_active_by = now, staff_id
        if ticket.status == TicketStatus.OPEN:
            ticket.status = TicketStatus.CLAIMED
            if ticket.assignee_id is None:
                ticket.assignee_id = staff_id
    followups.keep_promises(session, [t.id for t in tickets], now=now)
    return [t.id for t in tickets]


def held_by_human(
    session: Session, *, circle_id: int, member_id: str | None, now: datetime,
    silence_minutes: int,
) -> Ticket | None:
    """The member's open case a human spoke on within the silence window: the bot keeps out."""
    if member_id is None:
        return None
    since = now - timedelta(minutes=silence_minutes)
    return session.scalar(
        select(Ticket)
        .where(
            Ticket.circle_id == circle_id,
            Ticket.member_id == member_id,
            Ticket.status != TicketStatus.RESOLVED,
            Ticket.human_active_at > since,
        )
        .order_by(Ticket.human_active_at.desc())
        .limit(1)
    )
