"""Circles follow their group chat: members join and leave, a dismissed group is archived.

A joiner we know as this customer's holder or family takes that seat; staff keep theirs; anyone
else is a guest (Role.GUEST) who never sees policy data, and the agent hears of it in their
support circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from escalation.notify import queue
from storage.enums import CircleKind, CircleStatus, Role
from storage.errors import NotFound
from storage.models import Circle, CircleMember, Customer, Member, MemberIdentity, User
from storage.scripts import ScriptLibrary


@dataclass(frozen=True)
class Change:
    chat_id: str
    member_id: str
    role: Role | None  # None: left (or was not there)
    changed: bool


def _circle(session: Session, chat_id: str) -> Circle:
    circle = session.scalar(select(Circle).where(Circle.chat_id == chat_id))
    if circle is None:
        raise NotFound(f"no circle with chat_id {chat_id!r}", code="CIRCLE_UNKNOWN")
    return circle


def resolve_member(session: Session, channel: str, channel_user_id: str) -> str:
    """A channel's user id -> our member id (a bound identity), else the id itself."""
    bound = session.scalar(select(MemberIdentity.member_id).where(
        MemberIdentity.channel == channel, MemberIdentity.channel_user_id == channel_user_id))
    return bound or channel_user_id


def _role_for(session: Session, circle: Circle, member: Member) -> Role:
    if circle.customer_id is not None:
        if member.customer_id == circle.customer_id:
            return Role.CUSTOMER
        if member.family_of_id == circle.customer_id:
            return Role.FAMILY
    if member.id == circle.agent_id:
        return Role.AGENT
    if member.is_bot:
        return Role.BOT
    user = session.scalar(select(User).where(User.member_id == member.id))
    if user is not None:
        return Role.SUPERVISOR if user.role.value == "supervisor" else Role.SPECIALIST
    return Role.GUEST


def join(
    session: Session, *, chat_id: str, member_id: str, name: str, scripts: ScriptLibrary,
    now: datetime,
) -> Change:
    circle = _circle(session, chat_id)
    seat = session.scalar(select(CircleMember).where(
        CircleMember.circle_id == circle.id, CircleMember.member_id == member_id))
    if seat is not None:
        return Change(chat_id, member_id, seat.role, changed=False)
    member = session.get(Member, member_id)
    if member is None:
        member = Member(id=member_id, display_name=(name or member_id)[:64], created_at=now)
        session.add(member)
        session.flush()
    role = _role_for(session, circle, member)
    session.add(CircleMember(circle_id=circle.id, member_id=member_id, role=role,
                             authorized=False, joined_at=now))
    if role == Role.GUEST and circle.kind == CircleKind.CORE:
        _tell_the_agent(session, circle, member, scripts, now)
    return Change(chat_id, member_id, role, changed=True)


def _tell_the_agent(session: Session, circle: Circle, member: Member, scripts: ScriptLibrary,
                    now: datetime) -> None:
    support = session.scalar(select(Circle).where(
        Circle.kind == CircleKind.SUPPORT, Circle.agent_id == circle.agent_id,
        Circle.status == CircleStatus.ACTIVE).order_by(Circle.id).limit(1))
    if support is None or circle.agent_id is None:
        return
    customer = session.get(Customer, circle.customer_id) if circle.customer_id else None
    rendered = scripts.render("support.stranger_joined", {
        "speaker_name": member.display_name, "circle_name": circle.name,
        "customer_name": customer.name if customer else scripts.default("honorific"),
    })
    queue(session, support, rendered.text, now=now, script=rendered)


def leave(session: Session, *, chat_id: str, member_id: str) -> Change:
    """The seat goes; the member, their consent and their messages stay on the record."""
    circle = _circle(session, chat_id)
    gone = session.execute(delete(CircleMember).where(
        CircleMember.circle_id == circle.id, CircleMember.member_id == member_id))
    return Change(chat_id, member_id, None, changed=bool(getattr(gone, "rowcount", 0)))


def dismiss(session: Session, *, chat_id: str, now: datetime) -> bool:
    """The group is gone: the circle is archived (kept, read-only, answers nothing)."""
    circle = _circle(session, chat_id)
    if circle.status == CircleStatus.ARCHIVED:
        return False
    circle.status, circle.dissolved_at = CircleStatus.ARCHIVED, now
    return True
