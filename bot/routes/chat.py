"""The WeChat-style chat page for demo circles: speak as any member through the same pipeline
as the webhook (channel "web"), watch the bot's and the agent's replies arrive."""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.http import ServicesDep
from bot.messages import InboundMessage
from bot.routes.console import change_events
from bot.services import Services
from bot.web.pages import render
from circles.history import latest_id, recent_messages, said
from circles.membership import find_circle
from storage.enums import CircleKind, Role
from storage.errors import Forbidden, NotFound, PayloadTooLarge
from storage.models import Circle, CircleMember, Member

router = APIRouter(prefix="/chat", include_in_schema=False)

DEMO_PREFIX = "demo-"
CHAT_GUARD_HEADER = "X-Chat-Token"
FEED = 120
MENTION = re.compile(r"@\S+")


@dataclass(frozen=True)
class Person:
    member_id: str
    name: str
    role: Role


def _demo_circle(svc: Services, s: Session, chat_id: str) -> Circle:
    """Only demo circles, and only when the service runs the demo."""
    if not (svc.settings.demo and chat_id.startswith(DEMO_PREFIX)):
        raise NotFound("the chat page serves demo circles only", code="CHAT_NOT_DEMO")
    circle = find_circle(s, chat_id)
    if circle.kind != CircleKind.CORE:
        raise NotFound("the chat page serves demo family circles only", code="CHAT_NOT_DEMO")
    return circle


def _people(s: Session, circle: Circle) -> list[Person]:
    rows = s.execute(
        select(CircleMember.member_id, Member.display_name, CircleMember.role)
        .join(Member, Member.id == CircleMember.member_id)
        .where(CircleMember.circle_id == circle.id, CircleMember.role != Role.BOT)
        .order_by(CircleMember.id)
    ).all()
    return [Person(mid, name, role) for mid, name, role in rows]


def _token(svc: Services, chat_id: str) -> str:
    return svc.signer.mac("chat", chat_id)


def _feed(svc: Services, chat_id: str, speaker: str | None) -> dict[str, Any]:
    now = datetime.now(UTC)
    with svc.sessions() as s:
        circle = _demo_circle(svc, s, chat_id)
        people = _people(s, circle)
        me = next((p for p in people if p.member_id == speaker), people[0] if people else None)
        rows = [m for m in reversed(recent_messages(s, circle, FEED)) if said(m, now)]
        group = [m for m in rows if m.recipient_id is None]
        private = [m for m in rows if me is not None and m.recipient_id == me.member_id]
        return {"circle": circle, "people": people, "me": me, "group": group,
                "private": private, "bot_name": svc.settings.bot_name,
                "token": _token(svc, chat_id), "chat_id": chat_id,
                "agent_id": circle.agent_id}


@router.get("/{chat_id}", response_class=HTMLResponse)
def chat_page(chat_id: str, request: Request, svc: ServicesDep) -> Response:
    """`?as=member_id` picks who you speak as (default: the first member, the customer)."""
    return render(request, "chat.html", **_feed(svc, chat_id, request.query_params.get("as")))


@router.get("/{chat_id}/feed", response_class=HTMLResponse)
def chat_feed(chat_id: str, request: Request, svc: ServicesDep) -> Response:
    return render(request, "_chat_feed.html", **_feed(svc, chat_id, request.query_params.get("as")))


@router.get("/{chat_id}/events", response_class=EventSourceResponse)
async def chat_events(chat_id: str, request: Request,
                      svc: ServicesDep) -> AsyncIterator[ServerSentEvent]:
    def probe() -> tuple[int]:
        with svc.sessions() as s:
            return (latest_id(s, _demo_circle(svc, s, chat_id)),)

    await run_in_threadpool(probe)  # an unknown circle fails here, before the stream starts
    async for event in change_events(request, probe):
        yield event


@router.post("/{chat_id}/messages", response_class=HTMLResponse)
async def chat_send(
    chat_id: str, request: Request, svc: ServicesDep,
    sender: Annotated[str, Form(alias="as", max_length=64)],
    text: Annotated[str, Form(max_length=4000)],
) -> Response:
    """Said in the group by `as`, through the pipeline exactly as a webhook message is."""
    given = request.headers.get(CHAT_GUARD_HEADER, "")
    if not hmac.compare_digest(given, _token(svc, chat_id)):
        raise Forbidden("reload the chat page", code="CSRF_FAILED")
    if len(text) > svc.settings.max_text_chars:
        raise PayloadTooLarge("text too long", code="TEXT_TOO_LONG")

    def who() -> Person:
        with svc.sessions() as s:
            people = _people(s, _demo_circle(svc, s, chat_id))
        found = next((p for p in people if p.member_id == sender), None)
        if found is None:
            raise NotFound(f"{sender!r} is not in this circle", code="MEMBER_UNKNOWN")
        return found

    person = await run_in_threadpool(who)
    if text.strip():
        inbound = InboundMessage(
            channel="web", chat_id=chat_id, sender_id=person.member_id,
            sender_name=person.name, text=text, msg_id=f"web-{uuid.uuid4().hex}",
            ts=datetime.now(UTC),
            mentions=tuple(m[1:] for m in MENTION.findall(text)),
        )
        await run_in_threadpool(svc.pipeline.handle, inbound)
    return render(request, "_chat_feed.html", **_feed(svc, chat_id, person.member_id))
