"""Dialog: the short forms of dialogs/, driven in-process; their state lives in the state store."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.actions import URGENT_PRIORITY, Result, forget, remember
from bot.actions import pending as pending_now
from bot.keys import keyring_for
from bot.messages import Reply
from bot.turn import Turn
from dialogs.domain import FORMS
from dialogs.opening import bereaved, discharged, policy_by_description
from dialogs.ports import SqlPolicyBook
from dialogs.runner import FormRunner, FormState, FormTurn, Status, UserMessage
from dialogs.validators import is_cancel, moment
from escalation import followups
from escalation.tickets import handoff_notices, open_ticket
from storage import formats as fmt
from storage.enums import FollowUpKind, Priority
from storage.models import AuditEvent
from storage.pii import find_pii, mask

log = logging.getLogger(__name__)

MAX_REASKS = 2  # an answer the form cannot use is asked again twice; the third goes to the agent


# Changes to the holder's policies: only the holder, or a member they authorized, may ask.
HOLDER_ONLY = frozenset({"change.beneficiary", "change.bank_account", "change.contact"})


def dialog(turn: Turn) -> Result:
    """Open the form for this intent; the opening message may already answer a slot."""
    if not _may_start(turn, turn.parse.intent):
        return _refuse_change(turn, turn.parse.intent)
    form = _form_runner(turn).start(turn.parse.intent, _form_message(turn))
    result = _form_result(turn, form)
    opening = FORMS[form.intent].opening
    if form.intent == "claim.report" and not any(
            m.get("response") == opening for m in form.messages):
        # the opening words already answered some questions: a caring word, then the rest
        care = "opened_condolence" if bereaved(turn.inbound.text) else "opened_care"
        result.replies.insert(0, turn.say(f"claim.report.{care}"))
    return result


def _situational(response: str, collected: dict[str, Any], text: str) -> str:
    """The variant of a claim report's words that fits what the member told us."""
    told = " ".join([text, str(collected.get("what_happened") or "")])
    if response == "claim.report.reply" and bereaved(told):
        return "claim.report.reply_condolence"
    if response == "claim.report.ask_hospital" and discharged(told):
        return "claim.report.ask_hospital_discharged"
    return response


def _sealed_answers(turn: Turn, slots: dict[str, Any], before: Any) -> dict[str, str]:
    """A number the member gave (new phone, new card) is kept masked in the slots for everyone,
    and sealed here (storage/crypto.py) so the agent can reveal it from the ticket and carry
    out the change. Matched by its masked form against this message's numbers."""
    sealed = {k: v for k, v in (before or {}).items() if isinstance(v, str) and k in slots}
    found = {m.masked: m.digits for m in find_pii(turn.inbound.text)}
    for name, value in slots.items():
        if name not in sealed and isinstance(value, str) and value in found:
            sealed[name] = keyring_for(turn.settings).seal(found[value])
    return sealed


def continue_dialog(turn: Turn, pending: dict[str, Any]) -> Result:
    """The member who started the form spoke again: an answer, a cancel, or chatter."""
    intent = pending["intent"]
    if not _may_start(turn, intent):
        forget(turn)
        return _refuse_change(turn, intent)
    if pending.get("lost") == "unavailable":
        # The state store is down: nothing can be collected, so the agent takes it from here.
        return _form_handoff(turn, intent, {"answer": turn.row.text})
    state = None if pending.get("lost") else FormState.from_json(pending)
    if state is None:
        # The state was lost (a Redis restart, an eviction): say so, and start over politely.
        result = _form_result(turn, _form_runner(turn).start(intent, _form_message(turn)))
        result.replies.insert(0, turn.say("form.restart"))
        return result
    form = _form_runner(turn).advance(state, _form_message(turn))
    if form.status == Status.ASKING and form.state is not None and form.state.slots == state.slots:
        # nothing usable: asked again with an example, at most twice, then the agent takes
        # over with everything collected so far
        misses = _misses(pending) + 1
        slot = form.state.requested_slot or ""
        if misses > MAX_REASKS:
            forget(turn)
            return _form_handoff(turn, intent, state.slots, stopped_at=slot,
                                 sealed=pending.get("sealed"))
        result = _form_result(turn, form, sealed_before=pending.get("sealed"), misses=misses)
        result.replies.append(turn.say("form.example", example=turn.label("form_example", slot)))
        return result
    return _form_result(turn, form, sealed_before=pending.get("sealed"),
                        then=pending.get("then"))


