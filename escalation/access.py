"""Who may see a ticket: the circle's agent or assignee, the team pool, supervisor, admin."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session, aliased

from storage.enums import UserRole
from storage.errors import Forbidden, NotFound
from storage.models import Circle, Member, Ticket


def visible(role: UserRole, member_id: str | None) -> ColumnElement[bool]:
    """A WHERE clause over Ticket (joined to its Circle) for what this login may read."""
    if role == UserRole.ADMIN:
        return true()
    if member_id is None:
        return false()
    circle_agent = aliased(Member)
    team_of = select(circle_agent.supervisor_id).where(circle_agent.id == Circle.agent_id)
    if role == UserRole.SUPERVISOR:
        assignee = aliased(Member)
        return or_(
            team_of.scalar_subquery() == member_id,
            Ticket.assignee_id.in_(select(assignee.id).where(assignee.supervisor_id == member_id)),
        )
    my_supervisor = select(Member.supervisor_id).where(Member.id == member_id).scalar_subquery()
    return or_(
        Circle.agent_id == member_id,
        Ticket.assignee_id == member_id,
        # the team pool: unassigned tickets of a teammate's circle
        and_(Ticket.assignee_id.is_(None), team_of.scalar_subquery() == my_supervisor),
    )


def require_ticket(
    session: Session, ticket_id: int, role: UserRole, member_id: str | None
) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}", code="TICKET_NOT_FOUND")
    allowed = session.scalar(
        select(Ticket.id)
        .join(Circle, Circle.id == Ticket.circle_id)
        .where(Ticket.id == ticket_id, visible(role, member_id))
    )
    if allowed is None:
        raise Forbidden(
            f"ticket {ticket_id} belongs to another agent's circle; ask their supervisor",
            code="TICKET_FORBIDDEN",
        )
    return ticket


def visible_circles(session: Session, role: UserRole, member_id: str | None) -> ColumnElement[bool]:
    """A WHERE clause over Circle: the agent's own circles, a supervisor's team's, admin all."""
    if role == UserRole.ADMIN:
        return true()
    if member_id is None:
        return false()
    if role == UserRole.SUPERVISOR:
        team = select(Member.id).where(Member.supervisor_id == member_id)
        return Circle.agent_id.in_(team)
    return Circle.agent_id == member_id
