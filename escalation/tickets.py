"""Escalation tickets: opened when the bot cannot settle something, always with an audit event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from storage.enums import Priority, TicketStatus
from storage.models import Circle, Ticket, TicketEvent


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
) -> Ticket:
    """Persist a ticket (and its `opened` event) in the caller's transaction."""
    ticket = Ticket(
        circle_id=circle.id,
        member_id=member_id,
        source_message_id=source_message_id,
        intent=intent,
        reason=reason,
        status=TicketStatus.OPEN,
        priority=priority,
        assignee_id=circle.agent_id,
        summary=summary,
        context=context or {},
        created_at=now,
    )
    session.add(ticket)
    session.flush()
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind="opened",
            actor_id="bot",
            data={"reason": reason, "intent": intent, "priority": str(priority)},
            created_at=now,
        )
    )
    return ticket