def _misses(pending: dict[str, Any]) -> int:
    value = pending.get("misses")
    return value if isinstance(value, int) else 0


def resumable(pending: dict[str, Any] | None) -> FormState | None:
    """The form an off-form question interrupted, kept to come back to (None: nothing to)."""
    if not pending or pending.get("kind") != "dialog" or pending.get("lost"):
        return None
    state = FormState.from_json(pending)
    return state if state is not None and state.requested_slot is not None else None


def resume(turn: Turn, state: FormState) -> Reply:
    """After the off-form answer, back to the form's open question (its state was kept)."""
    spec = turn.scripts.intents.get(state.intent)
    question = turn.say(FORMS[state.intent].ask(state.requested_slot or "")).text
    return turn.say("form.resume", intent_zh=spec.zh if spec else state.intent,
                    question=question)


def answers_form(turn: Turn, pending: dict[str, Any]) -> bool:
    """Does this message answer the form's open question outright (its entity, or the
    holder's policy named by description), whatever else the intent engine hears in it?"""
    state = FormState.from_json(pending)
    if state is None or state.requested_slot is None:
        return False
    slot = FORMS[state.intent].slot(state.requested_slot)
    if slot.entity and any(e.entity == slot.entity for e in turn.parse.entities):
        return True
    runner = _form_runner(turn)
    return slot.name == "policy_no" and runner.policies is not None and policy_by_description(
        turn.inbound.text, runner.policies.policies_described()) is not None


def cancels_form(turn: Turn) -> bool:
    return is_cancel(turn.inbound.text)


def _may_start(turn: Turn, intent: str) -> bool:
    speaker = turn.speaker
    return intent not in HOLDER_ONLY or (
        speaker.member_id is not None and speaker.may_see_policy_data)


def _refuse_change(turn: Turn, intent: str) -> Result:
    """Kindly, with how the holder can do it; nothing is opened, the attempt is audited."""
    turn.session.add(AuditEvent(
        kind="change_form_refused", actor_id=turn.speaker.member_id or turn.inbound.sender_id,
        circle_id=turn.circle.id, subject=intent, data={"message_id": turn.row.id},
        created_at=turn.now,
    ))
    spec = turn.scripts.intents.get(intent)
    return Result([turn.say("form.holder_only", intent_zh=spec.zh if spec else intent)])


def _form_runner(turn: Turn) -> FormRunner:
    """Policy numbers are checked against the holder's only for someone who may see them: to
    anyone else every well-formed number is taken alike (the agent checks it), so the answer
    never tells whether a number belongs to the holder."""
    if turn.speaker.member_id is None or not turn.speaker.may_see_policy_data:
        return FormRunner(policies=None)
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
        addressed=_addressed(turn),
    )


def _addressed(turn: Turn) -> bool:
    names = {turn.settings.bot_name, turn.settings.bot_member_id}
    return bool(names & set(turn.inbound.mentions)) or f"@{turn.settings.bot_name}" in (
        turn.inbound.text)


def _form_result(turn: Turn, form: FormTurn, sealed_before: Any = None,
                 misses: int = 0, then: Any = None) -> Result:
    """`then`: the pending form this one interrupted, taken up again once this one ends."""
    collected = form.state.slots if form.state is not None else form.slots
    result = Result([_form_reply(turn, m, collected) for m in form.messages
                     if m.get("response")])
    sealed = _sealed_answers(turn, collected, sealed_before)
    waiting = resumable(then) if isinstance(then, dict) else None
    match form.status:
        case Status.ASKING if form.state is not None:
            remember(turn, {**form.state.to_json(), **({"sealed": sealed} if sealed else {}),
                            **({"misses": misses} if misses else {}),
                            **({"then": then} if waiting else {})})
            return result
        case Status.CANCELLED:
            forget(turn)
        case Status.COMPLETED:
            forget(turn)
            if form.intent == "appointment.book":
                _book_appointment(turn, form.slots)
            else:
                _open_form_ticket(turn, form.intent, form.slots, result, sealed)
        case _:
            return result
    if waiting is not None and isinstance(then, dict):
        remember(turn, then)
        result.replies.append(resume(turn, waiting))
    return result


