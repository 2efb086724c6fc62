"""Service summaries for supervisors: GET /api/v1/summaries (masked, per circle and ticket)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from bot.auth import Principal
from bot.http import ServicesDep, require_roles
from escalation.access import visible_circles
from escalation.summaries import summaries
from storage.enums import UserRole

router = APIRouter(prefix="/api/v1/summaries", tags=["summaries"])

SupervisorDep = Annotated[
    Principal, Depends(require_roles(UserRole.SUPERVISOR, UserRole.ADMIN))
]


@router.get("")
def list_summaries(
    svc: ServicesDep, who: SupervisorDep, chat_id: str | None = None
) -> list[dict[str, Any]]:
    """One summary per core circle of the supervisor's team (admin: all)."""
    with svc.sessions() as s:
        scope = visible_circles(s, who.role, who.member_id)
        return summaries(s, scope, datetime.now(UTC), chat_id=chat_id)
