"""Forms never lose a request: an off-form question is answered and the form goes on; an
answer it cannot use is asked again with an example, twice, then the agent takes over with
what was collected; 不用了 ends it (SQLite + memory and PostgreSQL + Redis)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dialogs.opening import opening_slots, policy_by_description
from storage.models import Circle, Message, Ticket
from tests.conftest import Chat

HOLDER = "demo-customer"
TS = "2026-03-02T10:00:00+08:00"


def sessions_of(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.services.sessions  # type: ignore[attr-defined, no-any-return]


def said(client: TestClient) -> list[tuple[str | None, str | None]]:
    """(script id, recipient) of every reply to the latest inbound message in the family."""
    with sessions_of(client)() as s:
        circle = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-family"))
        last = s.scalar(select(Message.id).where(
            Message.circle_id == circle, Message.direction == "in").order_by(
            Message.id.desc()).limit(1))
        rows = s.scalars(select(Message).where(
            Message.reply_to_id == last, Message.circle_id == circle).order_by(Message.id))
        return [(r.script_id, r.recipient_id) for r in rows]


def ticket(client: TestClient, ticket_id: int) -> Ticket:
    with sessions_of(client)() as s:
        found = s.get(Ticket, ticket_id)
        assert found is not None
        s.expunge(found)
        return found


def tickets(client: TestClient) -> int:
    with sessions_of(client)() as s:
        return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)


def test_an_off_form_question_is_answered_then_the_form_goes_on(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我换手机号了", at_bot=True, ts=TS)
    assert said(client) == [("change.contact.reply", None)]
    out = chat.say(HOLDER, "下次保费什么时候交", at_bot=True, ts=TS)
    assert said(client) == [("premium.due.group_note", None), ("premium.due.private", HOLDER),
                            ("form.resume", None)]
    assert out["ticket_id"] is None
    chat.say(HOLDER, "13812345678", ts=TS)  # not addressed: the form's own question asked it
    assert said(client) == [("change.contact.ask_new_address", None)]
    done = chat.say(HOLDER, "上海市浦东新区张江路88号", ts=TS)
    assert done["ticket_id"] is not None
    context = ticket(client, done["ticket_id"]).context
    assert context["slots"]["new_phone"] == "138****5678"
    assert "张江路" in context["slots"]["new_address"]
    assert context["details"] == "新手机号：138****5678；新地址：上海市浦东新区张江路88号"


def test_the_form_resumes_after_a_private_question_too(client: TestClient, chat: Chat) -> None:
    chat.say(HOLDER, "我要改受益人", private=True, ts=TS)
    chat.say(HOLDER, "你们有哪些增值服务", private=True, ts=TS)
    replies = said(client)
    assert replies[-1] == ("form.resume", HOLDER), replies
    chat.say(HOLDER, "CC2024000123", private=True, ts=TS)
    assert said(client) == [("change.beneficiary.ask_new_beneficiary", HOLDER)]


def test_answers_it_cannot_use_are_asked_again_twice_then_the_agent_takes_over(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我想改受益人", at_bot=True, ts=TS)
    chat.say(HOLDER, "CC2024000123", ts=TS)
    assert said(client) == [("change.beneficiary.ask_new_beneficiary", None)]
    first = chat.say(HOLDER, "123", at_bot=True, ts=TS)
    assert said(client) == [("form.name_only", None),
                            ("change.beneficiary.ask_new_beneficiary", None),
                            ("form.example", None)]
    assert first["ticket_id"] is None
    chat.say(HOLDER, "嗯嗯", at_bot=True, ts=TS)
    assert said(client)[-2:] == [("change.beneficiary.ask_new_beneficiary", None),
                                 ("form.example", None)]
    assert tickets(client) == 0
    third = chat.say(HOLDER, "？？", at_bot=True, ts=TS)
    assert said(client)[0] == ("form.handoff", None)
    assert third["ticket_id"] is not None
    opened = ticket(client, third["ticket_id"])
    assert opened.intent == "change.beneficiary"
    assert opened.context["slots"] == {"policy_no": "CC2024000123"}
    assert opened.context["stopped_at"] == "new_beneficiary"
    assert opened.context["details"] == "保单号：CC2024000123"
    after = chat.say(HOLDER, "王小花", ts=TS)  # the form is over: nothing pending, silence
    assert after["replies"] == []


def test_a_usable_answer_starts_the_count_again(client: TestClient, chat: Chat) -> None:
    chat.say(HOLDER, "我想改受益人", at_bot=True, ts=TS)
    chat.say(HOLDER, "嗯嗯", at_bot=True, ts=TS)
    chat.say(HOLDER, "嗯嗯", at_bot=True, ts=TS)
    chat.say(HOLDER, "CC2024000123", ts=TS)
    chat.say(HOLDER, "嗯嗯", at_bot=True, ts=TS)
    assert said(client)[-1] == ("form.example", None)
    assert tickets(client) == 0


def test_an_unusable_private_answer_is_never_met_with_silence(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我换手机号了", private=True, ts=TS)
    out = chat.say(HOLDER, "不知道", private=True, ts=TS)
    assert said(client) == [("change.contact.ask_new_phone", HOLDER), ("form.example", HOLDER)]
    assert [r["to"] for r in out["replies"]] == [HOLDER, HOLDER]


def test_buyong_le_ends_the_form(client: TestClient, chat: Chat) -> None:
    chat.say(HOLDER, "我换手机号了", at_bot=True, ts=TS)
    chat.say(HOLDER, "不用了", ts=TS)
    assert said(client) == [("form.cancelled", None)]
    after = chat.say(HOLDER, "13812345678", ts=TS)
    assert after["replies"] == []
    assert tickets(client) == 0


@pytest.mark.parametrize("reasked", [False, True])
def test_a_resumed_form_survives_a_lost_state(
    client: TestClient, chat: Chat, reasked: bool
) -> None:
    """The state store is an accelerator: the bot's own words say a form was on."""
    chat.say(HOLDER, "我换手机号了", at_bot=True, ts=TS)
    chat.say(HOLDER, "下次保费什么时候交", at_bot=True, ts=TS)  # the last word: form.resume
    if reasked:
        chat.say(HOLDER, "嗯嗯", at_bot=True, ts=TS)  # the last word: form.example
    client.app.state.services.state.delete_prefix("pending:")  # type: ignore[attr-defined]
    chat.say(HOLDER, "13812345678", ts=TS)
    assert said(client) == [("form.restart", None), ("change.contact.ask_new_address", None)]


