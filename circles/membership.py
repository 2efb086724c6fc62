"""Which circle a message belongs to, who is speaking, and what they may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from circles.consent import scopes_of
from storage.enums import CircleStatus, ConsentScope, Role
from storage.errors import NotFound
from storage.models import Circle, CircleMember, Member

HUMAN_STAFF = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SPECIALIST})


@dataclass(frozen=True)
class Speaker:
    """The sender of one message as this circle sees them."""

    member_id: str | None  # None: not a member we know
    display_name: str
    role: Role | None
    authorized: bool  # holder's consent (scope policy, not expired) is on record
    is_holder: bool  # the circle's customer (the policy holder) in person
    is_bot: bool = False
    scopes: frozenset[ConsentScope] = frozenset()  # what the holder's consent covers today

    @property
    def is_staff(self) -> bool:
        return self.role in HUMAN_STAFF

    def may_see(self, scope: ConsentScope) -> bool:
        """The holder sees everything; a family member what the holder's consent covers."""
        if scope == ConsentScope.POLICY:
            return self.may_see_policy_data
        return self.is_holder or (scope in self.scopes and self.role is not None)

    @property
    def may_see_policy_data(self) -> bool:
        """Policy data goes only to the holder or a member the holder authorized."""
        return self.is_holder or (self.authorized and self.role is not None)


def find_circle(session: Session, chat_id: str) -> Circle:
    circle = session.scalar(select(Circle).where(Circle.chat_id == chat_id))
    if circle is None:
        raise NotFound(
            f"no circle with chat_id {chat_id!r}; create the circle before sending its messages",
            code="CIRCLE_UNKNOWN",
        )
    if circle.status != CircleStatus.ACTIVE:
        raise NotFound(f"circle {chat_id!r} has been {circle.status.value}",
                       code="CIRCLE_DISSOLVED")
    return circle


_SHANGHAI = ZoneInfo("Asia/Shanghai")


def resolve_speaker(
    session: Session, circle: Circle, sender_id: str, sender_name: str,
    *, today: date | None = None,
) -> Speaker:
    row = session.execute(
        select(CircleMember, Member)
        .join(Member, Member.id == CircleMember.member_id)
        .where(CircleMember.circle_id == circle.id, CircleMember.member_id == sender_id)
    ).first()
    if row is None:
        bot = session.get(Member, sender_id)
        is_bot = bool(bot and bot.is_bot)
        return Speaker(None, sender_name, None, False, False, is_bot=is_bot)
    cm, member = row
    is_holder = (
        cm.role == Role.CUSTOMER
        and member.customer_id is not None
        and member.customer_id == circle.customer_id
    )
    scopes = _scopes(session, circle, cm, today)
    return Speaker(
        member.id,
        member.display_name or sender_name,
        cm.role,
        ConsentScope.POLICY in scopes,
        is_holder,
        is_bot=member.is_bot,
        scopes=scopes,
    )


def _scopes(
    session: Session, circle: Circle, cm: CircleMember, today: date | None
) -> frozenset[ConsentScope]:
    """The holder's consent (circles/consent.py), valid today, decides.

    `CircleMember.authorized` is the older per-seat flag: still honoured as every scope
    (matter circles copy it to their seats), but a holder's consent is recorded as a Consent row.
    """
    if cm.authorized:
        return frozenset(ConsentScope)
    if circle.customer_id is None or cm.role not in (Role.FAMILY, Role.CUSTOMER):
        return frozenset()
    return frozenset(scopes_of(
        session, holder_id=circle.customer_id, member_id=cm.member_id,
        today=today or datetime.now(UTC).astimezone(_SHANGHAI).date(),
    ))


def holder_member_id(session: Session, circle: Circle) -> str | None:
    """The member who holds the circle customer's policies (for private messages to them)."""
    return session.scalar(
        select(Member.id)
        .join(CircleMember, CircleMember.member_id == Member.id)
        .where(
            CircleMember.circle_id == circle.id,
            CircleMember.role == Role.CUSTOMER,
            Member.customer_id == circle.customer_id,
        )
        .limit(1)
    )
