"""Dialogs: one FormValidationAction per form; each `validate_<slot>` judges one answer.

Tracker in, replies and events out: no action reads a database or a clock of its own. The
holder's policy numbers arrive as the `known_policies` slot, "now" as the user event's time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from dialogs import validators as v
from dialogs.domain import FORMS, KNOWN_POLICIES, REQUESTED_SLOT, FormSpec

Slots = dict[str, Any]


class ShortForm(FormValidationAction):
    """Shared behaviour: the slots come from the FormSpec, and the next one is always named."""

    spec: ClassVar[FormSpec]

    def name(self) -> str:
        return self.spec.validate_action

    def domain_slots(self, domain: DomainDict) -> list[str]:
        return self.spec.required  # ours, whatever domain the caller sent

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        return self.spec.required

    async def next_requested_slot(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventType | None:
        missing = (s for s in self.spec.required if tracker.slots.get(s) is None)
        return SlotSet(REQUESTED_SLOT, next(missing, None))

    # -- helpers every validate_<slot> uses ------------------------------------------------
    @staticmethod
    def text(tracker: Tracker) -> str:
        return str(tracker.latest_message.get("text") or "")

    @staticmethod
    def now(tracker: Tracker) -> datetime:
        """The time of the member's message (the user event's timestamp)."""
        event = tracker.get_last_event_for("user")
        stamp = event.get("timestamp") if event else None
        return datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)

    @staticmethod
    def private(tracker: Tracker) -> bool:
        metadata = tracker.latest_message.get("metadata") or {}
        return bool(metadata.get("private"))

    @staticmethod
    def reject(slot: str, dispatcher: CollectingDispatcher, reason: str | None = None,
               **extra: Any) -> Slots:
        """Not an answer: the slot stays empty; `reason` (a script id) says why, if we know."""
        if reason:
            dispatcher.utter_message(response=reason, **extra)
        return {slot: None}


class PolicyNoSlot(ShortForm):
    def validate_policy_no(self, value: Any, dispatcher: CollectingDispatcher,
                           tracker: Tracker, domain: DomainDict) -> Slots:
        """One of the holder's own policies (when the caller told us which they are)."""
        number = str(value or "").strip().upper()
        known = tracker.get_slot(KNOWN_POLICIES)
        shaped = v.POLICY_RE.fullmatch(number) is not None
        if known is not None and number in {str(k).upper() for k in known}:
            return {"policy_no": number}
        if known is None and shaped:
            return {"policy_no": number}  # nothing to check against (an external Rasa)
        if shaped or v.has_digits(self.text(tracker)):
            return self.reject("policy_no", dispatcher, "form.policy_unknown")
        return self.reject("policy_no", dispatcher)


