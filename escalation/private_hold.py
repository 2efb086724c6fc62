"""A private message no route carries to its member alone: it is held, never sent to the
group; the member hears in the group that the agent will be in touch privately, and the agent
gets a ticket (with the SLA policy, told to the support circle) to reach them another way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from circles.naming import address
from escalation import events
from escalation.notify import display_name, queue, queue_notice
from escalation.policy import EscalationPolicy
from escalation.tickets import handoff_notices, open_ticket
from storage.enums import CircleKind, TicketStatus
from storage.models import Circle, Message, Ticket
from storage.scripts import ScriptLibrary

REASON = "private_undeliverable"
NOTE_SCRIPT = "privacy.private_unreachable"


def hold(session: Session, *, row: Message, scripts: ScriptLibrary, policy: EscalationPolicy,
         bot_name: str, now: datetime) -> Ticket | None:
    """Tell the group and the agent once per member: while the member's task is open, a
    further held message joins it (an event), so a burst does not flood anyone."""
    circle = session.get(Circle, row.circle_id) if row.circle_id else None
    member = row.recipient_id
    if circle is None or member is None:
        return None
    task = session.scalar(
        select(Ticket).where(Ticket.circle_id == circle.id, Ticket.member_id == member,
                             Ticket.reason == REASON, Ticket.status != TicketStatus.RESOLVED)
        .order_by(Ticket.id).limit(1)
    )
    if task is not None:
        events.record(session, task.id, "private_held", now=now, message_id=row.id,
                      script_id=row.script_id)
        return task
    task = open_ticket(
        session=session, circle=circle, member_id=member, source_message_id=row.reply_to_id,
        intent=None, reason=REASON, summary=scripts.label("ticket_reason", REASON), now=now,
        context={"outbound_id": row.id, "script_id": row.script_id}, policy=policy,
        scripts=scripts,
    )
    for notice in handoff_notices(session, scripts, task, circle):
        queue_notice(session, notice, now=now)
    if circle.kind != CircleKind.SUPPORT:
        note = scripts.render(NOTE_SCRIPT, {
            "honorific": address(session, member) or scripts.default("person"),
            "agent_name": display_name(session, circle.agent_id, scripts.default("agent_name")),
            "bot_name": bot_name,
        })
        queue(session, circle, note.text, now=now, script=note, reply_to_id=row.reply_to_id)
    return task
