"""The promise ledger for agents and supervisors: GET /api/v1/followups, cancel one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from bot.http import ServicesDep, StaffDep
from escalation import followups
from escalation.access import require_ticket, visible
from storage.db import transaction
from storage.enums import FollowUpStatus
from storage.errors import NotFound
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


@router.get("", response_model=list[FollowUpView])
def list_followups(
    svc: ServicesDep,
    who: StaffDep,
    status: FollowUpStatus | None = None,
    ticket_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[FollowUpView]:
    """Follow-ups of the tickets this login may see, soonest due first."""
    with svc.sessions() as s:
        q = (
            select(FollowUp)
            .join(Ticket, Ticket.id == FollowUp.ticket_id)
            .join(Circle, Circle.id == Ticket.circle_id)
            .where(visible(who.role, who.member_id))
            .order_by(FollowUp.due_at, FollowUp.id)
            .limit(limit)
        )
        if status is not None:
            q = q.where(FollowUp.status == status)
        if ticket_id is not None:
            q = q.where(FollowUp.ticket_id == ticket_id)
        return [followup_view(f) for f in s.scalars(q)]


@router.post("/{followup_id}/cancel", response_model=FollowUpView)
def cancel(followup_id: int, svc: ServicesDep, who: StaffDep) -> FollowUpView:
    """Idempotent: cancelling a cancelled follow-up answers it unchanged."""
    with transaction(svc.sessions) as s:
        row = s.get(FollowUp, followup_id)
        if row is None or row.ticket_id is None:
            raise NotFound(f"no follow-up {followup_id}", code="FOLLOWUP_NOT_FOUND")
        require_ticket(s, row.ticket_id, who.role, who.member_id)
        followups.cancel(s, row, actor_id=who.member_id or who.username, now=datetime.now(UTC))
        return followup_view(row)
