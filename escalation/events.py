"""Ticket events: the audit trail of every change, some of them recorded at most once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import TicketEvent


def record(
    session: Session,
    ticket_id: int,
    kind: str,
    *,
    now: datetime,
    actor_id: str | None = "bot",
    **data: Any,
) -> TicketEvent:
    event = TicketEvent(ticket_id=ticket_id, kind=kind, actor_id=actor_id, data=data,
                        created_at=now)
    session.add(event)
    return event


def record_once(
    session: Session,
    ticket_id: int,
    kind: str,
    *,
    key: str,
    now: datetime,
    actor_id: str | None = "bot",
    **data: Any,
) -> bool:
    """True if this call recorded the event; False if it was already on record (by anyone).

    The unique index on dedupe_key decides between concurrent scanners; the savepoint keeps
    the caller's transaction usable when this one loses.
    """
    if session.scalar(select(TicketEvent.id).where(TicketEvent.dedupe_key == key)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                TicketEvent(ticket_id=ticket_id, kind=kind, actor_id=actor_id, data=data,
                            created_at=now, dedupe_key=key)
            )
    except IntegrityError:
        return False
    return True
