"""The customer panel beside a ticket: who the family is, what they hold, what is owed them.

One function, `customer_panel`, so the console can later read the book of business through
whatever richer customer view replaces it without touching the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalation.followups import OPEN_STATUSES
from storage.enums import Role
from storage.models import Circle, CircleMember, Claim, FollowUp, Member, Policy

CUSTOMER_SIDE = (Role.CUSTOMER, Role.FAMILY)


@dataclass(frozen=True)
class PanelMember:
    member_id: str
    name: str
    role: str  # customer | family
    authorized: bool  # may see the holder's policy data (holder's consent on record)


@dataclass(frozen=True)
class PanelPolicy:
    policy_no: str
    product: str
    insured_name: str
    status: str
    premium: Decimal
    premium_frequency: str
    sum_assured: Decimal
    next_due_date: date | None


@dataclass(frozen=True)
class PanelClaim:
    claim_no: str
    policy_no: str
    status: str
    amount: Decimal | None
    updated_at: datetime


@dataclass(frozen=True)
class PanelPromise:
    followup_id: int
    ticket_id: int | None
    kind: str
    text: str
    due_at: datetime
    status: str


@dataclass(frozen=True)
class CustomerPanel:
    name: str | None
    honorific: str | None
    family: list[PanelMember] = field(default_factory=list)
    policies: list[PanelPolicy] = field(default_factory=list)
    claims: list[PanelClaim] = field(default_factory=list)
    promises: list[PanelPromise] = field(default_factory=list)


def customer_panel(session: Session, circle: Circle) -> CustomerPanel:
    """Profile, family and who is authorized, policies with next due dates, claims, and the
    promises still open in this circle."""
    customer = circle.customer
    people = session.execute(
        select(CircleMember, Member)
        .join(Member, Member.id == CircleMember.member_id)
        .where(CircleMember.circle_id == circle.id, CircleMember.role.in_(CUSTOMER_SIDE))
        .order_by(CircleMember.role, CircleMember.id)
    ).all()
    family = [
        PanelMember(m.id, m.display_name, cm.role.value,
                    cm.role == Role.CUSTOMER or cm.authorized)
        for cm, m in people
    ]
    policies: list[PanelPolicy] = []
    claims: list[PanelClaim] = []
    if customer is not None:
        rows = list(session.scalars(
            select(Policy).where(Policy.holder_id == customer.id).order_by(Policy.id)
        ))
        policies = [
            PanelPolicy(p.policy_no, p.product, p.insured_name, p.status.value, p.premium,
                        p.premium_frequency, p.sum_assured, p.next_due_date)
            for p in rows
        ]
        numbers = {p.id: p.policy_no for p in rows}
        claims = [
            PanelClaim(c.claim_no, numbers[c.policy_id], c.status.value, c.amount, c.updated_at)
            for c in session.scalars(
                select(Claim).where(Claim.policy_id.in_(numbers)).order_by(Claim.id.desc())
            )
        ]
    promises = [
        PanelPromise(f.id, f.ticket_id, f.kind.value, f.text, f.due_at, f.status.value)
        for f in session.scalars(
            select(FollowUp)
            .where(FollowUp.circle_id == circle.id, FollowUp.status.in_(OPEN_STATUSES))
            .order_by(FollowUp.due_at)
        )
    ]
    return CustomerPanel(
        name=customer.name if customer else None,
        honorific=customer.honorific if customer else None,
        family=family, policies=policies, claims=claims, promises=promises,
    )