class ChangeBeneficiaryForm(PolicyNoSlot):
    spec = FORMS["change.beneficiary"]

    def validate_new_beneficiary(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> Slots:
        name = v.person_name(str(value))
        if name is None:
            reason = "form.name_only" if v.has_digits(str(value)) else None
            return self.reject("new_beneficiary", dispatcher, reason)
        found: Slots = {"new_beneficiary": name}
        relation = next(tracker.get_latest_entity_values("relation"), None)
        if relation and tracker.get_slot("relation") is None:
            found["relation"] = relation  # "我女儿张小花" answers both questions
        return found

    def validate_relation(self, value: Any, dispatcher: CollectingDispatcher,
                          tracker: Tracker, domain: DomainDict) -> Slots:
        text = str(value)
        relation = v.relation(text if text in v.RELATIONS else None, self.text(tracker))
        return {"relation": relation} if relation else self.reject("relation", dispatcher)


class ChangeContactForm(ShortForm):
    spec = FORMS["change.contact"]

    def validate_new_phone(self, value: Any, dispatcher: CollectingDispatcher,
                           tracker: Tracker, domain: DomainDict) -> Slots:
        """A mobile number, kept and shown only masked; "号码没变" is an answer too."""
        masked = v.mobile(str(value))
        if masked:
            return {"new_phone": masked}
        if v.is_unchanged(self.text(tracker)):
            return {"new_phone": "unchanged"}
        reason = "form.phone_invalid" if v.has_digits(self.text(tracker)) else None
        return self.reject("new_phone", dispatcher, reason)

    def validate_new_address(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> Slots:
        if v.is_unchanged(str(value)):
            return {"new_address": "unchanged"}
        found = v.address(str(value))
        return {"new_address": found} if found else self.reject("new_address", dispatcher)


class ChangeBankAccountForm(ShortForm):
    spec = FORMS["change.bank_account"]

    def validate_new_bank_card(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> Slots:
        """A Luhn-valid card, sent privately; posted in the group it is neither kept nor used
        (the question is asked again, privately; the pipeline advises withdrawing it)."""
        masked = v.bank_card(str(value))
        if masked and not self.private(tracker):
            return self.reject("new_bank_card", dispatcher)
        if masked:
            return {"new_bank_card": masked}
        reason = "form.bank_card_invalid" if v.looks_like_card(self.text(tracker)) else None
        return self.reject("new_bank_card", dispatcher, reason)

    def validate_bank_name(self, value: Any, dispatcher: CollectingDispatcher,
                           tracker: Tracker, domain: DomainDict) -> Slots:
        bank = v.bank_name(str(value))
        return {"bank_name": bank} if bank else self.reject("bank_name", dispatcher)


class ClaimReportForm(ShortForm):
    spec = FORMS["claim.report"]

    def validate_insured(self, value: Any, dispatcher: CollectingDispatcher,
                         tracker: Tracker, domain: DomainDict) -> Slots:
        name = v.person_name(str(value))
        if name is None:
            reason = "form.name_only" if v.has_digits(str(value)) else None
            return self.reject("insured", dispatcher, reason)
        return {"insured": name}

    def validate_what_happened(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> Slots:
        found = v.free_text(str(value))
        return {"what_happened": found} if found else self.reject("what_happened", dispatcher)

    def validate_when(self, value: Any, dispatcher: CollectingDispatcher,
                      tracker: Tracker, domain: DomainDict) -> Slots:
        """A resolved time when we heard one, else the member's own words (前阵子)."""
        when = v.moment(str(value))
        found = when.isoformat() if when else v.free_text(str(value))
        return {"when": found} if found else self.reject("when", dispatcher)

    def validate_hospital(self, value: Any, dispatcher: CollectingDispatcher,
                          tracker: Tracker, domain: DomainDict) -> Slots:
        found = v.hospital(str(value))
        return {"hospital": found} if found else self.reject("hospital", dispatcher)


class InvoiceRequestForm(PolicyNoSlot):
    spec = FORMS["invoice.request"]

    def validate_year(self, value: Any, dispatcher: CollectingDispatcher,
                      tracker: Tracker, domain: DomainDict) -> Slots:
        found = v.years(str(value), self.now(tracker))
        return {"year": found} if found else self.reject("year", dispatcher)

    def validate_delivery(self, value: Any, dispatcher: CollectingDispatcher,
                          tracker: Tracker, domain: DomainDict) -> Slots:
        found = v.delivery(str(value))
        return {"delivery": found} if found else self.reject("delivery", dispatcher)


class AppointmentBookForm(ShortForm):
    spec = FORMS["appointment.book"]

    def validate_time(self, value: Any, dispatcher: CollectingDispatcher,
                      tracker: Tracker, domain: DomainDict) -> Slots:
        """A time that resolves to later than the member's message."""
        when = v.moment(str(value))
        if when is None:
            return self.reject("time", dispatcher)
        if when <= self.now(tracker):
            return self.reject("time", dispatcher, "form.time_past")
        return {"time": when.isoformat()}

    def validate_way(self, value: Any, dispatcher: CollectingDispatcher,
                     tracker: Tracker, domain: DomainDict) -> Slots:
        found = v.way(str(value))
        return {"way": found} if found else self.reject("way", dispatcher)


FORM_ACTIONS: tuple[type[ShortForm], ...] = (
    ChangeBeneficiaryForm, ChangeContactForm, ChangeBankAccountForm, ClaimReportForm,
    InvoiceRequestForm, AppointmentBookForm,
)
