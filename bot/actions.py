"""What the bot does with an understood message: answer, escalate or stay silent (query and
dialog live in bot/queries.py and bot/forms.py), and the member's pending question.
Each takes the turn and returns the replies; persistence stays in the pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from bot import handoff
from bot.messages import Reply
from bot.turn import Turn
from dialogs.domain import FORMS
from escalation.notify import support_circle_of
from escalation.risk import Risk
from escalation.tickets import handoff_notices, open_ticket
from storage.enums import Delivery, Direction, Priority
from storage.models import Circle, Message, Ticket
from storage.state import StateUnavailable

log = logging.getLogger(__name__)

URGENT_PRIORITY = {"complaint": Priority.URGENT, "claim.report": Priority.HIGH}


@dataclass
class Result:
    replies: list[Reply] = field(default_factory=list)
    ticket: Ticket | None = None
    notices: list[tuple[Circle, Reply]] = field(default_factory=list)
    held_until: datetime | None = None  # said only if no human answers first


# -- answer / silent -----------------------------------------------------------------------
def answer(turn: Turn) -> Result:
    return Result([turn.say(f"{turn.parse.intent}.reply")])


def silent_but_addressed(turn: Turn) -> Result:
    """Thanks or chatter said *to* the bot gets a short word back; otherwise nothing."""
    return Result([turn.say(f"{turn.parse.intent}.reply")])


# -- escalate: a holding reply, a ticket, a notice to the support circle ------------------------
def escalate(
    turn: Turn,
    *,
    reason: str = "intent",
    holding: str | None = None,
    risk: Risk | None = None,
    slots: dict[str, str] | None = None,
) -> Result:
    """Every route to a human ends here: complaint risk raises the priority, and an urgent
    ticket alerts the supervisor at once through the support circle."""
    intent = turn.parse.intent
    risk = risk if risk is not None else handoff.complaint_risk(turn)
    ticket = open_ticket(
        session=turn.session,
        circle=turn.circle,
        member_id=turn.speaker.member_id,
        source_message_id=turn.row.id,
        intent=intent,
        reason=reason,
        summary=turn.row.text[:200],
        now=turn.now,
        priority=URGENT_PRIORITY.get(intent, Priority.NORMAL),
        context={"confidence": round(turn.parse.confidence, 3)},
        policy=turn.settings.escalation_policy(),
        scripts=turn.scripts,
        slots=slots,
        risk=risk,
    )
    result = Result([turn.say(holding or f"{intent}.holding")], ticket)
    for notice in handoff_notices(turn.session, turn.scripts, ticket, turn.circle):
        reply = Reply(notice.rendered.text, notice.to, notice.rendered.script_id,
                      notice.rendered.version)
        result.notices.append((notice.circle, reply))
    return result


def support_circle(turn: Turn) -> Circle | None:
    return support_circle_of(turn.session, turn.circle.agent_id)


# -- pending questions (dialog state in the state store) ---------------------------------------
def remember(turn: Turn, value: dict[str, Any]) -> None:
    try:
        turn.state.set_json(turn.pending_key, value, turn.settings.dialog_ttl_seconds)
    except StateUnavailable:
        log.warning("state store unavailable: pending question not remembered")


def forget(turn: Turn) -> None:
    try:
        turn.state.delete(turn.pending_key)
    except StateUnavailable:
        log.warning("state store unavailable: pending question not cleared")


def pending(turn: Turn) -> dict[str, str] | None:
    try:
        value = turn.state.get_json(turn.pending_key)
    except StateUnavailable:
        return _lost_dialog(turn, "unavailable")
    return value if isinstance(value, dict) else _lost_dialog(turn, "expired")


def _lost_dialog(turn: Turn, why: str) -> dict[str, str] | None:
    """Redis is an accelerator, not the record: if the bot's last word to this member (within
    the dialog TTL) was a form's question, the form is still on, though its state is gone."""
    if turn.speaker.member_id is None:
        return None
    asked = aliased(Message)
    scripts = turn.session.scalars(
        select(Message.script_id)
        .join(asked, asked.id == Message.reply_to_id)
        .where(
            Message.circle_id == turn.circle.id,
            Message.direction == Direction.OUT,
            Message.status != Delivery.CANCELLED,
            asked.sender_id == turn.speaker.member_id,
            asked.id != turn.row.id,
            Message.created_at >= turn.now - timedelta(seconds=turn.settings.dialog_ttl_seconds),
        )
        .order_by(Message.id.desc())
        .limit(20)
    )
    resumed = False  # past a form.resume, the off-form answer before it is skipped
    for script_id in scripts:
        intent, _, key = (script_id or "").rpartition(".")
        if intent in FORMS and (key == "reply" or key.startswith("ask_")):
            return {"kind": "dialog", "intent": intent, "lost": why}
        if script_id == "form.resume":
            resumed = True
        elif script_id != "form.example" and not resumed:
            return None
    return None
