"""Circles for agents and supervisors: GET /api/v1/circles/{chat_id}/messages, and
POST /api/v1/circles/{chat_id}/links (a signed chat-page link for one member)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bot import chat_links
from bot.http import ServicesDep, StaffDep
from circles.access import require_circle_access
from circles.history import recent_messages
from circles.membership import find_circle
from storage.db import transaction

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


class LinkIn(BaseModel):
    member_id: str = Field(max_length=64, description="the customer or a family member")
    days: int = Field(default=chat_links.DEFAULT_DAYS, ge=1, le=chat_links.MAX_DAYS)


class LinkOut(BaseModel):
    chat_id: str
    member_id: str
    url: str
    expires_at: datetime


@router.post("/{chat_id}/links", response_model=LinkOut, status_code=201)
def member_link(chat_id: str, body: LinkIn, request: Request, svc: ServicesDep,
                who: StaffDep) -> LinkOut:
    """The circle's agent hands one member a link to the chat page: they read the group and
    their own private messages and speak as themselves only, until the link expires."""
    with transaction(svc.sessions) as s:
        circle = find_circle(s, chat_id)
        require_circle_access(s, who.role, who.member_id, circle)
        link = chat_links.issue(s, svc.signer, circle, body.member_id, who=who,
                                now=datetime.now(UTC), days=body.days)
    base = str(request.base_url).rstrip("/")
    return LinkOut(chat_id=link.chat_id, member_id=link.member_id, url=base + link.path,
                   expires_at=link.expires_at)
