"""The dialog actions alone: tracker in, events and messages out (no app, no database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from rasa_sdk.events import ActiveLoop, AllSlotsReset, SlotSet

from dialogs.domain import FORMS, REQUESTED_SLOT
from dialogs.ports import StaticPolicyBook
from dialogs.runner import FormRunner, FormState, Status, UserMessage, drive

NOW = datetime.fromisoformat("2026-03-02T10:00:00+08:00")


def msg(text: str, *entities: tuple[str, Any], intent: str = "", private: bool = False
        ) -> UserMessage:
    return UserMessage("demo-customer", text, NOW, intent, 0.9,
                       tuple({"entity": e, "value": v} for e, v in entities), private)


@pytest.fixture
def runner() -> FormRunner:
    return FormRunner(policies=StaticPolicyBook(frozenset({"CC2024000123"})))


def responses(messages: list[dict[str, Any]]) -> list[str]:
    return [m["response"] for m in messages]


def test_start_activates_the_loop_and_asks_the_first_slot(runner: FormRunner) -> None:
    turn = runner.start("change.contact", msg("我换手机号了"))
    assert turn.events == [ActiveLoop("change_contact_form"), SlotSet(REQUESTED_SLOT, "new_phone")]
    assert responses(turn.messages) == ["change.contact.reply"]
    assert turn.state == FormState("change.contact", {}, "new_phone")


def test_an_eager_entity_in_the_first_message_fills_its_slot(runner: FormRunner) -> None:
    turn = runner.start("appointment.book",
                        msg("约明天下午3点", ("time", "2026-03-03T15:00:00+08:00")))
    assert SlotSet("time", "2026-03-03T15:00:00+08:00") in turn.events
    assert responses(turn.messages) == ["appointment.book.ask_way"]


def test_phone_is_validated_and_kept_masked(runner: FormRunner) -> None:
    state = FormState("change.contact", {}, "new_phone")
    turn = runner.advance(state, msg("13812345678", ("phone", "13812345678")))
    assert turn.events == [SlotSet("new_phone", "138****5678"),
                           SlotSet(REQUESTED_SLOT, "new_address")]
    assert "13812345678" not in str(turn.messages) + str(turn.state)
    bad = runner.advance(state, msg("1381234"))
    assert bad.events[0] == SlotSet("new_phone", None)
    assert responses(bad.messages) == ["form.phone_invalid", "change.contact.ask_new_phone"]


def test_bank_card_must_pass_luhn_and_come_privately(runner: FormRunner) -> None:
    state = FormState("change.bank_account", {}, "new_bank_card")
    card = ("bank_card", "6222020200001234562")
    group = runner.advance(state, msg("6222020200001234562", card))
    assert group.events[0] == SlotSet("new_bank_card", None)
    # Not taken from the group: asked again (privately, says the script); the pipeline,
    # not the form, advises withdrawing it.
    assert responses(group.messages) == ["change.bank_account.ask_new_bank_card"]
    private = runner.advance(state, msg("6222020200001234562", card, private=True))
    assert private.events[0] == SlotSet("new_bank_card", "6222****4562")
    wrong = runner.advance(state, msg("6222020200001234563", private=True))
    assert responses(wrong.messages)[0] == "form.bank_card_invalid"


def test_policy_number_must_be_one_of_the_holders(runner: FormRunner) -> None:
    state = FormState("invoice.request", {}, "policy_no")
    other = runner.advance(state, msg("CC2099000001", ("policy_no", "CC2099000001")))
    assert other.events[0] == SlotSet("policy_no", None)
    assert responses(other.messages)[0] == "form.policy_unknown"
    own = runner.advance(state, msg("cc2024000123", ("policy_no", "cc2024000123")))
    assert own.events[0] == SlotSet("policy_no", "CC2024000123")


def test_appointment_time_must_be_in_the_future(runner: FormRunner) -> None:
    state = FormState("appointment.book", {}, "time")
    past = runner.advance(state, msg("昨天", ("time", "2026-03-01T15:00:00+08:00")))
    assert past.events[0] == SlotSet("time", None)
    assert responses(past.messages)[0] == "form.time_past"


def test_relation_comes_from_the_relation_entity(runner: FormRunner) -> None:
    state = FormState("change.beneficiary", {"policy_no": "CC2024000123",
                                             "new_beneficiary": "王小花"}, "relation")
    turn = runner.advance(state, msg("是我女儿", ("relation", "child")))
    assert turn.status == Status.COMPLETED
    assert turn.slots == {"policy_no": "CC2024000123", "new_beneficiary": "王小花",
                          "relation": "child"}
    assert ActiveLoop(None) in turn.events
    assert responses(turn.messages) == ["change.beneficiary.done"]


def test_cancel_closes_the_form_and_resets_its_slots(runner: FormRunner) -> None:
    state = FormState("claim.report", {"insured": "我爸"}, "what_happened")
    turn = runner.advance(state, msg("算了"))
    assert turn.status == Status.CANCELLED
    assert turn.events == [ActiveLoop(None), AllSlotsReset()]
    assert responses(turn.messages) == ["form.cancelled"]
    assert turn.state is None


def test_own_chatter_that_answers_nothing_is_ignored(runner: FormRunner) -> None:
    state = FormState("appointment.book", {}, "time")
    turn = runner.advance(state, msg("今晚吃啥", intent="out_of_scope"))
    assert turn.status == Status.IGNORED
    assert (turn.messages, turn.state) == ([], state)


def test_every_form_completes_and_says_done(runner: FormRunner) -> None:
    answers = {
        "change.beneficiary": [msg("CC2024000123", ("policy_no", "CC2024000123")),
                               msg("王小花"), msg("子女")],
        "change.contact": [msg("13812345678"), msg("北京市朝阳区建国路1号")],
        "change.bank_account": [msg("6222020200001234562", private=True), msg("建行")],
        "claim.report": [msg("我爸"), msg("住院了"),
                         msg("昨天", ("time", "2026-03-01T00:00:00+08:00")), msg("市第一人民医院")],
        "invoice.request": [msg("CC2024000123", ("policy_no", "CC2024000123")), msg("去年的"),
                            msg("电子版发邮箱")],
        "appointment.book": [msg("明天上午", ("time", "2026-03-03T09:00:00+08:00")), msg("视频")],
    }
    for intent, replies in answers.items():
        turn = runner.start(intent, msg("开始"))
        for answer in replies:
            assert turn.state is not None, (intent, turn)
            turn = runner.advance(turn.state, answer)
        assert turn.status == Status.COMPLETED, (intent, turn)
        assert set(turn.slots) == set(FORMS[intent].required)
        assert turn.messages[-1]["response"] == f"{intent}.done"


def test_a_damaged_state_starts_over_instead_of_failing() -> None:
    assert FormState.from_json({"intent": "nope"}) is None
    assert FormState.from_json("garbage") is None
    state = FormState.from_json({"intent": "change.contact", "slots": "x", "requested_slot": 5})
    assert state == FormState("change.contact", {}, None)


def test_an_action_that_waits_on_io_is_refused() -> None:
    import asyncio  # noqa: PLC0415

    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="must be pure"):
        drive(waits())
