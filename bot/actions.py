"""The five things the bot can do with an understood message: answer, query, dialog, escalate,
stay silent. Each takes the turn and returns the replies; persistence stays in the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from bot import format as fmt
from bot import handoff
from bot.messages import Reply
from bot.turn import Turn
from circles.membership import holder_member_id
from escalation.notify import support_circle_of
from escalation.risk import Risk
from escalation.tickets import handoff_notices, open_ticket
from storage.enums import Priority, TicketStatus
from storage.models import AuditEvent, Circle, Claim, FollowUp, Policy, Ticket
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


# -- query: the customer's own data, privately -----------------------------------------------
def _policy_rows(turn: Turn) -> list[Policy]:
    return list(
        turn.session.scalars(
            select(Policy).where(Policy.holder_id == turn.circle.customer_id).order_by(Policy.id)
        )
    )


def _lines_policy_list(turn: Turn) -> list[dict[str, str]]:
    return [
        {
            "product": p.product,
            "policy_no": p.policy_no,
            "insured_name": p.insured_name,
            "sum_assured": fmt.money(p.sum_assured),
            "policy_status": turn.label("policy_status", p.status),
        }
        for p in _policy_rows(turn)
    ]


def _lines_premium_due(turn: Turn) -> list[dict[str, str]]:
    return [
        {
            "product": p.product,
            "policy_no": p.policy_no,
            "premium": fmt.money(p.premium),
            "premium_frequency": turn.label("premium_frequency", p.premium_frequency),
            "due_date": fmt.day(p.next_due_date),
        }
        for p in _policy_rows(turn)
        if p.next_due_date is not None
    ]


def _lines_cash_value(turn: Turn) -> list[dict[str, str]]:
    return [
        {
            "product": p.product,
            "policy_no": p.policy_no,
            "cash_value": fmt.money(p.cash_value),
            "cash_value_date": fmt.day(p.cash_value_date),
        }
        for p in _policy_rows(turn)
        if p.cash_value is not None
    ]


def _lines_claim_status(turn: Turn) -> list[dict[str, str]]:
    rows = turn.session.execute(
        select(Claim, Policy)
        .join(Policy, Policy.id == Claim.policy_id)
        .where(Policy.holder_id == turn.circle.customer_id)
        .order_by(Claim.submitted_at.desc())
    )
    return [
        {
            "claim_no": c.claim_no,
            "product": p.product,
            "claim_status": turn.label("claim_status", c.status),
            "updated_date": fmt.day(c.updated_at.date()),
        }
        for c, p in rows
    ]


def _lines_followups(turn: Turn) -> list[dict[str, str]]:
    tickets = turn.session.scalars(
        select(Ticket).where(
            Ticket.circle_id == turn.circle.id, Ticket.status != TicketStatus.RESOLVED
        )
    )
    lines = [
        {
            "matter": turn.scripts.intents[t.intent].zh
            if t.intent in turn.scripts.intents
            else t.reason,
            "progress": turn.label("ticket_status", t.status),
            "due_time": fmt.moment(t.resolve_due or t.first_response_due),
        }
        for t in tickets
    ]
    pending = turn.session.scalars(
        select(FollowUp).where(FollowUp.circle_id == turn.circle.id, FollowUp.status == "pending")
    )
    lines += [
        {"matter": f.text[:30], "progress": turn.label("ticket_status", "claimed"),
         "due_time": fmt.moment(f.due_at)}
        for f in pending
    ]
    return lines


QUERIES: dict[str, Callable[[Turn], list[dict[str, str]]]] = {
    "policy.list": _lines_policy_list,
    "premium.due": _lines_premium_due,
    "policy.cash_value": _lines_cash_value,
    "claim.status": _lines_claim_status,
    "followup.check": _lines_followups,
}


def query(turn: Turn) -> Result:
    intent, speaker = turn.parse.intent, turn.speaker
    if not speaker.may_see_policy_data or speaker.member_id is None:
        return _refuse_disclosure(turn)
    lines = QUERIES[intent](turn)
    to = speaker.member_id
    if not lines:
        private = turn.say(f"{intent}.no_data", to=to)
    else:
        text = "\n".join(
            turn.scripts.render(f"{intent}.line", turn.variables(**v)).text for v in lines
        )
        private = turn.say(f"{intent}.private", to=to, lines=text, count=len(lines))
    if turn.inbound.private:
        return Result([private])
    return Result([turn.say(f"{intent}.group_note"), private])


def _refuse_disclosure(turn: Turn) -> Result:
    """Kind refusal that discloses nothing; the attempt is recorded and the holder asked."""
    turn.session.add(
        AuditEvent(
            kind="policy_data_refused",
            actor_id=turn.speaker.member_id or turn.inbound.sender_id,
            circle_id=turn.circle.id,
            subject=turn.parse.intent,
            data={"message_id": turn.row.id},
            created_at=turn.now,
        )
    )
    replies = [turn.say(f"{turn.parse.intent}.not_authorized")]
    holder = holder_member_id(turn.session, turn.circle)
    if holder and holder != turn.speaker.member_id:
        replies.append(turn.say("privacy.holder_authorize_prompt", to=holder))
    return Result(replies)


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


# -- dialog: a short form; until the rasa-sdk forms land, one question then a ticket ---------
def dialog(turn: Turn) -> Result:
    intent = turn.parse.intent
    remember(turn, {"kind": "dialog", "intent": intent})
    return Result([turn.say(f"{intent}.reply")])


def continue_dialog(turn: Turn, intent: str) -> Result:
    """The member answered the form's question: hand the request to the agent with it."""
    forget(turn)
    result = escalate(turn, reason="form", holding=f"{intent}.done",
                      slots={"answer": turn.row.text})
    if result.ticket is not None:
        result.ticket.intent = intent
    return result


# -- pending questions (dialog state in the state store) ---------------------------------------
def remember(turn: Turn, value: dict[str, str]) -> None:
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
        return None
    return value if isinstance(value, dict) else None
