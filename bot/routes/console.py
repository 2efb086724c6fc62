"""The agent's console: login, the live queue, a ticket, a circle; pages over the same domain
functions as the JSON API (escalation.queue, escalation.tickets, escalation.panel, circles)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot import chat_links
from bot.auth import Principal
from bot.http import IdPath, ServicesDep
from bot.routes import auth as api_auth
from bot.services import Services
from bot.web.pages import (
    CsrfChecked,
    StaffPage,
    login_response,
    logout_response,
    render,
    safe_next,
    session_of,
)
from circles import care_store, customers
from circles.access import require_circle_access
from circles.history import cancel_held, latest_inbound, recent_messages, said, send_held_now
from circles.membership import find_circle
from escalation import tickets
from escalation.access import require_ticket
from escalation.dashboard import team
from escalation.panel import customer_panel
from escalation.queue import Sla, TicketFilter, find_tickets, next_deadline, sla_state
from storage.db import transaction
from storage.enums import Delivery, Direction, Priority, Role, TicketStatus, UserRole
from storage.errors import AppError, BadRequest, NotFound
from storage.models import Circle, CircleMember, Member, Message, Ticket, TicketEvent

router = APIRouter(prefix="/console", include_in_schema=False)

STREAM_SECONDS = 15.0  # a stream ends and the browser reconnects: no worker held for long
PROBE_SECONDS = 1.0
TRANSCRIPT = 60
Work = Callable[[Session, Ticket], object]  # one action on a ticket, in a transaction

def _now() -> datetime:
    return datetime.now(UTC)


def _actor(who: Principal) -> str:
    return who.member_id or who.username


def _today(svc: Services, now: datetime) -> date:
    return now.astimezone(ZoneInfo(svc.settings.timezone)).date()


# -- login -------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login")
async def login(
    request: Request, svc: ServicesDep, username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=512)] = "/console/",
) -> Response:
    address = request.client.host if request.client else "unknown"
    try:  # the API's own check: whatever guards the token endpoint guards this form too
        who = await run_in_threadpool(api_auth.sign_in, svc, username, password, address)
    except AppError as exc:
        if exc.status not in (401, 429):
            raise
        page = render(request, "login.html", status=exc.status, next=safe_next(next),
                      error=exc.code, username=username)
        retry = getattr(exc, "retry_after", None)
        if retry:
            page.headers["Retry-After"] = str(retry)
        return page
    landing = safe_next(next)
    if landing == "/console/" and who.role == UserRole.SUPERVISOR:
        landing = "/console/dashboard"
    return login_response(request, svc.signer, who, landing, svc.settings.token_minutes)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    return logout_response(request)


# -- the queue ---------------------------------------------------------------------------------
def _day(value: str | None, tz: ZoneInfo) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tz)
    except ValueError:
        return None


def queue_filter(params: dict[str, str], tz: ZoneInfo) -> TicketFilter:
    """The queue's filters from the query string; unknown values are ignored, not errors."""
    status = params.get("status")
    to_day = _day(params.get("to"), tz)
    return TicketFilter(
        scope="mine" if params.get("scope") == "mine" else "team",
        status=TicketStatus(status) if status in set(TicketStatus) else None,
        open_only=not status and params.get("open") != "0",
        priority=Priority(params["priority"]) if params.get("priority") in set(Priority) else None,
        assignee=params.get("assignee") or None,
        sla=Sla(params["sla"]) if params.get("sla") in (Sla.AT_RISK, Sla.BREACHED) else None,
        reason=params.get("reason") or None,
        complaint=params.get("complaint") == "1",
        created_from=_day(params.get("from"), tz),
        created_to=to_day + timedelta(days=1) if to_day else None,
        limit=200,
    )


def _rows(svc: Services, who: Principal, params: dict[str, str]) -> list[dict[str, Any]]:
    now = _now()
    f = queue_filter(params, ZoneInfo(svc.settings.timezone))
    with svc.sessions() as s:
        names = dict(s.execute(select(Member.id, Member.display_name)).all())
        rows = find_tickets(s, who.role, who.member_id, f, now=now, order="urgency")
        last = latest_inbound(s, {c.id for _, c in rows})
        return [
            {
                "t": t, "circle": c, "sla": sla_state(t, now).value,
                "deadline": next_deadline(t), "waiting": now - t.created_at,
                "assignee": names.get(t.assignee_id or "", ""),
                "customer": c.customer.name if c.customer else "",
                "member": names.get(t.member_id or "", t.member_id or ""),
                "last": last.get(c.id),
            }
            for t, c in rows
        ]


