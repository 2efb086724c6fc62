"""The customer panel beside a ticket: the book's view of the customer, plus who sits in this
circle to be answered privately.

One function, `customer_panel`. What the book of business knows (the masked profile, family with
their consent, policies, claims, open promises, the family coverage view) comes from
circles.customers.customer_view, the same function behind GET /api/v1/customers/{no}; only the
circle's own seats are read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from circles.customers import customer_view
from storage.enums import Role
from storage.models import Circle, CircleMember, Member

CUSTOMER_SIDE = (Role.CUSTOMER, Role.FAMILY)


@dataclass(frozen=True)
class Seat:
    """Someone on the customer's side of this circle (a private reply may go to them)."""

    member_id: str
    name: str
    role: str  # customer | family


@dataclass(frozen=True)
class CustomerPanel:
    view: dict[str, Any] | None  # customer_view(...); None: the circle has no customer
    seats: list[Seat] = field(default_factory=list)


def customer_panel(session: Session, circle: Circle, *, today: date) -> CustomerPanel:
    """The customer of this circle as the book shows them (masked), and the circle's seats."""
    rows = session.execute(
        select(CircleMember.member_id, Member.display_name, CircleMember.role)
        .join(Member, Member.id == CircleMember.member_id)
        .where(CircleMember.circle_id == circle.id, CircleMember.role.in_(CUSTOMER_SIDE))
        .order_by(CircleMember.role, CircleMember.id)
    ).all()
    seats = [Seat(mid, name, role.value) for mid, name, role in rows]
    customer = circle.customer
    view = customer_view(session, customer, today=today) if customer is not None else None
    return CustomerPanel(view=view, seats=seats)
