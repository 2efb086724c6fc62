"""Customers for agents and supervisors: search, the customer in one place, reveals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from bot.http import IdPath, ServicesDep, StaffDep
from circles import customers
from storage.db import transaction
from storage.errors import NotFound
from storage.models import Ticket

router = APIRouter(prefix="/api/v1", tags=["customers"])


class RevealIn(BaseModel):
    field: str = Field(description="phone | id_number")
    reason: str = Field(max_length=200, description="why the agent needs the number")
    member_id: str | None = Field(default=None, description="a family member's phone instead")


@router.get("/customers")
def search_customers(
    svc: ServicesDep, who: StaffDep,
    q: Annotated[str, Query(max_length=64)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """By name, phone tail (last 4 digits) or policy number; only customers you serve."""
    with svc.sessions() as s:
        return customers.search(s, q=q, role=who.role, member_id=who.member_id, page=page,
                                per_page=per_page)


@router.get("/customers/{customer_no}")
def get_customer(customer_no: str, svc: ServicesDep, who: StaffDep) -> dict[str, Any]:
    with svc.sessions() as s:
        customer = customers.find_customer(s, customer_no=customer_no, role=who.role,
                                           member_id=who.member_id)
        today = datetime.now(UTC).astimezone(ZoneInfo(svc.settings.timezone)).date()
        return customers.customer_view(s, customer, today=today)


@router.post("/customers/{customer_no}/reveal")
def reveal(customer_no: str, body: RevealIn, svc: ServicesDep, who: StaffDep) -> dict[str, Any]:
    """One number in full for the customer's own agent; written to the audit log."""
    with transaction(svc.sessions) as s:
        customer = customers.find_customer(s, customer_no=customer_no, role=who.role,
                                           member_id=who.member_id)
        return customers.reveal(
            s, customer=customer, field=body.field, member_id=body.member_id,
            reason=body.reason, actor=who.member_id or who.username, role=who.role,
            keyring=svc.keyring, now=datetime.now(UTC),
        )


@router.get("/reveals")
def list_reveals(svc: ServicesDep, who: StaffDep) -> list[dict[str, Any]]:
    """Supervisors see their team's reveals, admins everyone's."""
    with svc.sessions() as s:
        return customers.list_reveals(s, role=who.role, member_id=who.member_id)


class FormRevealIn(BaseModel):
    slot: str = Field(max_length=64, description="the form's slot, e.g. new_phone")
    reason: str = Field(max_length=200)


@router.post("/tickets/{ticket_id}/reveal")
def reveal_form_answer(ticket_id: IdPath, body: FormRevealIn, svc: ServicesDep, who: StaffDep
                       ) -> dict[str, Any]:
    """The number a customer gave in a form, in full, to carry out the change; audited."""
    with transaction(svc.sessions) as s:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id}", code="TICKET_UNKNOWN")
        return customers.reveal_form_answer(
            s, ticket=ticket, slot=body.slot, reason=body.reason,
            actor=who.member_id or who.username, role=who.role, keyring=svc.keyring,
            now=datetime.now(UTC),
        )
