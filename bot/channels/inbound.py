"""Who is writing and where their replies go: identity binding, media records, delivery marks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from storage import wakeups
from storage.enums import CircleKind, CircleStatus, Direction, Role
from storage.models import Circle, CircleMember, Member, MemberIdentity, Message
from storage.pii import mask

RETURNED, QUEUED = "returned", "queued"


@dataclass(frozen=True)
class Bound:
    """A sender we know: the member and the core circle their messages belong to."""

    member_id: str
    display_name: str
    chat_id: str
    circle_id: int
    agent_id: str | None


def resolve_sender(s: Session, channels: Sequence[str], user_id: str) -> Bound | None:
    """OpenID/external id -> member -> the core circle where they are the customer (else any)."""
    member_id = s.scalar(
        select(MemberIdentity.member_id).where(
            MemberIdentity.channel.in_(channels), MemberIdentity.channel_user_id == user_id
        ).limit(1)
    )
    if member_id is None:
        return None
    row = s.execute(
        select(Member.display_name, Circle.chat_id, Circle.id, Circle.agent_id)
        .join(CircleMember, CircleMember.member_id == Member.id)
        .join(Circle, Circle.id == CircleMember.circle_id)
        .where(
            Member.id == member_id,
            Circle.kind == CircleKind.CORE,
            Circle.status == CircleStatus.ACTIVE,
        )
        .order_by(case((CircleMember.role == Role.CUSTOMER, 0), else_=1), Circle.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return Bound(member_id, row[0], row[1], row[2], row[3])


def record_media(
    s: Session, *, channel: str, msg_id: str, bound: Bound, kind: str, detail: str,
    reply: str, script_id: str, script_version: int, now: datetime,
) -> str:
    """Persist a non-text message and its acknowledgement once; a retry gets the same text."""
    prior = s.scalar(
        select(Message.id).where(
            Message.channel == channel, Message.channel_msg_id == msg_id,
            Message.direction == Direction.IN,
        )
    )
    if prior is not None:
        first = s.scalar(select(Message.text).where(Message.reply_to_id == prior).limit(1))
        return first if first is not None else reply
    row = Message(
        circle_id=bound.circle_id, direction=Direction.IN, channel=channel,
        channel_msg_id=msg_id, sender_id=bound.member_id, sender_name=bound.display_name[:64],
        text=mask(f"[{kind}] {detail}".strip()), status="received", created_at=now,
    )
    s.add(row)
    s.flush()  # the unique (channel, channel_msg_id) key speaks here
    s.add(Message(
        circle_id=bound.circle_id, direction=Direction.OUT, channel=channel, sender_name="bot",
        recipient_id=bound.member_id, reply_to_id=row.id, text=reply, script_id=script_id,
        script_version=script_version, status=RETURNED, created_at=now,
    ))
    return reply


def queue_replies(s: Session, message_id: int, now: datetime, *, except_to: str | None = None,
                  only_others: bool = False) -> int:
    """Hand replies still marked `returned` to the outbox (late path, or for other members)."""
    stmt = update(Message).where(
        Message.reply_to_id == message_id,
        Message.direction == Direction.OUT,
        Message.status == RETURNED,
    )
    if only_others:
        stmt = stmt.where(Message.recipient_id.is_not(None), Message.recipient_id != except_to)
    result = s.execute(stmt.values(status=QUEUED, next_attempt_at=now))
    queued = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if queued:
        wakeups.announce(s, now)
    return queued


def handed_to_outbox(s: Session, message_id: int, member_id: str) -> bool:
    """True when the sender's own replies went (or go) through the outbox, not passively.

    Replies for other members, and notices to other circles (a new ticket told to the
    support group), always go through the outbox and say nothing about this."""
    circle = select(Message.circle_id).where(Message.id == message_id).scalar_subquery()
    return (
        s.scalar(
            select(Message.id).where(
                Message.reply_to_id == message_id,
                Message.direction == Direction.OUT,
                Message.status != RETURNED,
                Message.circle_id == circle,
                Message.recipient_id.is_(None) | (Message.recipient_id == member_id),
            ).limit(1)
        )
        is not None
    )
