"""Queued outbound messages: what escalation says goes to the outbox of `messages` rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from circles.naming import address
from storage import wakeups
from storage.enums import CircleKind, CircleStatus, Direction
from storage.models import Circle, Member, Message, Ticket
from storage.pii import mask
from storage.scripts import Rendered, ScriptLibrary

SHANGHAI = ZoneInfo("Asia/Shanghai")
BOT_SENDER = "bot"
EXCERPT_CHARS = 60


@dataclass(frozen=True)
class Notice:
    """One message for a circle, rendered but not yet persisted (the pipeline persists its own)."""

    circle: Circle
    rendered: Rendered
    to: str | None = None  # None: the whole circle; a member id: privately to them



def queue(
    session: Session,
    circle: Circle,
    text: str,
    *,
    now: datetime,
    to: str | None = None,
    sender_id: str | None = None,
    sender_name: str = BOT_SENDER,
    script: Rendered | None = None,
    reply_to_id: int | None = None,
    flush: bool = True,
) -> Message:
    """Persist an outbound message as `queued`; the outbound dispatcher delivers it.

    `flush=False` leaves the INSERT to the commit, where the ORM sends a batch of them in one
    statement (the scan's batch delivery); the returned row then has no id yet."""
    row = Message(
        circle_id=circle.id,
        direction=Direction.OUT,
        channel=circle.channel,
        sender_id=sender_id,
        sender_name=sender_name[:64],
        recipient_id=to,
        reply_to_id=reply_to_id,
        text=mask(text),
        script_id=script.script_id if script else None,
        script_version=script.version if script else None,
        status="queued",
        created_at=now,
    )
    session.add(row)
    if flush:
        session.flush()
    wakeups.announce(session, now)  # the dispatcher sends it as soon as this commits
    return row


def queue_notice(session: Session, notice: Notice, *, now: datetime) -> Message:
    return queue(session, notice.circle, notice.rendered.text, now=now, to=notice.to,
                 script=notice.rendered)


def support_circle_of(session: Session, agent_id: str | None) -> Circle | None:
    """The agent's support circle (agent + supervisor + bot), if there is one."""
    if agent_id is None:
        return None
    return session.scalar(
        select(Circle).where(
            Circle.kind == CircleKind.SUPPORT,
            Circle.agent_id == agent_id,
            Circle.status == CircleStatus.ACTIVE,
        ).limit(1)
    )


def display_name(session: Session, member_id: str | None, default: str = "") -> str:
    member = session.get(Member, member_id) if member_id else None
    return member.display_name if member else default


def ticket_variables(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, circle: Circle, **extra: Any
) -> dict[str, Any]:
    """Everything a support, follow-up or rating script may ask for about one ticket."""
    customer = circle.customer
    agent_id = ticket.assignee_id or circle.agent_id
    intent = scripts.intents.get(ticket.intent or "")
    return {
        "ticket_id": ticket.id,
        "priority_label": scripts.label("priority", ticket.priority),
        "circle_name": circle.name,
        "customer_name": customer.name if customer else circle.name,
        # the person the ticket is about, by their profile (the wife is not 王先生)
        "honorific": address(session, ticket.member_id)
        or (customer.honorific if customer else scripts.default("honorific")),
        "agent_name": display_name(session, agent_id, scripts.default("agent_name")),
        "intent_zh": intent.zh if intent else scripts.label("ticket_reason", ticket.reason),
        "excerpt": mask(ticket.summary)[:EXCERPT_CHARS],
        **extra,
    }


DELIVERY_UNKNOWN_SCRIPT = "support.delivery_unknown"
DELIVERY_FAILED_SCRIPT = "support.delivery_failed"


def tell_support(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, circle: Circle, message: Message,
    *, reason: str, now: datetime,
) -> Message | None:
    """An outbound message could not be (or may not have been) delivered: the agent's support
    circle hears which circle, what was said (masked excerpt) and the ticket to work from."""
    support = support_circle_of(session, ticket.assignee_id or circle.agent_id)
    support = support or support_circle_of(session, circle.agent_id)
    if support is None:
        return None
    variables = ticket_variables(session, scripts, ticket, circle,
                                 excerpt=mask(message.text)[:EXCERPT_CHARS],
                                 problem=scripts.label("delivery_problem", reason))
    script = DELIVERY_UNKNOWN_SCRIPT if reason == "delivery_unknown" else DELIVERY_FAILED_SCRIPT
    rendered = scripts.render(script, variables)
    return queue(session, support, rendered.text, now=now, script=rendered)
