"""Matter circles for tickets: created for a case, told to the family, dissolved on resolution."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from circles import matter as matter_circle
from escalation import events
from escalation.notify import display_name, queue
from storage.enums import CircleStatus
from storage.errors import Conflict
from storage.models import Circle, Matter, Message, Ticket
from storage.pii import mask
from storage.scripts import ScriptLibrary

CREATED_SCRIPT, DISSOLVED_SCRIPT = "matter.created", "matter.dissolved"


def open_for_ticket(
    session: Session,
    scripts: ScriptLibrary,
    ticket: Ticket,
    *,
    name: str,
    specialists: list[matter_circle.Specialist],
    bot_member_id: str | None,
    actor_id: str,
    now: datetime,
) -> Matter:
    if session.scalar(_active_matters(ticket.id).limit(1)) is not None:
        raise Conflict(f"ticket {ticket.id} already has an active matter circle",
                       code="MATTER_EXISTS")
    parent = session.get(Circle, ticket.circle_id)
    assert parent is not None
    side = [m for m in (ticket.member_id, _holder(parent)) if m]
    matter = matter_circle.create(
        session, parent=parent, ticket_id=ticket.id, name=name,
        customer_side=list(dict.fromkeys(side)), specialists=specialists,
        bot_member_id=bot_member_id, now=now,
    )
    circle = session.get(Circle, matter.circle_id)
    assert circle is not None
    agent = display_name(session, parent.agent_id, scripts.default("agent_name"))
    variables = {"circle_name": circle.name, "agent_name": agent}
    for target in (parent, circle):
        rendered = scripts.render(CREATED_SCRIPT, variables)
        queue(session, target, rendered.text, now=now, script=rendered)
    events.record(session, ticket.id, "matter_created", now=now, actor_id=actor_id,
                  chat_id=circle.chat_id, specialists=[s.member_id for s in specialists])
    return matter


def _holder(parent: Circle) -> str | None:
    for seat in parent.members:
        if seat.role.value == "customer" and seat.member.customer_id == parent.customer_id:
            return seat.member_id
    return None


def _active_matters(ticket_id: int) -> Select[Matter]:
    return (
        select(Matter)
        .join(Circle, Circle.id == Matter.circle_id)
        .where(Matter.ticket_id == ticket_id, Circle.status == CircleStatus.ACTIVE)
    )


def summary_of(session: Session, ticket: Ticket, circle_id: int) -> str:
    """A short record: the case, how many messages, who resolved it (masked)."""
    count = len(list(session.scalars(select(Message.id).where(Message.circle_id == circle_id))))
    resolved = ticket.resolved_at.isoformat() if ticket.resolved_at else "-"
    return mask(f"#{ticket.id} {ticket.intent or ticket.reason}: {ticket.summary[:80]} "
                f"({count} messages, resolved {resolved})")


def dissolve_for_ticket(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, *, now: datetime
) -> list[Matter]:
    dissolved: list[Matter] = []
    for matter in list(session.scalars(_active_matters(ticket.id))):
        circle = session.get(Circle, matter.circle_id)
        assert circle is not None
        rendered = scripts.render(DISSOLVED_SCRIPT, {"circle_name": circle.name})
        queue(session, circle, rendered.text, now=now, script=rendered)
        matter_circle.dissolve(session, matter, summary=summary_of(session, ticket, circle.id),
                               now=now)
        events.record(session, ticket.id, "matter_dissolved", now=now, chat_id=circle.chat_id)
        dissolved.append(matter)
    return dissolved