def _labels(svc: Services) -> dict[str, Any]:
    """Status and priority names as scripts_zh labels them (the bot says the same words)."""
    return {"priority_zh": {p.value: svc.scripts.label("priority", p.value) for p in Priority},
            "status_zh": {t.value: svc.scripts.label("ticket_status", t.value)
                          for t in TicketStatus},
}


@router.get("/", response_class=HTMLResponse)
def queue_page(request: Request, svc: ServicesDep, who: StaffPage) -> Response:
    params = dict(request.query_params)
    rows = _rows(svc, who, params)
    with svc.sessions() as s:
        people = team(s, who.role, who.member_id)
    return render(request, "queue.html", rows=rows, params=params, now=_now(), team=people,
                  query=urlencode(params), care_pending=pending_care(svc, who), **_labels(svc))


@router.get("/queue", response_class=HTMLResponse)
def queue_rows(request: Request, svc: ServicesDep, who: StaffPage) -> Response:
    """The queue's rows alone: what the page re-fetches when the event stream says so."""
    params = dict(request.query_params)
    return render(request, "_queue_rows.html", rows=_rows(svc, who, params), now=_now(),
                  **_labels(svc))


def _probe(svc: Services) -> tuple[int, int]:
    with svc.sessions() as s:
        return (s.scalar(select(func.max(Message.id))) or 0,
                s.scalar(select(func.max(TicketEvent.id))) or 0)


