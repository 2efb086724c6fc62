"""Tickets for agents and supervisors: list, read, reply, notes, follow-ups, assign, resolve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth import Principal
from bot.http import IdPath, Moment, ServicesDep, StaffDep, require_roles
from bot.routes.followups import FollowUpView, followup_view
from circles.matter import Specialist
from escalation import matters, tickets
from escalation.access import require_ticket
from escalation.queue import TicketFilter, find_tickets
from storage.db import transaction
from storage.enums import FollowUpKind, Priority, TicketStatus, UserRole
from storage.errors import NotFound
from storage.models import Circle, FollowUp, Matter, Ticket, TicketEvent

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])

SupervisorDep = Annotated[
    Principal, Depends(require_roles(UserRole.SUPERVISOR, UserRole.ADMIN))
]


class TicketView(BaseModel):
    id: int
    chat_id: str
    circle_name: str
    member_id: str | None
    intent: str | None
    reason: str
    status: str
    priority: str
    assignee_id: str | None
    summary: str  # masked
    first_response_due: datetime | None
    resolve_due: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    rating: int | None
    created_at: datetime


class EventView(BaseModel):
    kind: str
    actor_id: str | None
    data: dict[str, Any]
    created_at: datetime


class TicketDetail(TicketView):
    context: dict[str, Any]  # handoff context: masked transcript, profile, policies, scripts
    events: list[EventView]
    followups: list[FollowUpView]
    matter_chat_ids: list[str]


def _view(t: Ticket, c: Circle) -> dict[str, Any]:
    return {
        "id": t.id, "chat_id": c.chat_id, "circle_name": c.name, "member_id": t.member_id,
        "intent": t.intent, "reason": t.reason, "status": t.status.value,
        "priority": t.priority.value, "assignee_id": t.assignee_id, "summary": t.summary,
        "first_response_due": t.first_response_due, "resolve_due": t.resolve_due,
        "first_response_at": t.first_response_at, "resolved_at": t.resolved_at,
        "rating": t.rating, "created_at": t.created_at,
    }


@router.get("", response_model=list[TicketView])
def list_tickets(
    svc: ServicesDep,
    who: StaffDep,
    *,
    scope: Annotated[Literal["mine", "team"], Query()] = "team",
    status_: Annotated[TicketStatus | None, Query(alias="status")] = None,
    priority: Priority | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TicketView]:
    """`mine`: assigned to me; `team`: everything I may see (my circles, pool, my team's)."""
    f = TicketFilter(scope=scope, status=status_, priority=priority, limit=limit)
    with svc.sessions() as s:
        rows = find_tickets(s, who.role, who.member_id, f, now=_now())
        return [TicketView(**_view(t, c)) for t, c in rows]


def _detail(s: Any, t: Ticket) -> TicketDetail:
    circle = s.get(Circle, t.circle_id)
    evs = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                    .order_by(TicketEvent.id))
    fus = s.scalars(select(FollowUp).where(FollowUp.ticket_id == t.id).order_by(FollowUp.id))
    mats = s.scalars(select(Circle.chat_id).join(Matter, Matter.circle_id == Circle.id)
                     .where(Matter.ticket_id == t.id))
    return TicketDetail(
        **_view(t, circle), context=t.context,
        events=[EventView(kind=e.kind, actor_id=e.actor_id, data=e.data,
                          created_at=e.created_at) for e in evs],
        followups=[followup_view(f) for f in fus], matter_chat_ids=list(mats),
    )


@router.get("/{ticket_id}", response_model=TicketDetail)
def get_ticket(ticket_id: IdPath, svc: ServicesDep, who: StaffDep) -> TicketDetail:
    with svc.sessions() as s:
        return _detail(s, require_ticket(s, ticket_id, who.role, who.member_id))


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ReplyOut(BaseModel):
    message_id: int
    status: str


@router.post("/{ticket_id}/reply", response_model=ReplyOut, status_code=201)
def reply(ticket_id: IdPath, body: TextIn, svc: ServicesDep, who: StaffDep) -> ReplyOut:
    """Sent into the circle as the agent (queued for the circle's outbound channel)."""
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        row = tickets.reply(s, ticket, actor_id=_actor(who), text=body.text, now=_now())
        return ReplyOut(message_id=row.id, status=row.status)


@router.post("/{ticket_id}/notes", status_code=201)
def add_note(ticket_id: IdPath, body: TextIn, svc: ServicesDep, who: StaffDep) -> dict[str, bool]:
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        tickets.add_note(s, ticket, actor_id=_actor(who), text=body.text, now=_now())
    return {"ok": True}


