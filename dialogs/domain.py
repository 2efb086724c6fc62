"""Dialogs: the forms as data (slots, how each is filled) and the Rasa domain built from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUESTED_SLOT = "requested_slot"
KNOWN_POLICIES = "known_policies"  # filled by the runner from the PolicyBook port, never kept
CANCEL_ACTION = "action_cancel_form"


@dataclass(frozen=True)
class SlotSpec:
    name: str
    entity: str | None = None  # filled from this entity of the latest message, when present
    text: bool = True  # otherwise from the whole text, when this slot was asked for
    eager: bool = False  # an entity may fill it before it is asked (e.g. in the first message)


@dataclass(frozen=True)
class FormSpec:
    intent: str
    slots: tuple[SlotSpec, ...]

    @property
    def name(self) -> str:
        return self.intent.replace(".", "_") + "_form"

    @property
    def validate_action(self) -> str:
        return f"validate_{self.name}"

    @property
    def submit_action(self) -> str:
        return f"action_submit_{self.name}"

    @property
    def required(self) -> list[str]:
        return [s.name for s in self.slots]

    def slot(self, name: str) -> SlotSpec:
        return next(s for s in self.slots if s.name == name)

    def ask(self, slot: str) -> str:
        return f"{self.intent}.ask_{slot}"

    @property
    def opening(self) -> str:
        return f"{self.intent}.reply"

    @property
    def done(self) -> str:
        return f"{self.intent}.done"


POLICY_NO = SlotSpec("policy_no", entity="policy_no", eager=True)

FORMS: dict[str, FormSpec] = {
    f.intent: f
    for f in (
        FormSpec("change.beneficiary", (
            POLICY_NO,
            SlotSpec("new_beneficiary"),
            SlotSpec("relation", entity="relation"),
        )),
        FormSpec("change.contact", (
            SlotSpec("new_phone", entity="phone", eager=True),
            SlotSpec("new_address"),
        )),
        FormSpec("change.bank_account", (
            SlotSpec("new_bank_card", entity="bank_card"),
            SlotSpec("bank_name"),
        )),
        FormSpec("claim.report", (
            SlotSpec("insured"),
            SlotSpec("what_happened"),
            SlotSpec("when", entity="time"),
            SlotSpec("hospital"),
        )),
        FormSpec("invoice.request", (
            POLICY_NO,
            SlotSpec("year"),
            SlotSpec("delivery"),
        )),
        FormSpec("appointment.book", (
            SlotSpec("time", entity="time", eager=True),
            SlotSpec("way"),
        )),
    )
}
FORMS_BY_NAME = {f.name: f for f in FORMS.values()}


def build_domain() -> dict[str, Any]:
    """The Rasa domain of our forms: slots with their mappings, forms, responses, actions."""
    slots: dict[str, Any] = {
        REQUESTED_SLOT: {"type": "any", "influence_conversation": False, "mappings": []},
        KNOWN_POLICIES: {"type": "list", "influence_conversation": False, "mappings": []},
    }
    responses: dict[str, Any] = {}
    for form in FORMS.values():
        condition = [{"active_loop": form.name, "requested_slot": None}]
        for s in form.slots:
            mappings: list[dict[str, Any]] = []
            if s.entity:
                mappings.append({"type": "from_entity", "entity": s.entity,
                                 "conditions": [{"active_loop": form.name}]})
            if s.text:
                mappings.append({"type": "from_text", "conditions": [
                    {**condition[0], "requested_slot": s.name}]})
            slots.setdefault(s.name, {"type": "any", "mappings": []})["mappings"] += mappings
        for key in (form.opening, form.done, *(form.ask(s) for s in form.required)):
            responses[key] = [{"text": key}]  # rendered from scripts_zh by the caller
    return {
        "version": "3.1",
        "slots": slots,
        "forms": {f.name: {"required_slots": f.required} for f in FORMS.values()},
        "responses": responses,
        "actions": [a for f in FORMS.values() for a in (f.validate_action, f.submit_action)]
        + [CANCEL_ACTION],
    }