async def change_events(
    request: Request, probe: Callable[[], tuple[int, ...]]
) -> AsyncIterator[ServerSentEvent]:
    """`changed` whenever the probe's value moves; polls the database (works with SQLite and
    across workers); ends after STREAM_SECONDS and the browser reconnects."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    last = await run_in_threadpool(probe)
    yield ServerSentEvent(event="ready", data=list(last), retry=1000)
    while loop.time() < ends and not await request.is_disconnected():
        await asyncio.sleep(PROBE_SECONDS)
        current = await run_in_threadpool(probe)
        if current != last:
            last = current
            yield ServerSentEvent(event="changed", data=list(current))


@router.get("/events", response_class=EventSourceResponse)
async def queue_events(
    request: Request, svc: ServicesDep, who: StaffPage
) -> AsyncIterator[ServerSentEvent]:
    """New tickets, ticket changes and customer messages, as `changed` events."""
    async for event in change_events(request, lambda: _probe(svc)):
        yield event


# -- a ticket ----------------------------------------------------------------------------------
def _speakers(s: Session, circle_id: int) -> dict[str, Role]:
    return dict(s.execute(select(CircleMember.member_id, CircleMember.role)
                          .where(CircleMember.circle_id == circle_id)).all())


def transcript_rows(
    s: Session, circle: Circle, now: datetime, limit: int = TRANSCRIPT
) -> list[dict[str, Any]]:
    """Oldest first, each with who spoke (bot, agent, family) as the circle sees them."""
    roles = _speakers(s, circle.id)
    rows = []
    for m in reversed(recent_messages(s, circle, limit)):
        if m.direction == Direction.OUT and m.sender_id is None:
            who = "bot"
        else:
            role = roles.get(m.sender_id or "")
            who = {Role.CUSTOMER: "customer", Role.FAMILY: "family", Role.AGENT: "agent",
                   Role.SUPERVISOR: "agent", Role.SPECIALIST: "agent",
                   Role.BOT: "bot"}.get(role, "guest") if role else "guest"
        rows.append({"m": m, "who": who, "said": said(m, now)})
    return rows


def _circle_of(s: Session, t: Ticket) -> Circle:
    circle = s.get(Circle, t.circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"circle of ticket {t.id} is gone", code="CIRCLE_UNKNOWN")
    return circle


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(ticket_id: IdPath, request: Request, svc: ServicesDep, who: StaffPage) -> Response:
    now = _now()
    with svc.sessions() as s:
        t = require_ticket(s, ticket_id, who.role, who.member_id)
        circle = _circle_of(s, t)
        panel = customer_panel(s, circle, today=_today(svc, now))
        events = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                .order_by(TicketEvent.id)))
        names = dict(s.execute(select(Member.id, Member.display_name)).all())
        return render(
            request, "ticket.html", t=t, circle=circle, panel=panel, events=events,
            names=names, transcript=transcript_rows(s, circle, now),
            sla=sla_state(t, now).value, deadline=next_deadline(t), now=now,
            slots=t.context.get("slots") or {}, sealed=_sealed_slots(t),
            slot_names=_slot_names(svc), may_reveal=who.role == UserRole.AGENT,
            suggestions=t.context.get("suggested_scripts") or [],
            team=team(s, who.role, who.member_id),
            done=request.query_params.get("done"), error=request.query_params.get("error"),
            **_labels(svc),
        )


@router.get("/tickets/{ticket_id}/transcript", response_class=HTMLResponse)
def ticket_transcript(ticket_id: IdPath, request: Request, svc: ServicesDep,
                      who: StaffPage) -> Response:
    """The transcript alone: re-fetched when the event stream says the circle moved."""
    with svc.sessions() as s:
        t = require_ticket(s, ticket_id, who.role, who.member_id)
        circle = _circle_of(s, t)
        names = dict(s.execute(select(Member.id, Member.display_name)).all())
        return render(request, "_transcript.html", rows=transcript_rows(s, circle, _now()),
                      names=names, explain=False)


def _back(ticket_id: int, *, done: str | None = None, error: str | None = None) -> Response:
    query = urlencode({"done": done} if done else {"error": error or "FAILED"})
    return RedirectResponse(f"/console/tickets/{ticket_id}?{query}#actions", status_code=303)


def _act(
    svc: Services, who: Principal, ticket_id: int, done: str, work: Work
) -> Response:
    """Run one action on a visible ticket in a transaction; PRG back to the ticket page."""
    try:
        with transaction(svc.sessions) as s:
            ticket = require_ticket(s, ticket_id, who.role, who.member_id)
            work(s, ticket)
    except AppError as exc:
        if exc.status in (403, 404):
            raise
        return _back(ticket_id, error=exc.code)
    return _back(ticket_id, done=done)


Text = Annotated[str, Form(max_length=4000)]


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise BadRequest("empty text", code="EMPTY_TEXT")
    return value


@router.post("/tickets/{ticket_id}/reply", dependencies=[CsrfChecked])
def reply(ticket_id: IdPath, svc: ServicesDep, who: StaffPage, text: Text = "",
          to: Annotated[str, Form(max_length=64)] = "") -> Response:
    """To the whole group, or privately to one member of the circle, as the agent."""

    def work(s: Session, ticket: Ticket) -> None:
        body = _text(text)
        if to and to not in _speakers(s, ticket.circle_id):
            raise BadRequest("not a member of this circle", code="RECIPIENT_UNKNOWN")
        tickets.reply(s, ticket, actor_id=_actor(who), text=body, now=_now(), to=to or None)

    try:
        return _act(svc, who, ticket_id, "private" if to else "reply", work)
    except BadRequest as exc:
        return _back(ticket_id, error=exc.code)


def _guard(ticket_id: int, run: Callable[[], Response]) -> Response:
    try:
        return run()
    except BadRequest as exc:
        return _back(ticket_id, error=exc.code)


@router.post("/tickets/{ticket_id}/notes", dependencies=[CsrfChecked])
def note(ticket_id: IdPath, svc: ServicesDep, who: StaffPage, text: Text = "") -> Response:
    return _guard(ticket_id, lambda: _act(
        svc, who, ticket_id, "note",
        lambda s, t: tickets.add_note(s, t, actor_id=_actor(who), text=_text(text), now=_now())))


@router.post("/tickets/{ticket_id}/promise", dependencies=[CsrfChecked])
def promise(ticket_id: IdPath, svc: ServicesDep, who: StaffPage, text: Text = "",
            due: Annotated[str, Form(max_length=32)] = "") -> Response:
    """The date-time picker's value is local time (Asia/Shanghai by default)."""
    try:
        due_at = datetime.fromisoformat(due).replace(tzinfo=ZoneInfo(svc.settings.timezone))
    except ValueError:
        return _back(ticket_id, error="BAD_TIME")
    return _guard(ticket_id, lambda: _act(
        svc, who, ticket_id, "promise",
        lambda s, t: tickets.add_followup(s, t, actor_id=_actor(who), text=_text(text),
                                          due_at=due_at, now=_now())))


