"""Circles for agents and supervisors: GET /api/v1/circles/{chat_id}/messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bot.http import ServicesDep, StaffDep
from circles.access import require_circle_access
from circles.history import recent_messages
from circles.membership import find_circle

router = APIRouter(prefix="/api/v1/circles", tags=["circles"])


class MessageView(BaseModel):
    id: int
    direction: str
    channel: str
    sender_id: str | None
    sender_name: str | None
    to: str | None
    text: str  # masked when stored
    intent: str | None
    script_id: str | None
    script_version: int | None
    status: str
    created_at: datetime


@router.get("/{chat_id}/messages", response_model=list[MessageView])
def circle_messages(
    chat_id: str,
    svc: ServicesDep,
    who: StaffDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[MessageView]:
    """Newest first; only the circle's agent, their supervisor or an admin."""
    with svc.sessions() as s:
        circle = find_circle(s, chat_id)
        require_circle_access(s, who.role, who.member_id, circle)
        rows = recent_messages(s, circle, limit)
        return [
            MessageView(
                id=m.id, direction=m.direction, channel=m.channel, sender_id=m.sender_id,
                sender_name=m.sender_name, to=m.recipient_id, text=m.text, intent=m.intent,
                script_id=m.script_id, script_version=m.script_version, status=m.status,
                created_at=m.created_at,
            )
            for m in rows
        ]
