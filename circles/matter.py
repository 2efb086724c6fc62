"""Matter circles (事项圈): one case, its people, relayed messages, a record when dissolved."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.enums import CircleKind, CircleStatus, Role
from storage.errors import BadRequest, Conflict, NotFound
from storage.models import Circle, CircleMember, Matter, Member, Message
from storage.pii import mask

CUSTOMER_SIDE = (Role.CUSTOMER, Role.FAMILY)


@dataclass(frozen=True)
class Specialist:
    """Someone from outside (claims handler, underwriter) joining for this case only."""

    member_id: str
    display_name: str


def create(
    session: Session,
    *,
    parent: Circle,
    ticket_id: int | None,
    name: str,
    customer_side: list[str],
    specialists: list[Specialist],
    bot_member_id: str | None,
    now: datetime,
) -> Matter:
    """A matter circle under `parent` with the customer side, the parent's agent, specialists."""
    if parent.kind != CircleKind.CORE or parent.status != CircleStatus.ACTIVE:
        raise BadRequest("a matter circle hangs under an active core circle",
                         code="MATTER_PARENT_INVALID")
    if parent.agent_id is None:
        raise BadRequest("the core circle has no agent to lead the matter",
                         code="MATTER_NO_AGENT")
    circle = Circle(
        chat_id=f"matter-{uuid.uuid4().hex[:12]}", kind=CircleKind.MATTER, name=name[:128],
        parent_id=parent.id, customer_id=parent.customer_id, agent_id=parent.agent_id,
        channel=parent.channel, created_at=now,
    )
    session.add(circle)
    session.flush()
    roles = {m.member_id: m for m in parent.members}
    seats: dict[str, tuple[Role, bool]] = {}
    for member_id in customer_side:
        seat = roles.get(member_id)
        if seat is None or seat.role not in CUSTOMER_SIDE:
            raise BadRequest(f"{member_id!r} is not on the customer side of the core circle",
                             code="MATTER_MEMBER_INVALID")
        seats[member_id] = (seat.role, seat.authorized)
    seats[parent.agent_id] = (Role.AGENT, True)
    for spec in specialists:
        if session.get(Member, spec.member_id) is None:
            session.add(Member(id=spec.member_id, display_name=spec.display_name, created_at=now))
            session.flush()
        seats.setdefault(spec.member_id, (Role.SPECIALIST, False))
    if bot_member_id and session.get(Member, bot_member_id) is not None:
        seats[bot_member_id] = (Role.BOT, False)
    for member_id, (role, authorized) in seats.items():
        session.add(CircleMember(circle_id=circle.id, member_id=member_id, role=role,
                                 authorized=authorized, joined_at=now))
    matter = Matter(circle_id=circle.id, parent_circle_id=parent.id, ticket_id=ticket_id,
                    created_at=now)
    session.add(matter)
    session.flush()
    return matter


def relay_targets(session: Session, circle: Circle, sender_id: str | None) -> list[CircleMember]:
    """Everyone in a matter circle but the sender and the bot receives a relayed message."""
    if circle.kind != CircleKind.MATTER or sender_id is None:
        return []
    return list(
        session.scalars(
            select(CircleMember)
            .where(CircleMember.circle_id == circle.id, CircleMember.member_id != sender_id,
                   CircleMember.role != Role.BOT)
            .order_by(CircleMember.id)
        )
    )


def transcript(session: Session, circle_id: int) -> list[dict[str, Any]]:
    """What was said in the matter circle (inbound: relayed copies would repeat it), masked."""
    rows = session.scalars(
        select(Message).where(Message.circle_id == circle_id).order_by(Message.created_at,
                                                                      Message.id)
    )
    return [
        {"sender": m.sender_name or m.sender_id or "", "direction": m.direction.value,
         "to": m.recipient_id, "text": mask(m.text), "at": m.created_at.isoformat()}
        for m in rows
        if m.direction.value == "in" or m.recipient_id is None
    ]


def dissolve(session: Session, matter: Matter, *, summary: str, now: datetime) -> Matter:
    """Close the circle; its transcript and summary stay on the record under the parent."""
    circle = session.get(Circle, matter.circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"matter circle {matter.circle_id} is gone", code="CIRCLE_UNKNOWN")
    if circle.status == CircleStatus.DISSOLVED:
        raise Conflict(f"matter circle {circle.chat_id} is already dissolved",
                       code="MATTER_DISSOLVED")
    matter.transcript = transcript(session, circle.id)
    matter.summary = mask(summary)
    matter.dissolved_at = now
    circle.status, circle.dissolved_at = CircleStatus.DISSOLVED, now
    return matter