def dialog_over(turn: Turn, interrupted: dict[str, Any]) -> Result:
    """A new form opened over a pending one: the new one goes first, the old one waits."""
    result = dialog(turn)
    current = pending_now(turn)
    old = resumable(interrupted)
    if old is None:
        return result
    if current is not None and current.get("intent") != old.intent:
        remember(turn, {**current, "then": interrupted})  # asked: the old waits under it
    else:  # the new form ended at once (or never opened): back to the old one now
        remember(turn, interrupted)
        result.replies.append(resume(turn, old))
    return result


def _form_reply(turn: Turn, message: dict[str, Any], collected: dict[str, Any]) -> Reply:
    """A dispatcher message -> a rendered script; `private` goes 1:1 to the member."""
    extra: dict[str, str] = {
        name: turn.label(group, key) for name, (group, key) in (message.get("labels") or {}).items()
    }
    extra |= {name: fmt.moment(datetime.fromisoformat(value))
              for name, value in (message.get("moments") or {}).items() if value}
    private = message.get("private") or turn.inbound.private
    response = _situational(message["response"], collected, turn.inbound.text)
    return turn.say(response, to=turn.speaker.member_id if private else None, **extra)


def _open_form_ticket(turn: Turn, intent: str, slots: dict[str, Any], result: Result,
                      sealed: dict[str, str] | None = None, *, stopped_at: str | None = None,
                      ) -> None:
    """The completed form goes to the agent: reason "form", the slots (masked) in context, and
    the numbers given sealed (context["sealed"]), for POST /api/v1/tickets/{id}/reveal. A form
    the member could not finish says where it stopped (context["stopped_at"])."""
    stop = {"stopped_at": stopped_at} if stopped_at is not None else {}
    ticket = open_ticket(
        session=turn.session, circle=turn.circle, member_id=turn.speaker.member_id,
        source_message_id=turn.row.id, intent=intent, reason="form",
        summary=turn.scripts.intents[intent].zh if intent in turn.scripts.intents else intent,
        now=turn.now, priority=URGENT_PRIORITY.get(intent, Priority.NORMAL),
        context={"form": FORMS[intent].name, "details": readable(turn, slots),
                 **({"sealed": sealed} if sealed else {}), **stop},
        policy=turn.settings.escalation_policy(),
        scripts=turn.scripts, slots={k: mask(str(v)) for k, v in slots.items()},
    )
    result.ticket = ticket
    for notice in handoff_notices(turn.session, turn.scripts, ticket, turn.circle):
        reply = Reply(notice.rendered.text, notice.to, notice.rendered.script_id,
                      notice.rendered.version)
        result.notices.append((notice.circle, reply))


def readable(turn: Turn, slots: dict[str, Any]) -> str:
    """The collected answers as an agent reads them: 保单号：CC2024000123；关系：子女 (masked)."""
    parts = []
    for name, value in slots.items():
        text = str(value)
        when = moment(text) if name in ("when", "time") else None
        if when is not None:
            text = fmt.moment(when)
        elif name == "relation":
            text = turn.label("relation", text)
        else:
            text = turn.label("form_value", text)
        parts.append(f"{turn.label('form_slot', name)}：{mask(text)}")
    return turn.label("joiners", "list").join(parts)


def _form_handoff(turn: Turn, intent: str, slots: dict[str, Any], *,
                  stopped_at: str | None = None, sealed: Any = None) -> Result:
    result = Result([turn.say("form.handoff")])
    kept = {k: v for k, v in sealed.items() if k in slots} if isinstance(sealed, dict) else None
    _open_form_ticket(turn, intent, slots, result, kept or None, stopped_at=stopped_at)
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
