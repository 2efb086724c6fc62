"""Proactive care for staff: the plan of a day (supervisors: their team; admins: all), the
agent's drafts (agent first: approve, edit or skip), and a circle's care route."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.auth import Principal
from bot.http import IdPath, ServicesDep, StaffDep, require_roles
from circles import care_store
from escalation.access import visible_circles
from storage.db import transaction
from storage.enums import UserRole
from storage.errors import BadRequest, NotFound
from storage.models import CareDraft, Circle

router = APIRouter(prefix="/api/v1/care", tags=["care"])
PlannerDep = Annotated[Principal, Depends(require_roles(UserRole.SUPERVISOR, UserRole.ADMIN))]


def _now() -> datetime:
    return datetime.now(UTC)


class PlanItemView(BaseModel):
    kind: str
    circle: str
    recipient: str | None = Field(description="a member id (privately); null: the whole group")
    route: str
    send_at: str
    script_id: str
    text: str


class PlanView(BaseModel):
    date: str
    count: int
    items: list[PlanItemView]


@router.get("/plan", response_model=PlanView)
def plan(
    svc: ServicesDep, who: PlannerDep,
    date_: Annotated[str, Query(alias="date", max_length=32, description="YYYY-MM-DD")],
) -> PlanView:
    """What the daily run would send that day (masked), for the circles this login oversees;
    nothing is sent."""
    try:
        day = date.fromisoformat(date_)
    except ValueError:
        raise BadRequest(f"date must be YYYY-MM-DD, got {date_!r}",
                         code="CARE_DATE_INVALID") from None
    settings = svc.settings
    with svc.sessions() as s:
        items = [PlanItemView(**i.public()) for i in care_store.plan_day(
            s, svc.scripts, settings.care_settings(), day, bot_name=settings.bot_name,
            circles=visible_circles(s, who.role, who.member_id))]
    return PlanView(date=day.isoformat(), count=len(items), items=items)


class DraftView(BaseModel):
    id: int
    circle: str
    kind: str
    recipient: str | None
    text: str
    status: str
    auto_send_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class EditBody(BaseModel):
    text: str = Field(min_length=1, max_length=care_store.MAX_DRAFT_CHARS)


def _view(d: CareDraft, chat_id: str) -> DraftView:
    return DraftView(id=d.id, circle=chat_id, kind=d.kind, recipient=d.recipient_id, text=d.text,
                     status=d.status, auto_send_at=d.auto_send_at, decided_by=d.decided_by,
                     decided_at=d.decided_at)


@router.get("/drafts", response_model=list[DraftView])
def drafts(
    svc: ServicesDep, who: StaffDep,
    status: Literal["pending", "approved", "edited", "skipped"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DraftView]:
    """Drafts of the circles this login may see, newest first."""
    with svc.sessions() as s:
        return [_view(d, c.chat_id) for d, c in care_store.drafts_of(
            s, who.role, who.member_id, status=status, limit=limit)]


def _decide(svc: ServicesDep, who: Principal, draft_id: int, action: str,
            text: str | None = None) -> DraftView:
    with transaction(svc.sessions) as s:
        draft, circle = care_store.decide_as(
            s, svc.scripts, svc.settings.care_settings(), draft_id, action, role=who.role,
            member_id=who.member_id, actor=who.member_id or who.username, now=_now(),
            text=text)
        return _view(draft, circle.chat_id)


@router.post("/drafts/{draft_id}/approve", response_model=DraftView)
def approve(draft_id: IdPath, svc: ServicesDep, who: StaffDep) -> DraftView:
    """Send it now, as written."""
    return _decide(svc, who, draft_id, "approve")


@router.post("/drafts/{draft_id}/skip", response_model=DraftView)
def skip(draft_id: IdPath, svc: ServicesDep, who: StaffDep) -> DraftView:
    """Never send it."""
    return _decide(svc, who, draft_id, "skip")


@router.post("/drafts/{draft_id}/edit", response_model=DraftView)
def edit(draft_id: IdPath, body: EditBody, svc: ServicesDep, who: StaffDep) -> DraftView:
    """Send these words instead, now."""
    return _decide(svc, who, draft_id, "edit", body.text)


class RouteBody(BaseModel):
    route: Literal["direct", "agent_first"]


class RouteView(BaseModel):
    circle: str
    route: str


@router.post("/circles/{chat_id}/route", response_model=RouteView)
def set_route(chat_id: str, body: RouteBody, svc: ServicesDep, who: StaffDep) -> RouteView:
    """The circle's agent (their supervisor, an admin) chooses how its care goes out."""
    with transaction(svc.sessions) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id,
                                               visible_circles(s, who.role, who.member_id)))
        if circle is None:
            raise NotFound(f"no circle {chat_id!r} of yours", code="CIRCLE_UNKNOWN")
        circle.care_route = body.route
        return RouteView(circle=circle.chat_id, route=body.route)
