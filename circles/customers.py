"""The customer in one place: who may look, the profile (masked), family and consent, policies,
claims, open matters, messages, ratings and the family coverage view (保单检视).

Plain data out (dicts of JSON-ready values) so the API and the console pages render the same.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from circles.consent import active_consents
from storage.crypto import Keyring
from storage.enums import (
    CircleKind,
    FollowUpStatus,
    ProductKind,
    TicketStatus,
    UserRole,
)
from storage.errors import BadRequest, Forbidden, NotFound
from storage.models import (
    AuditEvent,
    Circle,
    Claim,
    Customer,
    FollowUp,
    Member,
    Message,
    Policy,
    Ticket,
)

# What every adult should have, for the gaps in the coverage view; children: no life cover.
CORE_COVER = (ProductKind.CRITICAL_ILLNESS, ProductKind.MEDICAL, ProductKind.ACCIDENT,
              ProductKind.LIFE)
CHILD_COVER = (ProductKind.CRITICAL_ILLNESS, ProductKind.MEDICAL, ProductKind.ACCIDENT)
REVEALABLE = ("phone", "id_number")
REVEAL_KIND = "pii_reveal"


def _agents_of(session: Session, role: UserRole, member_id: str | None) -> set[str] | None:
    """The agents whose customers this login may see; None: everyone (admin)."""
    if role == UserRole.ADMIN:
        return None
    if member_id is None:
        return set()
    if role == UserRole.SUPERVISOR:
        team = set(session.scalars(select(Member.id).where(Member.supervisor_id == member_id)))
        return team | {member_id}
    return {member_id}


def _visible(q: Select[Any], agents: set[str] | None) -> Select[Any]:
    if agents is None:
        return q
    circles = select(Circle.customer_id).where(Circle.agent_id.in_(agents),
                                                 Circle.customer_id.is_not(None))
    return q.where(or_(Customer.agent_id.in_(agents), Customer.id.in_(circles)))


def find_customer(
    session: Session, *, customer_no: str, role: UserRole, member_id: str | None
) -> Customer:
    """The customer if this login may see them: the agent of their circles (or their book),
    that agent's supervisor, an admin. Unknown and forbidden read alike (no probing)."""
    q = _visible(select(Customer).where(Customer.customer_no == customer_no),
                 _agents_of(session, role, member_id))
    customer: Customer | None = session.scalar(q)
    if customer is None:
        raise NotFound(f"no customer {customer_no!r} in your book", code="CUSTOMER_UNKNOWN")
    return customer


def search(
    session: Session, *, q: str, role: UserRole, member_id: str | None, page: int = 1,
    per_page: int = 20,
) -> dict[str, Any]:
    """By name (part of it), phone tail (the last 4+ digits) or policy number; paginated."""
    q = q.strip()
    base = _visible(select(Customer).where(Customer.customer_no.is_not(None)),
                    _agents_of(session, role, member_id))
    if q:
        conds = [Customer.name.contains(q, autoescape=True), Customer.customer_no == q]
        if q.isdigit() and len(q) >= 4:
            conds.append(Customer.phone_masked.endswith(q[-4:], autoescape=True))
        conds.append(Customer.id.in_(select(Policy.holder_id).where(
            Policy.policy_no.startswith(q.upper(), autoescape=True))))
        base = base.where(or_(*conds))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(Customer.customer_no)
                           .offset((page - 1) * per_page).limit(per_page))
    return {"total": total, "page": page, "per_page": per_page,
            "items": [_brief(c) for c in rows]}


def _brief(c: Customer) -> dict[str, Any]:
    return {"customer_no": c.customer_no, "name": c.name, "honorific": c.honorific,
            "phone": c.phone_masked, "agent": c.agent_id}


def _money(v: Decimal | None) -> str | None:
    return None if v is None else f"{v:.2f}"


def _day(v: date | None) -> str | None:
    return None if v is None else v.isoformat()


