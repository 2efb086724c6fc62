"""Who may read a circle in the console: its agent, that agent's supervisor, an admin."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage.enums import UserRole
from storage.errors import Forbidden
from storage.models import Circle, Member


def can_read_circle(
    session: Session, role: UserRole, member_id: str | None, circle: Circle
) -> bool:
    if role == UserRole.ADMIN:
        return True
    if member_id is None or circle.agent_id is None:
        return False
    if circle.agent_id == member_id:
        return True
    if role == UserRole.SUPERVISOR:
        agent = session.get(Member, circle.agent_id)
        return agent is not None and agent.supervisor_id == member_id
    return False


def require_circle_access(
    session: Session, role: UserRole, member_id: str | None, circle: Circle
) -> None:
    if not can_read_circle(session, role, member_id, circle):
        raise Forbidden(
            "only this circle's agent, their supervisor or an admin may read it",
            code="CIRCLE_FORBIDDEN",
        )
