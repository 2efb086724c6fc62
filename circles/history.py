"""A circle's message history as people read it, and the bot's held answers in it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.enums import Delivery, Direction
from storage.errors import Conflict, NotFound
from storage.models import Circle, Message


def recent_messages(session: Session, circle: Circle, limit: int,
                    after_id: int | None = None) -> list[Message]:
    """The circle's last `limit` messages, newest first (after `after_id` if given)."""
    q = (
        select(Message)
        .where(Message.circle_id == circle.id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    if after_id is not None:
        q = q.where(Message.id > after_id)
    return list(session.scalars(q))


def latest_id(session: Session, circle: Circle) -> int:
    """The newest message id in the circle (0 if none): a cheap change probe."""
    found = session.scalar(
        select(Message.id).where(Message.circle_id == circle.id)
        .order_by(Message.id.desc()).limit(1)
    )
    return found or 0


def latest_inbound(session: Session, circle_ids: set[int]) -> dict[int, Message]:
    """Each circle's newest message from a person (what the family said last)."""
    if not circle_ids:
        return {}
    newest = (
        select(func.max(Message.id))
        .where(Message.circle_id.in_(circle_ids), Message.direction == Direction.IN)
        .group_by(Message.circle_id)
    )
    rows = session.scalars(select(Message).where(Message.id.in_(newest)))
    return {m.circle_id: m for m in rows if m.circle_id is not None}


def said(m: Message, now: datetime) -> bool:
    """Has the group heard this message (or will it, whatever happens next)?"""
    if m.direction == Direction.IN:
        return True
    if m.status == Delivery.CANCELLED:
        return False
    if m.status == Delivery.HELD:
        return m.next_attempt_at is not None and m.next_attempt_at <= now
    return True


def _held(session: Session, circle: Circle, message_id: int) -> Message:
    row = session.get(Message, message_id)
    if row is None or row.circle_id != circle.id or row.direction != Direction.OUT:
        raise NotFound(f"no message {message_id} in circle {circle.chat_id}",
                       code="MESSAGE_NOT_FOUND")
    if row.status != Delivery.HELD:
        raise Conflict(f"message {message_id} is {row.status}, no longer held",
                       code="MESSAGE_NOT_HELD")
    return row


def send_held_now(session: Session, circle: Circle, message_id: int, *,
                  now: datetime) -> Message:
    """The agent lets the bot's held answer go now instead of waiting out the grace window."""
    row = _held(session, circle, message_id)
    row.status, row.next_attempt_at = Delivery.QUEUED, now
    return row


def cancel_held(session: Session, circle: Circle, message_id: int) -> Message:
    """The agent will answer this one themselves: the bot's held answer is never sent."""
    row = _held(session, circle, message_id)
    row.status = Delivery.CANCELLED
    return row
