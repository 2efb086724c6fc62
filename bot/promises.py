"""Promises heard in an agent's own words ("我明天下午三点前回复您") become follow-ups."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.nlu.timeparse import resolve_time
from bot.turn import Turn
from escalation import followups
from storage.enums import FollowUpKind, TicketStatus
from storage.models import FollowUp, Ticket
from storage.pii import mask

# A time alone is not a promise ("明天下午三点开会"); a verb of coming back to the customer is.
COMMITMENT_RE = re.compile(
    r"回复|答复|回电|回您|联系您|告诉您|通知您|反馈|给您|跟您|发您|办好|处理好"
)


def propose(turn: Turn) -> FollowUp | None:
    """A promise on the circle's newest open ticket, due at the time the agent named."""
    text = turn.inbound.text
    if not COMMITMENT_RE.search(text):
        return None
    times = [m.value for m in resolve_time(text, turn.inbound.ts) if m.value > turn.now]
    if not times:
        return None
    ticket = turn.session.scalar(
        select(Ticket)
        .where(Ticket.circle_id == turn.circle.id, Ticket.status != TicketStatus.RESOLVED)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    row, _ = followups.create(
        turn.session,
        circle_id=turn.circle.id,
        ticket_id=ticket.id if ticket else None,
        recipient_id=None,
        kind=FollowUpKind.PROMISE,
        text=mask(text),
        due_at=times[0],
        now=turn.now,
        created_by=turn.speaker.member_id or turn.inbound.sender_id,
        dedupe_key=f"proposal:msg{turn.row.id}",  # a retried delivery proposes nothing new
    )
    return row
