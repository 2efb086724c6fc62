"""The WeChat-style chat page: for demo circles, speak as any member; for a real member behind
a signed link (bot/chat_links.py), read the group and your own private messages and speak as
yourself. Either way through the same pipeline as the webhook (channel "web")."""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot import chat_links
from bot.http import ServicesDep
from bot.messages import InboundMessage
from bot.routes.console import change_events
from bot.services import Services
from bot.web.pages import render
from circles.history import latest_id, recent_messages, said
from circles.membership import find_circle
from storage.enums import CircleKind, Role
from storage.errors import AppError, Forbidden, NotFound, PayloadTooLarge
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


@dataclass(frozen=True)
class Access:
    circle: Circle
    member_id: str | None  # fixed by a signed link; None: a demo circle, speak as anyone
    query: dict[str, str]  # what every URL of this page carries (the link itself)
    expires_at: datetime | None = None


def _demo_circle(svc: Services, s: Session, chat_id: str) -> Circle:
    """Only demo circles, and only when the service runs the demo."""
    if not (svc.settings.demo and chat_id.startswith(DEMO_PREFIX)):
        raise NotFound("the chat page serves demo circles only", code="CHAT_NOT_DEMO")
    circle = find_circle(s, chat_id)
    if circle.kind != CircleKind.CORE:
        raise NotFound("the chat page serves demo family circles only", code="CHAT_NOT_DEMO")
    return circle


def _access(svc: Services, s: Session, chat_id: str, params: Mapping[str, str]) -> Access:
    """A signed member link (checked before the circle is even looked up), or a demo circle."""
    if not any(k in params for k in ("member", "sig", "exp")):
        return Access(_demo_circle(svc, s, chat_id), None, {})
    member, exp, sig = params.get("member", ""), params.get("exp", ""), params.get("sig", "")
    expires = chat_links.verify(svc.signer, chat_id, member, exp, sig, now=datetime.now(UTC))
    refused = Forbidden("this chat link is invalid or has expired", code="CHAT_LINK_INVALID")
    if expires is None:
        raise refused
    try:
        circle = find_circle(s, chat_id)
    except NotFound as exc:
        raise refused from exc
    if circle.kind != CircleKind.CORE or (
            chat_links.seat_role(s, circle, member) not in chat_links.LINKED_ROLES):
        raise refused  # left the group since: the link dies with the seat
    return Access(circle, member, {"member": member, "exp": exp, "sig": sig}, expires)


def _people(s: Session, circle: Circle) -> list[Person]:
    rows = s.execute(
        select(CircleMember.member_id, Member.display_name, CircleMember.role)
        .join(Member, Member.id == CircleMember.member_id)
        .where(CircleMember.circle_id == circle.id, CircleMember.role != Role.BOT)
        .order_by(CircleMember.id)
    ).all()
    return [Person(mid, name, role) for mid, name, role in rows]


def _token(svc: Services, chat_id: str, member_id: str | None) -> str:
    """The page's guard for its own posts: per circle on demo pages, per member on links."""
    return svc.signer.mac("chat", chat_id if member_id is None else f"{chat_id}\n{member_id}")


def _feed(svc: Services, chat_id: str, params: Mapping[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    with svc.sessions() as s:
        access = _access(svc, s, chat_id, params)
        circle = access.circle
        people = _people(s, circle)
        speaker = access.member_id or params.get("as")
        me = next((p for p in people if p.member_id == speaker), None)
        if me is None and access.member_id is None:
            me = people[0] if people else None
        rows = [m for m in reversed(recent_messages(s, circle, FEED)) if said(m, now)]
        group = [m for m in rows if m.recipient_id is None]
        private = [m for m in rows if me is not None and m.recipient_id == me.member_id]
        query = access.query or ({"as": me.member_id} if me else {})
        return {"circle": circle, "people": people, "me": me, "group": group,
                "private": private, "bot_name": svc.settings.bot_name,
                "token": _token(svc, chat_id, access.member_id), "chat_id": chat_id,
                "agent_id": circle.agent_id, "linked": access.member_id is not None,
                "expires_at": access.expires_at, "q": urlencode(query)}


@router.get("/{chat_id}", response_class=HTMLResponse)
def chat_page(chat_id: str, request: Request, svc: ServicesDep) -> Response:
    """Demo circles: `?as=member_id` picks who you speak as (default: the customer).
    Real circles: `?member=&exp=&sig=`, a link the circle's agent handed out."""
    response = render(request, "chat.html", **_feed(svc, chat_id, request.query_params))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the link stays off other sites' logs
    return response


@router.get("/{chat_id}/feed", response_class=HTMLResponse)
def chat_feed(chat_id: str, request: Request, svc: ServicesDep) -> Response:
    return render(request, "_chat_feed.html", **_feed(svc, chat_id, request.query_params))


async def _may_stream(chat_id: str, request: Request, svc: ServicesDep) -> None:
    """Checked before the stream starts: an unknown circle or a bad link gets an error, not an
    open stream that fails inside."""

    def check() -> None:
        with svc.sessions() as s:
            _access(svc, s, chat_id, request.query_params)

    await run_in_threadpool(check)


@router.get("/{chat_id}/events", response_class=EventSourceResponse,
            dependencies=[Depends(_may_stream)])
async def chat_events(chat_id: str, request: Request,
                      svc: ServicesDep) -> AsyncIterator[ServerSentEvent]:
    params = dict(request.query_params)

    def probe() -> tuple[int]:
        with svc.sessions() as s:
            try:
                return (latest_id(s, _access(svc, s, chat_id, params).circle),)
            except AppError:  # the link expired or the seat went mid-stream: the page's next
                return (-1,)  # fetch is refused, and so is the browser's reconnect

    async for event in change_events(request, probe):
        yield event


@router.post("/{chat_id}/messages", response_class=HTMLResponse)
async def chat_send(
    chat_id: str, request: Request, svc: ServicesDep,
    text: Annotated[str, Form(max_length=4000)],
    sender: Annotated[str, Form(alias="as", max_length=64)] = "",
) -> Response:
    """Said in the group through the pipeline exactly as a webhook message is: by `as` on a
    demo page, by the link's member (and nobody else) on a member link."""
    params = dict(request.query_params)
    if len(text) > svc.settings.max_text_chars:
        raise PayloadTooLarge("text too long", code="TEXT_TOO_LONG")

    def who() -> Person:
        with svc.sessions() as s:
            access = _access(svc, s, chat_id, params)
            people = _people(s, access.circle)
        given = request.headers.get(CHAT_GUARD_HEADER, "")
        if not hmac.compare_digest(given.encode(), _token(svc, chat_id, access.member_id).encode()):
            raise Forbidden("reload the chat page", code="CSRF_FAILED")
        if access.member_id is not None and sender and sender != access.member_id:
            raise Forbidden("a member link speaks only as its member", code="SPEAKER_FORBIDDEN")
        found = next((p for p in people if p.member_id == (access.member_id or sender)), None)
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
    shown = params if "member" in params else params | {"as": person.member_id}
    return render(request, "_chat_feed.html", **_feed(svc, chat_id, shown))
