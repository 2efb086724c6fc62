"""Dialogs: the in-process runner, standing where Rasa Core would stand for our forms.

It builds a rasa-sdk tracker from our form state and the member's message, offers the slot
candidates (Rasa's slot mappings), runs the form's validation action through rasa-sdk's
`ActionExecutor`, asks the next `ask_<slot>` and, when every slot is filled, runs the submit
action. It returns events and messages as data; the caller persists the state and sends.
"""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rasa_sdk import __version__ as rasa_sdk_version
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher

from dialogs import validators
from dialogs.actions import closing_actions
from dialogs.domain import (
    CANCEL_ACTION,
    FORMS,
    KNOWN_POLICIES,
    REQUESTED_SLOT,
    FormSpec,
    build_domain,
)
from dialogs.forms import FORM_ACTIONS
from dialogs.opening import opening_slots, policy_by_description
from dialogs.ports import PolicyBook

CHATTER_INTENT = "out_of_scope"


class DialogActionWaited(RuntimeError):
    """A dialog action awaited something real: actions must do no I/O of their own."""


def build_executor() -> ActionExecutor:
    """An executor with every dialog action registered (cheap: build one where needed)."""
    executor = ActionExecutor()
    for form in FORM_ACTIONS:
        executor.register_action(form)
    for action in closing_actions():
        executor.register_action(action)
    return executor


@functools.cache
def shared_executor() -> ActionExecutor:
    """The process's executor, built once (its actions keep no per-call state; building one
    registers every action and logs a line for each)."""
    return build_executor()


@dataclass(frozen=True)
class UserMessage:
    """The member's message as a form sees it (Rasa's parse data plus who and when)."""

    sender_id: str
    text: str
    now: datetime
    intent: str = ""
    confidence: float = 0.0
    entities: tuple[dict[str, Any], ...] = ()
    private: bool = False
    channel: str = "webhook"
    addressed: bool = False  # @-mentioned the bot: an answer attempt, never chatter

    def parse_data(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "intent": {"name": self.intent, "confidence": self.confidence},
            "entities": [dict(e) for e in self.entities],
            "metadata": {"private": self.private},
        }

    def entity(self, name: str) -> Any | None:
        return next((e.get("value") for e in self.entities if e.get("entity") == name), None)


@dataclass(frozen=True)
class FormState:
    """What persists between turns (JSON in the state store, under the dialog TTL)."""

    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    requested_slot: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "dialog", "intent": self.intent, "slots": self.slots,
                "requested_slot": self.requested_slot}

    @classmethod
    def from_json(cls, value: Any) -> FormState | None:
        """Tolerant: a state from an older release or a broken write starts over, never fails."""
        if not isinstance(value, dict) or value.get("intent") not in FORMS:
            return None
        spec = FORMS[value["intent"]]
        raw = value.get("slots")
        slots = {k: v for k, v in raw.items() if k in spec.required} if isinstance(
            raw, dict) else {}
        requested = value.get("requested_slot")
        return cls(spec.intent, slots, requested if requested in spec.required else None)


class Status(StrEnum):
    ASKING = "asking"  # a question is out; keep the state
    COMPLETED = "completed"  # every slot filled: open the ticket / follow-up
    CANCELLED = "cancelled"  # the member stopped it
    IGNORED = "ignored"  # chatter that answers nothing: say nothing, keep the state


@dataclass(frozen=True)
class FormTurn:
    status: Status
    intent: str
    state: FormState | None  # to persist; None once the form is closed
    events: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    slots: dict[str, Any] = field(default_factory=dict)  # what was collected (masked)


