"""Per-circle counts (messages, tickets, SLA figures, excerpts) over a circle's whole life.

The service summaries supervisors read (prose per ticket and per circle per day, stored) live in
escalation/summary_store.py; these counts are kept for callers that still read them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from storage.enums import CircleKind, Direction, FollowUpStatus, TicketStatus
from storage.models import Circle, FollowUp, Message, Ticket
from storage.pii import mask

EXCERPTS = 3


def _minutes(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds() / 60, 1)


def ticket_summary(t: Ticket, now: datetime) -> dict[str, Any]:
    first = t.first_response_at or now
    done = t.resolved_at or now
    return {
        "id": t.id, "status": t.status.value, "priority": t.priority.value,
        "assignee_id": t.assignee_id, "reason": t.reason, "intent": t.intent,
        "excerpt": mask(t.summary)[:80],
        "first_response_minutes": _minutes(t.created_at, t.first_response_at),
        "first_response_breached": bool(t.first_response_due and first > t.first_response_due),
        "resolve_breached": bool(t.resolve_due and done > t.resolve_due),
        "rating": t.rating,
    }


def circle_summary(session: Session, circle: Circle, now: datetime) -> dict[str, Any]:
    tickets = list(session.scalars(
        select(Ticket).where(Ticket.circle_id == circle.id).order_by(Ticket.id)
    ))
    rows = [ticket_summary(t, now) for t in tickets]
    directions = Counter(
        dict(session.execute(
            select(Message.direction, func.count()).where(Message.circle_id == circle.id)
            .group_by(Message.direction)
        ).all())
    )
    followup_counts = Counter(
        dict(session.execute(
            select(FollowUp.status, func.count()).where(FollowUp.circle_id == circle.id)
            .group_by(FollowUp.status)
        ).all())
    )
    last = session.scalars(
        select(Message).where(Message.circle_id == circle.id)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(EXCERPTS)
    )
    first_minutes = [r["first_response_minutes"] for r in rows
                     if r["first_response_minutes"] is not None]
    ratings = [t.rating for t in tickets if t.rating is not None]
    return {
        "chat_id": circle.chat_id, "name": circle.name, "agent_id": circle.agent_id,
        "messages": {"in": directions.get(Direction.IN, 0),
                     "out": directions.get(Direction.OUT, 0)},
        "tickets": {
            "total": len(tickets),
            "open": sum(t.status != TicketStatus.RESOLVED for t in tickets),
            "resolved": sum(t.status == TicketStatus.RESOLVED for t in tickets),
            "by_priority": dict(Counter(t.priority.value for t in tickets)),
        },
        "sla": {
            "first_response_median_minutes": median(first_minutes) if first_minutes else None,
            "first_response_breached": sum(r["first_response_breached"] for r in rows),
            "resolve_breached": sum(r["resolve_breached"] for r in rows),
        },
        "followups": {str(k): v for k, v in followup_counts.items()},
        "followups_sent": followup_counts.get(FollowUpStatus.SENT, 0),
        "rating_average": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "recent": [{"sender": m.sender_name or "", "text": mask(m.text)[:80]}
                   for m in reversed(list(last))],
        "ticket_list": rows,
    }


def summaries(
    session: Session, visible_circles: ColumnElement[bool], now: datetime,
    chat_id: str | None = None,
) -> list[dict[str, Any]]:
    q = select(Circle).where(Circle.kind == CircleKind.CORE, visible_circles).order_by(Circle.id)
    if chat_id is not None:
        q = q.where(Circle.chat_id == chat_id)
    return [circle_summary(session, c, now) for c in session.scalars(q)]
