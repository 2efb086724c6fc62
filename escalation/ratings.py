"""After resolution: ask the customer for a 1-5 rating in the circle and keep the answer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalation import events
from escalation.notify import queue, ticket_variables
from storage.enums import TicketStatus
from storage.models import Circle, Message, Ticket
from storage.pii import fold_width
from storage.scripts import ScriptLibrary

ASK_SCRIPT, THANKS_SCRIPT = "rating.ask", "rating.thanks"
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_RATING_RE = re.compile(r"^(?:打|给|评)?\s*([1-5一二两三四五])\s*(?:分|星)?\s*[。.!！~～]*$")
_MENTION_RE = re.compile(r"@\S+\s*")


def ask(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, circle: Circle, *, now: datetime
) -> Message:
    rendered = scripts.render(ASK_SCRIPT, ticket_variables(session, scripts, ticket, circle))
    ticket.rating_asked_at = now
    return queue(session, circle, rendered.text, now=now, script=rendered)


def parse_rating(text: str) -> int | None:
    """"5", "5分", "打五分", "@小助手 4" -> the rating; anything else is not an answer."""
    cleaned = _MENTION_RE.sub("", fold_width(text)).strip()
    match = _RATING_RE.match(cleaned)
    if match is None:
        return None
    value = match.group(1)
    return int(value) if value.isdigit() else _CN_DIGITS[value]


def awaiting(
    session: Session, *, circle_id: int, member_id: str | None, now: datetime, window_hours: int
) -> Ticket | None:
    """The member's resolved ticket that asked for a rating recently and has none yet."""
    if member_id is None:
        return None
    return session.scalar(
        select(Ticket)
        .where(
            Ticket.circle_id == circle_id,
            Ticket.status == TicketStatus.RESOLVED,
            Ticket.member_id == member_id,
            Ticket.rating.is_(None),
            Ticket.rating_asked_at > now - timedelta(hours=window_hours),
        )
        .order_by(Ticket.rating_asked_at.desc())
        .limit(1)
    )


def record(session: Session, ticket: Ticket, rating: int, *, member_id: str, now: datetime) -> None:
    ticket.rating, ticket.rated_at = rating, now
    events.record(session, ticket.id, "rated", now=now, actor_id=member_id, rating=rating)