class FormRunner:
    def __init__(self, *, policies: PolicyBook | None = None,
                 executor: ActionExecutor | None = None) -> None:
        self.policies = policies
        self.executor = executor or shared_executor()
        self.domain = build_domain()

    def start(self, intent: str, msg: UserMessage) -> FormTurn:
        """Activate the form; the opening message may already answer some slots."""
        spec = FORMS[intent]
        return self._fill(spec, FormState(intent), msg, [ActiveLoop(spec.name)])

    def advance(self, state: FormState, msg: UserMessage) -> FormTurn:
        """The member who started the form spoke again: cancel, or take it as an answer."""
        spec = FORMS[state.intent]
        if validators.is_cancel(msg.text):
            events, messages = self.run(CANCEL_ACTION, self._tracker(spec, state, msg, {}))
            return FormTurn(Status.CANCELLED, spec.intent, None, events, messages)
        return self._fill(spec, state, msg, [])

    def run(self, action: str, tracker: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                   list[dict[str, Any]]]:
        """One action through rasa-sdk's executor, exactly as the action server would."""
        call = {"next_action": action, "sender_id": tracker["sender_id"], "tracker": tracker,
                "domain": self.domain, "version": rasa_sdk_version}
        result = drive(self.executor.run(call))
        if result is None:  # pragma: no cover - only without next_action
            return [], []
        return list(result.events), list(result.responses)

    # -- one turn of slot filling ------------------------------------------------------------
    def _fill(self, spec: FormSpec, state: FormState, msg: UserMessage,
              events: list[dict[str, Any]]) -> FormTurn:
        candidates = self._candidates(spec, state, msg)
        messages: list[dict[str, Any]] = []
        slots = dict(state.slots)
        if candidates:
            found, messages = self.run(spec.validate_action,
                                       self._tracker(spec, state, msg, candidates))
            events += found
            for e in found:
                if e.get("event") == "slot" and e.get("name") in spec.required:
                    slots[e["name"]] = e.get("value")
        progressed = any(slots.get(s) is not None and state.slots.get(s) is None
                         for s in spec.required)
        missing = next((s for s in spec.required if slots.get(s) is None), None)
        filled = FormState(spec.intent, {k: v for k, v in slots.items() if v is not None})
        if missing is None:
            done_events, done = self.run(spec.submit_action,
                                         self._tracker(spec, filled, msg, {}))
            return FormTurn(Status.COMPLETED, spec.intent, None, events + done_events,
                            messages + done, filled.slots)
        if state.requested_slot and not progressed and not messages and (
                msg.intent == CHATTER_INTENT and not msg.private and not msg.addressed):
            # family chatter in the group, not said to the bot: say nothing, keep the state
            return FormTurn(Status.IGNORED, spec.intent, state, [], [])
        opening = state.requested_slot is None and not progressed
        ask = spec.opening if opening else spec.ask(missing)  # reply: opening words + question
        asking = CollectingDispatcher()
        asking.utter_message(response=ask)
        messages += asking.messages
        if not any(e.get("event") == "slot" and e.get("name") == REQUESTED_SLOT
                   for e in events):
            events.append(SlotSet(REQUESTED_SLOT, missing))
        nxt = FormState(spec.intent, filled.slots, missing)
        return FormTurn(Status.ASKING, spec.intent, nxt, events, messages)

    def _candidates(self, spec: FormSpec, state: FormState, msg: UserMessage) -> dict[str, Any]:
        """Rasa's slot mappings: the asked slot from its entity or the text; an eager slot
        from its entity whenever it is still empty. A policy may be named by description
        ("重疾险那个"), and the opening message may already answer some slots."""
        found: dict[str, Any] = {}
        for s in spec.slots:
            value = msg.entity(s.entity) if s.entity else None
            if value is None and s.name == "policy_no" and self.policies is not None:
                value = policy_by_description(msg.text, self.policies.policies_described())
            if s.name == state.requested_slot:
                if value is None and s.text:
                    value = msg.text
                if value is not None:
                    found[s.name] = value
            elif s.eager and value is not None and state.slots.get(s.name) is None:
                found[s.name] = value
        if state.requested_slot is None and not state.slots:
            for name, value in opening_slots(spec.intent, msg.text).items():
                found.setdefault(name, value)
        return found

    def _tracker(self, spec: FormSpec, state: FormState, msg: UserMessage,
                 candidates: dict[str, Any]) -> dict[str, Any]:
        stamp = msg.now.timestamp()
        parse = msg.parse_data()
        known = None
        if self.policies is not None and "policy_no" in candidates:
            known = sorted(self.policies.policy_numbers())
        events: list[dict[str, Any]] = [
            {"event": "action", "name": "action_listen", "timestamp": stamp},
            {"event": "user", "timestamp": stamp, "text": msg.text, "parse_data": parse,
             "input_channel": msg.channel, "metadata": {"private": msg.private}},
            *({"event": "slot", "name": k, "value": v, "timestamp": stamp}
              for k, v in candidates.items()),
        ]
        return {
            "sender_id": msg.sender_id,
            "slots": {**dict.fromkeys(spec.required), **state.slots, **candidates,
                      REQUESTED_SLOT: state.requested_slot, KNOWN_POLICIES: known},
            "latest_message": parse,
            "events": events,
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": spec.name},
            "latest_action_name": "action_listen",
        }


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop (callers may be in one).

    Our actions do no I/O, so they never wait; one that does is a bug, reported as such.
    """
    try:
        coro.send(None)
    except StopIteration as finished:
        return finished.value
    coro.close()
    raise DialogActionWaited("a dialog action waited on I/O; actions must be pure")