class FollowUpIn(BaseModel):
    due_at: Moment
    text: str = Field(min_length=1, max_length=2000)
    kind: FollowUpKind = FollowUpKind.PROMISE
    dedupe_key: str | None = Field(default=None, max_length=120)


@router.post("/{ticket_id}/followups", response_model=FollowUpView, status_code=201)
def add_followup(
    ticket_id: IdPath, body: FollowUpIn, svc: ServicesDep, who: StaffDep
) -> FollowUpView | JSONResponse:
    """The same promise twice (a retried request) is one row: the second call answers 200."""
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        row, created = tickets.add_followup(
            s, ticket, actor_id=_actor(who), text=body.text, due_at=body.due_at, now=_now(),
            kind=body.kind, dedupe_key=body.dedupe_key,
        )
        view = followup_view(row)
    if created:
        return view
    return JSONResponse(view.model_dump(mode="json"), status_code=status.HTTP_200_OK)


class AssignIn(BaseModel):
    assignee_id: str = Field(min_length=1, max_length=64)


@router.post("/{ticket_id}/assign", response_model=TicketView)
def assign(ticket_id: IdPath, body: AssignIn, svc: ServicesDep, who: SupervisorDep) -> TicketView:
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        tickets.assign(s, ticket, assignee_id=body.assignee_id, actor_id=_actor(who), now=_now())
        return TicketView(**_view(ticket, _circle_of(s, ticket)))


@router.post("/{ticket_id}/claim", response_model=TicketView)
def claim(ticket_id: IdPath, svc: ServicesDep, who: StaffDep) -> TicketView:
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        tickets.claim(s, ticket, actor_id=_actor(who), now=_now())
        return TicketView(**_view(ticket, _circle_of(s, ticket)))


class ResolveIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


@router.post("/{ticket_id}/resolve", response_model=TicketView)
def resolve(
    ticket_id: IdPath, svc: ServicesDep, who: StaffDep, body: ResolveIn | None = None
) -> TicketView:
    """Resolved: promises settled, matter circles dissolved, the customer asked for a rating."""
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        tickets.resolve(s, svc.scripts, ticket, actor_id=_actor(who), now=_now(),
                        note=body.note if body else None)
        return TicketView(**_view(ticket, _circle_of(s, ticket)))


@router.post("/{ticket_id}/reopen", response_model=TicketView)
def reopen(ticket_id: IdPath, svc: ServicesDep, who: StaffDep) -> TicketView:
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        tickets.reopen(s, ticket, actor_id=_actor(who), now=_now(),
                       policy=svc.settings.escalation_policy())
        return TicketView(**_view(ticket, _circle_of(s, ticket)))


class SpecialistIn(BaseModel):
    member_id: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=64)


class MatterIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    specialists: list[SpecialistIn] = Field(default_factory=list, max_length=10)


class MatterOut(BaseModel):
    chat_id: str
    parent_chat_id: str
    members: list[str]


@router.post("/{ticket_id}/matter", response_model=MatterOut, status_code=201)
def open_matter(ticket_id: IdPath, body: MatterIn, svc: ServicesDep, who: StaffDep) -> MatterOut:
    """A matter circle for this case: the customer side, the agent, outside specialists."""
    with transaction(svc.sessions) as s:
        ticket = require_ticket(s, ticket_id, who.role, who.member_id)
        matter = matters.open_for_ticket(
            s, svc.scripts, ticket, name=body.name,
            specialists=[Specialist(x.member_id, x.display_name) for x in body.specialists],
            bot_member_id=svc.settings.bot_member_id, actor_id=_actor(who), now=_now(),
        )
        circle, parent = _circle(s, matter.circle_id), _circle(s, matter.parent_circle_id)
        s.refresh(circle)
        return MatterOut(chat_id=circle.chat_id, parent_chat_id=parent.chat_id,
                         members=sorted(m.member_id for m in circle.members))


def _circle(s: Session, circle_id: int) -> Circle:
    circle = s.get(Circle, circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"circle {circle_id} is gone", code="CIRCLE_UNKNOWN")
    return circle


def _circle_of(s: Session, ticket: Ticket) -> Circle:
    return _circle(s, ticket.circle_id)


def _actor(who: Principal) -> str:
    return who.member_id or who.username


def _now() -> datetime:
    return datetime.now(UTC)
