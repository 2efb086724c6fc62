"""The generic webhook's membership events: POST /api/v1/events (join, leave, dismiss)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bot import signing
from bot.http import ServicesDep, error_responses, require_json
from circles import group
from storage.db import transaction
from storage.errors import BadRequest

router = APIRouter(tags=["messages"])


class GroupEventIn(BaseModel):
    """A bridge tells us the group changed; signed like /api/v1/messages when a secret is set."""

    model_config = ConfigDict(extra="ignore")

    chat_id: str = Field(min_length=1, max_length=128)
    event: Literal["join", "leave", "dismiss"]
    member_id: str | None = Field(default=None, min_length=1, max_length=64,
                                  description="the generic webhook's sender_id of that person")
    member_name: str = Field(default="", max_length=64)


@router.post("/api/v1/events", responses=error_responses(400, 401, 404, 413, 415, 422, 503))
async def group_event(request: Request, svc: ServicesDep) -> dict[str, Any]:
    """join: the person gets a seat (holder, family, staff, or a guest who sees no policy
    data); leave: the seat goes; dismiss: the circle is archived. Repeating one is harmless."""
    raw = await request.body()
    secret = svc.settings.webhook_secret
    if secret is not None:  # authentication first, exactly as for /api/v1/messages
        signing.verify(secret, request.headers, raw, window=svc.settings.webhook_ts_window)
    require_json(request)
    body = GroupEventIn.model_validate_json(raw)
    if body.event != "dismiss" and body.member_id is None:
        raise BadRequest(f"{body.event} needs member_id", code="EVENT_MEMBER_MISSING")

    def apply() -> dict[str, Any]:
        now = datetime.now(UTC)
        with transaction(svc.sessions) as s:
            if body.event == "dismiss":
                return {"chat_id": body.chat_id, "event": "dismiss",
                        "changed": group.dismiss(s, chat_id=body.chat_id, now=now)}
            assert body.member_id is not None
            if body.event == "join":
                change = group.join(s, chat_id=body.chat_id, member_id=body.member_id,
                                    name=body.member_name, scripts=svc.scripts, now=now)
            else:
                change = group.leave(s, chat_id=body.chat_id, member_id=body.member_id)
            return {"chat_id": body.chat_id, "event": body.event, "member_id": body.member_id,
                    "role": change.role.value if change.role else None,
                    "changed": change.changed}

    return await run_in_threadpool(apply)
