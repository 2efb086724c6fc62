"""Assignment: the circle's own agent first, else a teammate or the team pool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escalation.hours import BusinessCalendar
from storage.enums import TicketStatus, UserRole
from storage.models import Circle, Member, Ticket, User


@dataclass(frozen=True)
class Assignment:
    assignee_id: str | None  # None: the team pool, any teammate (or the supervisor) may claim
    reason: str  # own_agent | teammate:over_capacity | pool:<why>


def open_load(session: Session, member_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Ticket).where(
                Ticket.assignee_id == member_id, Ticket.status != TicketStatus.RESOLVED
            )
        )
        or 0
    )


def teammates(session: Session, agent_id: str) -> list[str]:
    """Other active agents under the same supervisor."""
    agent = session.get(Member, agent_id)
    if agent is None or agent.supervisor_id is None:
        return []
    return list(
        session.scalars(
            select(Member.id)
            .join(User, User.member_id == Member.id)
            .where(
                Member.supervisor_id == agent.supervisor_id,
                Member.id != agent_id,
                User.role == UserRole.AGENT,
                User.active,
            )
            .order_by(Member.id)
        )
    )


def choose(
    session: Session, circle: Circle, *, now: datetime, calendar: BusinessCalendar
) -> Assignment:
    agent_id = circle.agent_id
    if agent_id is None:
        return Assignment(None, "pool:no_agent")
    off = calendar.off_duty_reason(now)
    if off is not None:
        # Everyone shares the calendar: nobody is on duty, so the team pool holds it.
        return Assignment(None, f"pool:{off}")
    capacity = calendar.policy.agent_capacity
    if open_load(session, agent_id) < capacity:
        return Assignment(agent_id, "own_agent")
    loads = sorted((open_load(session, mate), mate) for mate in teammates(session, agent_id))
    for load, mate in loads:
        if load < capacity:
            return Assignment(mate, "teammate:over_capacity")
    return Assignment(None, "pool:over_capacity")