@router.post("/tickets/{ticket_id}/claim", dependencies=[CsrfChecked])
def claim(ticket_id: IdPath, svc: ServicesDep, who: StaffPage) -> Response:
    return _act(svc, who, ticket_id, "claim",
                lambda s, t: tickets.claim(s, t, actor_id=_actor(who), now=_now()))


@router.post("/tickets/{ticket_id}/assign", dependencies=[CsrfChecked])
def assign(ticket_id: IdPath, svc: ServicesDep, who: StaffPage,
           assignee_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Reassign to a teammate (an agent hands over, a supervisor dispatches)."""

    def work(s: Session, t: Ticket) -> None:
        if assignee_id not in {m.id for m in team(s, who.role, who.member_id)}:
            raise BadRequest("not in your team", code="ASSIGNEE_UNKNOWN")
        tickets.assign(s, t, assignee_id=assignee_id, actor_id=_actor(who), now=_now())

    return _guard(ticket_id, lambda: _act(svc, who, ticket_id, "assign", work))


@router.post("/tickets/{ticket_id}/resolve", dependencies=[CsrfChecked])
def resolve(ticket_id: IdPath, svc: ServicesDep, who: StaffPage,
            note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _act(svc, who, ticket_id, "resolve", lambda s, t: tickets.resolve(
        s, svc.scripts, t, actor_id=_actor(who), now=_now(), note=note.strip() or None))


@router.post("/tickets/{ticket_id}/reopen", dependencies=[CsrfChecked])
def reopen(ticket_id: IdPath, svc: ServicesDep, who: StaffPage) -> Response:
    return _act(svc, who, ticket_id, "reopen", lambda s, t: tickets.reopen(
        s, t, actor_id=_actor(who), now=_now(), policy=svc.settings.escalation_policy()))


# -- reveal a masked number ---------------------------------------------------------------------
def _sealed_slots(t: Ticket) -> set[str]:
    """The form answers kept sealed beside their masked copy: those may be revealed."""
    sealed = (t.context or {}).get("sealed")
    if not isinstance(sealed, dict):
        return set()
    return {k for k, v in sealed.items() if isinstance(v, str)}


def _slot_names(svc: Services) -> dict[str, str]:
    """The Chinese names of form answers (labels.form_slot in scripts_zh/common.yaml)."""
    return {str(k): str(v) for k, v in (svc.scripts.labels.get("form_slot") or {}).items()}


@router.post("/tickets/{ticket_id}/reveal", dependencies=[CsrfChecked])
def reveal(
    ticket_id: IdPath, request: Request, svc: ServicesDep, who: StaffPage, *,
    field: Annotated[str, Form(max_length=16)] = "",
    member_id: Annotated[str, Form(max_length=64)] = "",
    slot: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """One masked number in full, through the same audited domain functions as
    POST /api/v1/customers/{no}/reveal and /api/v1/tickets/{id}/reveal. The value is in this
    response only (not cached, never written into the ticket page)."""
    fragment = bool(request.headers.get("HX-Request"))
    name = ""
    try:
        with transaction(svc.sessions) as s:
            t = require_ticket(s, ticket_id, who.role, who.member_id)
            if slot:
                name = _slot_names(svc).get(slot, "表单信息")
                out = customers.reveal_form_answer(
                    s, ticket=t, slot=slot, reason=reason, actor=_actor(who), role=who.role,
                    keyring=svc.keyring, now=_now())
            else:
                customer = _circle_of(s, t).customer
                if customer is None:
                    raise NotFound("this circle has no customer", code="REVEAL_EMPTY")
                holder = not member_id
                person = customer.name if holder else (
                    s.scalar(select(Member.display_name).where(Member.id == member_id)) or "")
                name = f"{person} {svc.scripts.label('pii_kind', _PII.get(field, field))}"
                out = customers.reveal(
                    s, customer=customer, field=field, member_id=member_id or None,
                    reason=reason, actor=_actor(who), role=who.role, keyring=svc.keyring,
                    now=_now())
    except AppError as exc:
        if not exc.code.startswith("REVEAL_"):
            raise  # another team's ticket, a stale form: the usual error page
        response = render(request, "_revealed.html" if fragment else "revealed.html",
                          status=200 if fragment else exc.status, t_id=ticket_id,
                          error=exc.code, value=None, what=name)
    else:
        response = render(request, "_revealed.html" if fragment else "revealed.html",
                          t_id=ticket_id, error=None, value=out["value"], what=name)
    response.headers["Cache-Control"] = "no-store"
    return response


_PII = {"phone": "phone", "id_number": "id_card"}


# -- a circle ----------------------------------------------------------------------------------
@router.get("/circles/{chat_id}", response_class=HTMLResponse)
def circle_page(chat_id: str, request: Request, svc: ServicesDep, who: StaffPage) -> Response:
    """Every message, what the bot answered and why, held answers with their countdown."""
    now = _now()
    with svc.sessions() as s:
        circle = find_circle(s, chat_id)
        require_circle_access(s, who.role, who.member_id, circle)
        rows = transcript_rows(s, circle, now, limit=200)
        asked = {r["m"].id: r["m"] for r in rows if r["m"].direction == Direction.IN}
        held = [r["m"] for r in rows if r["m"].status == Delivery.HELD]
        open_tickets = find_tickets(
            s, who.role, who.member_id, TicketFilter(open_only=True, circle_id=circle.id),
            now=now)
        seats = s.execute(
            select(CircleMember.member_id, Member.display_name)
            .join(Member, Member.id == CircleMember.member_id)
            .where(CircleMember.circle_id == circle.id,
                   CircleMember.role.in_(chat_links.LINKED_ROLES))
            .order_by(CircleMember.role, CircleMember.id)).all()
        return render(
            request, "circle.html", circle=circle, rows=rows, asked=asked, held=held, now=now,
            tickets=[t for t, _ in open_tickets], seats=seats,
            may_link=who.role == UserRole.AGENT and who.member_id == circle.agent_id,
            done=request.query_params.get("done"), error=request.query_params.get("error"),
        )


@router.get("/circles/{chat_id}/messages", response_class=HTMLResponse)
def circle_messages(chat_id: str, request: Request, svc: ServicesDep,
                    who: StaffPage) -> Response:
    """The circle's messages alone, with the bot's reasons, for live refresh."""
    with svc.sessions() as s:
        circle = find_circle(s, chat_id)
        require_circle_access(s, who.role, who.member_id, circle)
        rows = transcript_rows(s, circle, _now(), limit=200)
        asked = {r["m"].id: r["m"] for r in rows if r["m"].direction == Direction.IN}
        return render(request, "_transcript.html", rows=rows, asked=asked, names=None,
                      explain=True)


def _held_action(
    svc: Services, who: Principal, chat_id: str, message_id: int, send: bool
) -> Response:
    try:
        with transaction(svc.sessions) as s:
            circle = find_circle(s, chat_id)
            require_circle_access(s, who.role, who.member_id, circle)
            if send:
                send_held_now(s, circle, message_id, now=_now())
            else:
                cancel_held(s, circle, message_id)
    except AppError as exc:
        if exc.status in (403, 404):
            raise
        return RedirectResponse(f"/console/circles/{chat_id}?error={exc.code}", status_code=303)
    done = "sent" if send else "cancelled"
    return RedirectResponse(f"/console/circles/{chat_id}?done={done}", status_code=303)


@router.post("/circles/{chat_id}/held/{message_id}/send", dependencies=[CsrfChecked])
def held_send(chat_id: str, message_id: IdPath, svc: ServicesDep, who: StaffPage) -> Response:
    return _held_action(svc, who, chat_id, message_id, send=True)


@router.post("/circles/{chat_id}/held/{message_id}/cancel", dependencies=[CsrfChecked])
def held_cancel(chat_id: str, message_id: IdPath, svc: ServicesDep, who: StaffPage) -> Response:
    return _held_action(svc, who, chat_id, message_id, send=False)


@router.post("/circles/{chat_id}/links", dependencies=[CsrfChecked])
def member_link(
    chat_id: str, request: Request, svc: ServicesDep, who: StaffPage, *,
    member_id: Annotated[str, Form(max_length=64)] = "",
    days: Annotated[int, Form(ge=1, le=chat_links.MAX_DAYS)] = chat_links.DEFAULT_DAYS,
) -> Response:
    """The same link as POST /api/v1/circles/{chat_id}/links, shown once to copy."""
    fragment = bool(request.headers.get("HX-Request"))
    try:
        with transaction(svc.sessions) as s:
            circle = find_circle(s, chat_id)
            require_circle_access(s, who.role, who.member_id, circle)
            link = chat_links.issue(s, svc.signer, circle, member_id, who=who, now=_now(),
                                    days=days)
            name = s.scalar(select(Member.display_name).where(Member.id == member_id))
    except AppError as exc:
        if not exc.code.startswith("LINK_"):
            raise
        response = render(request, "_member_link.html" if fragment else "member_link.html",
                          status=200 if fragment else exc.status, error=exc.code, link=None,
                          chat_id=chat_id)
    else:
        url = str(request.base_url).rstrip("/") + link.path
        response = render(request, "_member_link.html" if fragment else "member_link.html",
                          error=None, link=link, url=url, person=name, chat_id=chat_id)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("", include_in_schema=False)
def bare(request: Request) -> Response:
    return RedirectResponse("/console/" if session_of(request) else "/console/login",
                            status_code=307)


# -- proactive care: the agent's drafts ---------------------------------------------------------
CARE_ACTIONS = ("approve", "skip", "edit")


def pending_care(svc: Services, who: Principal) -> int:
    """How many care drafts wait for a decision in this login's circles (the nav's count)."""
    with svc.sessions() as s:
        return care_store.pending_count(s, who.role, who.member_id)


def _care_page(request: Request, svc: Services, who: Principal, *, status: int = 200,
               error: str | None = None, draft_id: int | None = None,
               typed: str = "") -> Response:
    now = _now()
    with svc.sessions() as s:
        rows = care_store.drafts_of(s, who.role, who.member_id, status="pending",
                                    limit=care_store.MAX_PAGE_DRAFTS)
        people = {d.recipient_id for d, _ in rows if d.recipient_id}
        names = dict(s.execute(select(Member.id, Member.display_name)
                               .where(Member.id.in_(people))).all()) if people else {}
        drafts = [{"d": d, "circle": c, "recipient": names.get(d.recipient_id or "", ""),
                   "may_decide": who.role == UserRole.ADMIN or (
                       who.member_id is not None and c.agent_id == who.member_id)}
                  for d, c in rows]
    return render(request, "care.html", status=status, drafts=drafts, now=now,
                  done=request.query_params.get("done"), error=error, error_id=draft_id,
                  typed=typed, max_chars=care_store.MAX_DRAFT_CHARS)


@router.get("/care", response_class=HTMLResponse)
def care_page(request: Request, svc: ServicesDep, who: StaffPage) -> Response:
    """Pending agent-first care drafts: the agent's circles, a supervisor's team, an admin all."""
    return _care_page(request, svc, who)


@router.post("/care/{draft_id}/{action}", dependencies=[CsrfChecked])
def care_decide(
    draft_id: IdPath, action: str, request: Request, svc: ServicesDep, who: StaffPage, *,
    text: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """approve / skip / edit through the same domain function as
    POST /api/v1/care/drafts/{id}/approve|skip|edit; a refusal is shown on the page."""
    if action not in CARE_ACTIONS:
        raise NotFound(f"no care action {action!r}", code="NOT_FOUND")
    try:
        with transaction(svc.sessions) as s:
            care_store.decide_as(
                s, svc.scripts, svc.settings.care_settings(), draft_id, action, role=who.role,
                member_id=who.member_id, actor=_actor(who), now=_now(),
                text=text if action == "edit" else None)
    except AppError as exc:
        if exc.status in (403, 404):
            raise  # another team's draft, or none: the error page
        # the API's 400 CARE_DRAFT_FORBIDDEN is a compliance refusal, not a 403
        code = "CARE_DRAFT_PROMISE" if exc.code == "CARE_DRAFT_FORBIDDEN" else exc.code
        return _care_page(request, svc, who, status=exc.status, error=code, draft_id=draft_id,
                          typed=text if action == "edit" else "")
    return RedirectResponse(f"/console/care?done=care_{action}", status_code=303)
