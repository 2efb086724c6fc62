"""Dialogs: the actions that close a form, by completing it or by the member's cancelling."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, AllSlotsReset, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from dialogs.domain import CANCEL_ACTION, FORMS, REQUESTED_SLOT, FormSpec


class SubmitForm(Action):
    """Every slot is filled: say `done`; the caller opens the ticket or the follow-up."""

    def __init__(self, spec: FormSpec) -> None:
        self.spec = spec

    def name(self) -> str:
        return self.spec.submit_action

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        extra: dict[str, Any] = {}
        if self.spec.intent == "appointment.book":
            extra["moments"] = {"due_time": tracker.get_slot("time")}
        dispatcher.utter_message(response=self.spec.done, **extra)
        return [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)]


class CancelForm(Action):
    """The member said 取消 / 不办了 / 算了: close the form and forget what it collected."""

    def name(self) -> str:
        return CANCEL_ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="form.cancelled")
        return [ActiveLoop(None), AllSlotsReset()]


def closing_actions() -> list[Action]:
    return [*(SubmitForm(spec) for spec in FORMS.values()), CancelForm()]
