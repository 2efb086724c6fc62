"""The generic group-chat webhook: POST /api/v1/messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from bot import signing
from bot.http import ServicesDep, error_responses, require_json
from bot.messages import InboundMessage, Outcome
from storage.errors import PayloadTooLarge

router = APIRouter(tags=["messages"])

# Present only when the member's conversation lock was not held across workers: `process`
# (the state store is down; ordered within one worker) or `skipped` (busy past the wait).
ORDERING_HEADER = "X-Corecircle-Ordering"
# A bridge's clock may be off, and a test may replay an old or future day, but a time outside
# this century is an absurd clock: every relative time ("明天") would fall off the calendar.
TS_EARLIEST, TS_LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


class MessageIn(BaseModel):
    """One group-chat message from a bridge. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    chat_id: str = Field(min_length=1, max_length=128)
    sender_id: str = Field(min_length=1, max_length=64)
    sender_name: str = Field(default="", max_length=64)
    text: str
    msg_id: str = Field(min_length=1, max_length=128)
    mentions: list[str] = Field(default_factory=list, max_length=50)
    ts: datetime | None = Field(
        default=None, description="when it was sent (ISO-8601; naive = UTC); years 2000-2099"
    )
    private: bool = False

    @field_validator("ts")
    @classmethod
    def _plausible_ts(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            ts = value if value.tzinfo else value.replace(tzinfo=UTC)
            ts = ts.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise ValueError("ts is outside the calendar") from exc
        if not TS_EARLIEST <= ts < TS_LATEST:
            raise ValueError("ts must fall in the years 2000-2099")
        return ts


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


_SIGNED = {
    "parameters": [
        {"name": signing.TIMESTAMP_HEADER, "in": "header", "required": False,
         "schema": {"type": "string"},
         "description": "unix seconds; required when a webhook secret is configured"},
        {"name": signing.SIGNATURE_HEADER, "in": "header", "required": False,
         "schema": {"type": "string"},
         "description": 'v1=<hex HMAC-SHA256 of "v1:<timestamp>:<raw body>">'},
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": MessageIn.model_json_schema()}},
    },
}


@router.post(
    "/api/v1/messages", response_model=MessageOut, openapi_extra=_SIGNED,
    responses=error_responses(400, 401, 404, 413, 415, 422, 503),
)
async def post_message(
    request: Request, response: Response, svc: ServicesDep
) -> dict[str, Any]:
    """Handle one message; the same msg_id again answers from the first result.

    Authentication comes first: with a webhook secret configured, nothing is parsed or looked
    up before the signature and its timestamp check out.
    """
    raw = await request.body()
    secret = svc.settings.webhook_secret
    if secret is not None:
        signing.verify(secret, request.headers, raw, window=svc.settings.webhook_ts_window)
    require_json(request)
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