# -- the opening message fills what it says; a policy may be named by description ----------
def test_a_claim_told_in_one_message_asks_only_what_is_missing(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我上礼拜急性阑尾炎住了5天院 今天刚出院", at_bot=True, ts=TS)
    assert said(client) == [("claim.report.opened_care", None),
                            ("claim.report.ask_hospital_discharged", None)]
    done = chat.say(HOLDER, "上海市第六人民医院", ts=TS)
    assert done["ticket_id"] is not None
    slots = ticket(client, done["ticket_id"]).context["slots"]
    assert slots["insured"] == "本人"
    assert slots["when"] == "上礼拜"
    assert "阑尾炎" in slots["what_happened"]
    assert slots["hospital"] == "上海市第六人民医院"


def test_a_death_is_met_with_condolence(client: TestClient, chat: Chat) -> None:
    out = chat.say(HOLDER, "我父亲上个月去世了，保险要怎么报案", at_bot=True, ts=TS)
    assert out["intent"] == "claim.report"
    assert said(client) == [("claim.report.opened_condolence", None),
                            ("claim.report.ask_insured", None)]


def test_a_policy_named_by_description_is_matched_to_the_holders(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我想改受益人", at_bot=True, ts=TS)
    chat.say(HOLDER, "重疾险那个", ts=TS)
    assert said(client) == [("change.beneficiary.ask_new_beneficiary", None)]
    done = chat.say(HOLDER, "我女儿王小花", ts=TS)
    assert done["ticket_id"] is not None
    assert ticket(client, done["ticket_id"]).context["slots"]["policy_no"] == "CC2024000123"


def test_opening_words_and_descriptions_by_rule() -> None:
    assert opening_slots("claim.report", "我上礼拜急性阑尾炎住了5天院 今天刚出院") == {
        "insured": "本人", "what_happened": "我上礼拜急性阑尾炎住了5天院 今天刚出院",
        "when": "上礼拜"}
    assert "insured" not in opening_slots("claim.report", "我老婆昨天摔骨折了")
    assert opening_slots("change.contact", "我换手机号了") == {}
    book = [("CC1", "康宁终身重大疾病保险", "critical_illness"), ("CC2", "金福年金保险", "annuity"),
            ("CC3", "安心医疗保险", "medical"), ("CC4", "好医保医疗", None)]
    assert policy_by_description("重疾险那个", book) == "CC1"
    assert policy_by_description("年金的", book) == "CC2"
    assert policy_by_description("医疗险", book) is None, "two fit: ask, never guess"
    assert policy_by_description("单号我记不住了", book) is None


def test_a_completed_form_ticket_reads_in_words(client: TestClient, chat: Chat) -> None:
    """Coded answers (a relation) are shown to the agent in words, not codes."""
    chat.say(HOLDER, "我想改受益人", at_bot=True, ts=TS)
    chat.say(HOLDER, "CC2024000123", ts=TS)
    chat.say(HOLDER, "王小花", ts=TS)
    done = chat.say(HOLDER, "子女", ts=TS)
    assert done["ticket_id"] is not None
    details = ticket(client, done["ticket_id"]).context["details"]
    assert details == "保单号：CC2024000123；新受益人：王小花；与被保险人关系：子女"


def test_a_new_form_goes_first_and_the_old_one_waits(client: TestClient, chat: Chat) -> None:
    chat.say(HOLDER, "我换手机号了", at_bot=True, ts=TS)
    chat.say(HOLDER, "我要开发票", at_bot=True, ts=TS)
    assert said(client) == [("invoice.request.reply", None)]
    chat.say(HOLDER, "CC2024000123", ts=TS)
    chat.say(HOLDER, "2025年", ts=TS)
    done = chat.say(HOLDER, "电子发票", ts=TS)
    assert done["ticket_id"] is not None
    assert ticket(client, done["ticket_id"]).intent == "invoice.request"
    assert said(client)[-1] == ("form.resume", None)
    chat.say(HOLDER, "13812345678", ts=TS)
    assert said(client) == [("change.contact.ask_new_address", None)]


def test_cancelling_the_new_form_goes_back_to_the_old_one(
    client: TestClient, chat: Chat
) -> None:
    chat.say(HOLDER, "我换手机号了", at_bot=True, ts=TS)
    chat.say(HOLDER, "我要开发票", at_bot=True, ts=TS)
    chat.say(HOLDER, "算了", ts=TS)
    assert said(client) == [("form.cancelled", None), ("form.resume", None)]
    chat.say(HOLDER, "13812345678", ts=TS)
    assert said(client) == [("change.contact.ask_new_address", None)]