def _at(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def customer_view(session: Session, customer: Customer, *, today: date) -> dict[str, Any]:
    """Everything the agent needs before calling the family; personal numbers masked."""
    family = list(session.scalars(select(Member).where(Member.family_of_id == customer.id)
                                  .order_by(Member.id)))
    consents = active_consents(session, holder_id=customer.id, today=today)
    policies = list(session.scalars(select(Policy).where(Policy.holder_id == customer.id)
                                    .order_by(Policy.policy_no)))
    circle_ids = list(session.scalars(select(Circle.id).where(Circle.customer_id == customer.id)))
    claims = session.execute(select(Claim, Policy.policy_no).join(Policy).where(
        Policy.holder_id == customer.id).order_by(Claim.submitted_at.desc())).all()
    tickets = list(session.scalars(select(Ticket).where(Ticket.circle_id.in_(circle_ids))
                                   .order_by(Ticket.created_at.desc())))
    followups = session.scalars(select(FollowUp).where(
        FollowUp.circle_id.in_(circle_ids), FollowUp.status == FollowUpStatus.PENDING)
        .order_by(FollowUp.due_at))
    core = select(Circle.id).where(Circle.customer_id == customer.id,
                                   Circle.kind == CircleKind.CORE)
    messages = session.scalars(select(Message).where(Message.circle_id.in_(core))
                               .order_by(Message.created_at.desc(), Message.id.desc()).limit(20))
    return {
        "profile": {**_brief(customer), "gender": customer.gender,
                    "birth_date": _day(customer.birth_date),
                    "id_number": customer.id_number_masked},
        "family": [{
            "member_id": m.id, "name": m.display_name, "relation": m.relation,
            "gender": m.gender, "birth_date": _day(m.birth_date), "phone": m.phone_masked,
            "consent": [{"scopes": c.scopes.split(","), "until": _day(c.until),
                         "source": c.source, "granted_at": _at(c.granted_at)}
                        for c in consents if c.member_id == m.id],
        } for m in family],
        "policies": [{
            "policy_no": p.policy_no, "product": p.product, "kind": p.kind,
            "insured": p.insured_name, "status": p.status.value,
            "sum_assured": _money(p.sum_assured), "premium": _money(p.premium),
            "frequency": p.premium_frequency, "payment_years": p.payment_years,
            "effective_date": _day(p.effective_date), "next_due_date": _day(p.next_due_date),
            "cash_value": _money(p.cash_value),
            "survival_benefit_date": _day(p.survival_benefit_date),
            "survival_benefit_amount": _money(p.survival_benefit_amount),
            "beneficiaries": p.beneficiaries,
        } for p in policies],
        "claims": [{"claim_no": c.claim_no, "policy_no": no, "status": c.status.value,
                    "amount": _money(c.amount), "submitted_at": _at(c.submitted_at),
                    "updated_at": _at(c.updated_at), "note": c.note} for c, no in claims],
        "open_tickets": [{"id": t.id, "intent": t.intent, "reason": t.reason,
                          "status": t.status.value, "priority": t.priority.value,
                          "resolve_due": _at(t.resolve_due)}
                         for t in tickets if t.status != TicketStatus.RESOLVED],
        "followups": [{"id": f.id, "due_at": _at(f.due_at), "text": f.text,
                       "kind": f.kind.value} for f in followups],
        "last_messages": [{"at": _at(m.created_at), "direction": m.direction.value,
                           "sender": m.sender_name, "to": m.recipient_id, "text": m.text}
                          for m in messages],
        "ratings": [{"ticket_id": t.id, "rating": t.rating, "rated_at": _at(t.rated_at)}
                    for t in tickets if t.rating is not None],
        "coverage": coverage(customer, family, policies, today=today),
    }


def coverage(customer: Customer, family: list[Member], policies: list[Policy], *,
             today: date) -> dict[str, Any]:
    """Who is insured for what (in-force policies only), each person's gaps, and the kinds
    nobody in the family has."""
    live = [p for p in policies if p.status.value in ("active", "grace")]
    people = [("customer", customer.customer_no, customer.name, customer.birth_date, None)] + [
        ("family", m.id, m.display_name, m.birth_date, m.relation) for m in family]
    rows = []
    for side, key, name, born, relation in people:
        mine = [p for p in live if (p.insured_customer_id == customer.id if side == "customer"
                                    else p.insured_member_id == key)
                or (side == "customer" and p.insured_customer_id is None
                    and p.insured_member_id is None and p.insured_name == name)]
        kinds = sorted({p.kind for p in mine if p.kind})
        child = born is not None and (today - born).days < 18 * 365
        wanted = CHILD_COVER if child else CORE_COVER
        rows.append({"who": key, "name": name, "relation": relation or "self",
                     "covered": {k: [p.policy_no for p in mine if p.kind == k] for k in kinds},
                     "gaps": [k.value for k in wanted if k.value not in kinds]})
    held = {p.kind for p in live if p.kind}
    return {"people": rows,
            "family_gaps": [k.value for k in ProductKind if k.value not in held]}


def reveal(
    session: Session, *, customer: Customer, field: str, member_id: str | None, reason: str,
    actor: str, role: UserRole, keyring: Keyring, now: datetime,
) -> dict[str, Any]:
    """The agent of one of the customer's circles sees one number in full; audited."""
    if role != UserRole.AGENT or not (customer.agent_id == actor or session.scalar(
            select(Circle.id).where(Circle.customer_id == customer.id,
                                    Circle.agent_id == actor).limit(1))):
        raise Forbidden("only the customer's own agent may reveal a number",
                        code="REVEAL_FORBIDDEN")
    if field not in REVEALABLE:
        raise BadRequest(f"field is one of {', '.join(REVEALABLE)}", code="REVEAL_FIELD")
    if len(reason.strip()) < 2:
        raise BadRequest("say why you need the number (reason)", code="REVEAL_REASON")
    sealed: str | None
    if member_id is None:
        sealed = customer.phone_sealed if field == "phone" else customer.id_number_sealed
    else:
        member = session.get(Member, member_id)
        if member is None or member.family_of_id != customer.id or field != "phone":
            raise BadRequest("member_id names one of this customer's family (phone only)",
                             code="REVEAL_MEMBER")
        sealed = member.phone_sealed
    if sealed is None:
        raise NotFound(f"no {field} on record", code="REVEAL_EMPTY")
    session.add(AuditEvent(kind=REVEAL_KIND, actor_id=actor, subject=customer.customer_no,
                           data={"field": field, "member_id": member_id,
                                 "reason": reason.strip()[:200]}, created_at=now))
    return {"customer_no": customer.customer_no, "member_id": member_id, "field": field,
            "value": keyring.open(sealed)}


def list_reveals(session: Session, *, role: UserRole, member_id: str | None,
                 limit: int = 200) -> list[dict[str, Any]]:
    """Supervisors: their team's reveals; admins: everyone's; newest first."""
    if role == UserRole.AGENT:
        raise Forbidden("reveals are listed for supervisors", code="ROLE_FORBIDDEN")
    q = select(AuditEvent).where(AuditEvent.kind == REVEAL_KIND)
    agents = _agents_of(session, role, member_id)
    if agents is not None:
        q = q.where(AuditEvent.actor_id.in_(agents))
    rows = session.scalars(q.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
                           .limit(limit))
    return [{"at": _at(e.created_at), "agent": e.actor_id, "customer_no": e.subject, **e.data}
            for e in rows]



def reveal_form_answer(
    session: Session, *, ticket: Ticket, slot: str, reason: str, actor: str, role: UserRole,
    keyring: Keyring, now: datetime,
) -> dict[str, Any]:
    """A number the customer gave in a form (a new phone, a new card), in full, for the agent
    who carries out the change: the circle's agent or the ticket's assignee; audited."""
    circle = session.get(Circle, ticket.circle_id)
    if role != UserRole.AGENT or actor not in (ticket.assignee_id,
                                               circle.agent_id if circle else None):
        raise Forbidden("only the circle's agent or the ticket's assignee may reveal it",
                        code="REVEAL_FORBIDDEN")
    if len(reason.strip()) < 2:
        raise BadRequest("say why you need the number (reason)", code="REVEAL_REASON")
    sealed = (ticket.context or {}).get("sealed") or {}
    token = sealed.get(slot) if isinstance(sealed, dict) else None
    if not isinstance(token, str):
        raise NotFound(f"no sealed answer {slot!r} on ticket {ticket.id}", code="REVEAL_EMPTY")
    session.add(AuditEvent(kind=REVEAL_KIND, actor_id=actor, circle_id=ticket.circle_id,
                           subject=f"ticket:{ticket.id}",
                           data={"field": slot, "member_id": ticket.member_id,
                                 "reason": reason.strip()[:200]}, created_at=now))
    return {"ticket_id": ticket.id, "field": slot, "value": keyring.open(token)}
