"""The generic group-chat webhook: POST /api/v1/messages."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bot.http import ServicesDep
from bot.messages import InboundMessage, Outcome
from storage.errors import Forbidden, PayloadTooLarge

router = APIRouter(tags=["messages"])

SIGNATURE_HEADER = "X-Corecircle-Signature"
# Present only when the member's conversation lock was not held across workers: `process`
# (the state store is down; ordered within one worker) or `skipped` (busy past the wait).
ORDERING_HEADER = "X-Corecircle-Ordering"


class MessageIn(BaseModel):
    """One group-chat message from a bridge. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    chat_id: str = Field(min_length=1, max_length=128)
    sender_id: str = Field(min_length=1, max_length=64)
    sender_name: str = Field(default="", max_length=64)
    text: str
    msg_id: str = Field(min_length=1, max_length=128)
    mentions: list[str] = Field(default_factory=list, max_length=50)
    ts: datetime | None = None
    private: bool = False


class ReplyOut(BaseModel):
    text: str
    to: str | None = Field(description=(
        "null: say it in the group. A member id: for that member alone; the bridge delivers "
        "it 1:1 (a private chat, the web chat page's private panel) and never posts it to "
        "the group."))


class MessageOut(BaseModel):
    replies: list[ReplyOut]
    ticket_id: int | None
    intent: str | None
    duplicate: bool


def _verify_signature(secret: str | None, body: bytes, given: str | None) -> None:
    if secret is None:
        return
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not given or not hmac.compare_digest(expected, given.removeprefix("sha256=")):
        raise Forbidden(
            f"{SIGNATURE_HEADER} missing or wrong (HMAC-SHA256 of the body)",
            code="HOOK_SIG_INVALID",
        )


def to_inbound(body: MessageIn, channel: str = "webhook") -> InboundMessage:
    ts = body.ts or datetime.now(UTC)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return InboundMessage(
        channel=channel,
        chat_id=body.chat_id,
        sender_id=body.sender_id,
        sender_name=body.sender_name or body.sender_id,
        text=body.text,
        msg_id=body.msg_id,
        ts=ts,
        mentions=tuple(body.mentions),
        private=body.private,
    )


def answer(outcome: Outcome) -> dict[str, Any]:
    return MessageOut(
        replies=[ReplyOut(text=r.text, to=r.to) for r in outcome.replies],
        ticket_id=outcome.ticket_id,
        intent=outcome.intent,
        duplicate=outcome.duplicate,
    ).model_dump()


@router.post("/api/v1/messages", response_model=MessageOut)
async def post_message(request: Request, response: Response, svc: ServicesDep) -> dict[str, Any]:
    """Handle one message; the same msg_id again answers from the first result."""
    raw = await request.body()
    _verify_signature(svc.settings.webhook_secret, raw, request.headers.get(SIGNATURE_HEADER))
    body = MessageIn.model_validate_json(raw)
    if len(body.text) > svc.settings.max_text_chars:
        raise PayloadTooLarge(
            f"text has {len(body.text)} characters; the limit is {svc.settings.max_text_chars}",
            code="TEXT_TOO_LONG",
        )
    outcome = await run_in_threadpool(svc.pipeline.handle, to_inbound(body))
    if outcome.lock != "held":
        response.headers[ORDERING_HEADER] = outcome.lock
    return answer(outcome)
