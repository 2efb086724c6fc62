"""The five things the bot can do with an understood message: answer, query, dialog, escalate,
stay silent. Each takes the turn and returns the replies; persistence stays in the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from bot import format as fmt
from bot import handoff
from bot.messages import Reply
from bot.turn import Turn
from circles.membership import holder_member_id
from dialogs.domain import FORMS
from dialogs.ports import SqlPolicyBook
from dialogs.runner import FormRunner, FormState, FormTurn, Status, UserMessage
from dialogs.validators import is_cancel
from escalation import followups
from escalation.notify import support_circle_of
from escalation.risk import Risk
from escalation.tickets import handoff_notices, open_ticket
from storage.enums import Delivery, Direction, FollowUpKind, Priority, TicketStatus
from storage.models import AuditEvent, Circle, Claim, FollowUp, Message, Policy, Ticket
from storage.pii import mask
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


# -- dialog: a short form (dialogs/), driven in-process; its state lives in the state store ---
def dialog(turn: Turn) -> Result:
    """Open the form for this intent; the opening message may already answer a slot."""
    return _form_result(turn, _form_runner(turn).start(turn.parse.intent, _form_message(turn)))


def continue_dialog(turn: Turn, pending: dict[str, str]) -> Result:
    """The member who started the form spoke again: an answer, a cancel, or chatter."""
    intent = pending["intent"]
    if pending.get("lost") == "unavailable":
        # The state store is down: nothing can be collected, so the agent takes it from here.
        return _form_handoff(turn, intent, {"answer": turn.row.text})
    state = None if pending.get("lost") else FormState.from_json(pending)
    if state is None:
        # The state was lost (a Redis restart, an eviction): say so, and start over politely.
        result = _form_result(turn, _form_runner(turn).start(intent, _form_message(turn)))
        result.replies.insert(0, turn.say("form.restart"))
        return result
    return _form_result(turn, _form_runner(turn).advance(state, _form_message(turn)))


def cancels_form(turn: Turn) -> bool:
    return is_cancel(turn.inbound.text)


def _form_runner(turn: Turn) -> FormRunner:
    return FormRunner(policies=SqlPolicyBook(turn.session, turn.circle.customer_id))


def _form_message(turn: Turn) -> UserMessage:
    p = turn.parse
    return UserMessage(
        sender_id=turn.speaker.member_id or turn.inbound.sender_id,
        text=turn.inbound.text,
        now=turn.inbound.ts,  # what the time entities were resolved against
        intent=p.intent,
        confidence=p.confidence,
        entities=tuple({"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
                       for e in p.entities),
        private=turn.inbound.private,
        channel=turn.inbound.channel,
    )


def _form_result(turn: Turn, form: FormTurn) -> Result:
    result = Result([_form_reply(turn, m) for m in form.messages if m.get("response")])
    match form.status:
        case Status.ASKING if form.state is not None:
            remember(turn, form.state.to_json())
        case Status.CANCELLED:
            forget(turn)
        case Status.COMPLETED:
            forget(turn)
            if form.intent == "appointment.book":
                _book_appointment(turn, form.slots)
            else:
                _open_form_ticket(turn, form.intent, form.slots, result)
    return result


def _form_reply(turn: Turn, message: dict[str, Any]) -> Reply:
    """A dispatcher message -> a rendered script; `private` goes 1:1 to the member."""
    extra: dict[str, str] = {
        name: turn.label(group, key) for name, (group, key) in (message.get("labels") or {}).items()
    }
    extra |= {name: fmt.moment(datetime.fromisoformat(value))
              for name, value in (message.get("moments") or {}).items() if value}
    private = message.get("private") or turn.inbound.private
    return turn.say(message["response"], to=turn.speaker.member_id if private else None, **extra)


def _open_form_ticket(turn: Turn, intent: str, slots: dict[str, Any], result: Result) -> None:
    """The completed form goes to the agent: reason "form", the slots (masked) in context."""
    ticket = open_ticket(
        session=turn.session, circle=turn.circle, member_id=turn.speaker.member_id,
        source_message_id=turn.row.id, intent=intent, reason="form",
        summary=turn.scripts.intents[intent].zh if intent in turn.scripts.intents else intent,
        now=turn.now, priority=URGENT_PRIORITY.get(intent, Priority.NORMAL),
        context={"form": FORMS[intent].name}, policy=turn.settings.escalation_policy(),
        scripts=turn.scripts, slots={k: mask(str(v)) for k, v in slots.items()},
    )
    result.ticket = ticket
    for notice in handoff_notices(turn.session, turn.scripts, ticket, turn.circle):
        reply = Reply(notice.rendered.text, notice.to, notice.rendered.script_id,
                      notice.rendered.version)
        result.notices.append((notice.circle, reply))


def _form_handoff(turn: Turn, intent: str, slots: dict[str, str]) -> Result:
    result = Result([turn.say("form.handoff")])
    _open_form_ticket(turn, intent, slots, result)
    return result


def _book_appointment(turn: Turn, slots: dict[str, Any]) -> None:
    """The appointment becomes a follow-up in the circle at the chosen time, sent once."""
    due = datetime.fromisoformat(str(slots["time"]))
    if due <= turn.now:
        log.warning("appointment time %s already passed: no follow-up", due.isoformat())
        return
    text = turn.say("form.appointment_due", due_time=fmt.moment(due)).text
    followups.create(
        turn.session, circle_id=turn.circle.id, ticket_id=None, recipient_id=None,
        kind=FollowUpKind.MESSAGE, text=text, due_at=due, now=turn.now,
        created_by=turn.speaker.member_id or turn.inbound.sender_id,
        dedupe_key=f"appointment:msg{turn.row.id}",
    )


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
        return _lost_dialog(turn, "unavailable")
    return value if isinstance(value, dict) else _lost_dialog(turn, "expired")


def _lost_dialog(turn: Turn, why: str) -> dict[str, str] | None:
    """Redis is an accelerator, not the record: if the bot's last word to this member (within
    the dialog TTL) was a form's question, the form is still on, though its state is gone."""
    if turn.speaker.member_id is None:
        return None
    asked = aliased(Message)
    script_id = turn.session.scalar(
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
        .limit(1)
    )
    intent, _, key = (script_id or "").rpartition(".")
    if intent in FORMS and (key == "reply" or key.startswith("ask_")):
        return {"kind": "dialog", "intent": intent, "lost": why}
    return None
