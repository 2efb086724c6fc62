"""The promise ledger for agents and supervisors: GET /api/v1/followups, cancel one.

A login sees the follow-ups of its circles (an agent: circles where they are the agent; a
supervisor: their agents' circles; an admin: all), including promises made while the circle
had no open ticket, plus those of any ticket it may see (an assignee, the team pool).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from bot.http import MAX_ID, IdPath, Moment, ServicesDep, StaffDep
from escalation import followups
from escalation.access import require_ticket, visible, visible_circles
from storage.db import transaction
from storage.enums import FollowUpStatus, UserRole
from storage.errors import BadRequest, Forbidden, NotFound
from storage.models import Circle, FollowUp, Ticket

router = APIRouter(prefix="/api/v1/followups", tags=["followups"])


class FollowUpView(BaseModel):
    id: int
    ticket_id: int | None
    circle_id: int
    kind: str
    text: str
    due_at: datetime
    status: str
    attempts: int
    created_by: str | None
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime


def followup_view(f: FollowUp) -> FollowUpView:
    return FollowUpView(
        id=f.id, ticket_id=f.ticket_id, circle_id=f.circle_id, kind=f.kind.value, text=f.text,
        due_at=f.due_at, status=f.status.value, attempts=f.attempts, created_by=f.created_by,
        sent_at=f.sent_at, last_error=f.last_error, created_at=f.created_at,
    )


def _readable(s: Session, role: UserRole, member_id: str | None) -> ColumnElement[bool]:
    """A WHERE clause over FollowUp: of a circle this login may see, or of a ticket it may."""
    circles = select(Circle.id).where(visible_circles(s, role, member_id))
    tickets = (
        select(Ticket.id).join(Circle, Circle.id == Ticket.circle_id)
        .where(visible(role, member_id))
    )
    return or_(FollowUp.circle_id.in_(circles), FollowUp.ticket_id.in_(tickets))


@router.get("", response_model=list[FollowUpView])
def list_followups(
    *,
    svc: ServicesDep,
    who: StaffDep,
    status: FollowUpStatus | None = None,
    ticket_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    circle: Annotated[str | None, Query(max_length=128,
                                        description="the circle's chat_id")] = None,
    due_before: Annotated[Moment | None, Query(
        description="only follow-ups due before this time (ISO-8601 with offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[FollowUpView]:
    """Follow-ups of the circles and tickets this login may see, newest due first."""
    if due_before is not None and due_before.tzinfo is None:
        raise BadRequest("due_before needs a time zone, e.g. 2026-12-05T15:00:00+08:00",
                         code="FOLLOWUP_DUE_NAIVE")
    with svc.sessions() as s:
        q = (
            select(FollowUp)
            .where(_readable(s, who.role, who.member_id))
            .order_by(FollowUp.due_at.desc(), FollowUp.id.desc())
            .limit(limit)
        )
        if status is not None:
            q = q.where(FollowUp.status == status)
        if ticket_id is not None:
            q = q.where(FollowUp.ticket_id == ticket_id)
        if circle is not None:
            circle_id = s.scalar(select(Circle.id).where(Circle.chat_id == circle))
            if circle_id is None:
                raise NotFound(f"no circle with chat_id {circle!r}", code="CIRCLE_UNKNOWN")
            q = q.where(FollowUp.circle_id == circle_id)
        if due_before is not None:
            q = q.where(FollowUp.due_at < due_before)
        return [followup_view(f) for f in s.scalars(q)]


def _require_followup(s: Session, row: FollowUp, role: UserRole, member_id: str | None) -> None:
    if row.ticket_id is not None:
        require_ticket(s, row.ticket_id, role, member_id)
        return
    allowed = s.scalar(select(Circle.id).where(Circle.id == row.circle_id,
                                               visible_circles(s, role, member_id)))
    if allowed is None:
        raise Forbidden(f"follow-up {row.id} belongs to another agent's circle",
                        code="FOLLOWUP_FORBIDDEN")


@router.post("/{followup_id}/cancel", response_model=FollowUpView)
def cancel(followup_id: IdPath, svc: ServicesDep, who: StaffDep) -> FollowUpView:
    """Idempotent: cancelling a cancelled follow-up answers it unchanged."""
    with transaction(svc.sessions) as s:
        row = s.get(FollowUp, followup_id)
        if row is None:
            raise NotFound(f"no follow-up {followup_id}", code="FOLLOWUP_NOT_FOUND")
        _require_followup(s, row, who.role, who.member_id)
        followups.cancel(s, row, actor_id=who.member_id or who.username, now=datetime.now(UTC))
        return followup_view(row)
