"""Forms as the family group sees them, through POST /api/v1/messages (SQLite and PG)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from storage.models import FollowUp, Ticket
from storage.state import StateUnavailable
from tests.conftest import Chat

TS = "2026-03-02T10:00:00+08:00"  # a Monday morning in Shanghai
LATER = "2030-03-04T10:00:00+08:00"  # still ahead of the server clock: a follow-up can be due


def _texts(out: dict[str, Any]) -> str:
    return " ".join(r["text"] for r in out["replies"])


def _ticket(database_url: str, ticket_id: int) -> Ticket:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(select(Ticket).where(Ticket.id == ticket_id)).one()
    engine.dispose()
    return row  # type: ignore[return-value]


def test_contact_change_collects_a_masked_phone_and_an_address(
    chat: Chat, database_url: str
) -> None:
    opened = chat.say("demo-customer", "我换手机号了", at_bot=True, ts=TS)
    assert "手机号" in _texts(opened)
    asked = chat.say("demo-customer", "13812345678", ts=TS)
    assert "地址" in _texts(asked), asked
    assert "13812345678" not in _texts(asked)
    done = chat.say("demo-customer", "上海市浦东新区张江路88号", ts=TS)
    assert done["ticket_id"] is not None
    assert "登记" in _texts(done)
    ticket = _ticket(database_url, done["ticket_id"])
    assert ticket.reason == "form"
    assert ticket.intent == "change.contact"
    slots = ticket.context["slots"]
    assert slots["new_phone"] == "138****5678"
    assert "张江路" in slots["new_address"]


def test_an_invalid_phone_is_asked_again(chat: Chat) -> None:
    chat.say("demo-customer", "我换手机号了", at_bot=True, ts=TS)
    again = chat.say("demo-customer", "1381234", ts=TS)
    assert again["ticket_id"] is None
    assert "手机号" in _texts(again)
    assert len(again["replies"]) == 3  # why, the question again, an example


def test_member_can_cancel_and_nothing_is_opened(chat: Chat) -> None:
    chat.say("demo-customer", "我换手机号了", at_bot=True, ts=TS)
    out = chat.say("demo-customer", "算了 不办了", ts=TS)
    assert out["ticket_id"] is None
    assert "取消" in _texts(out)
    after = chat.say("demo-customer", "13812345678", ts=TS)
    assert after["replies"] == []  # the form is closed: an unaddressed number gets silence


def test_family_chatter_in_between_does_not_advance_the_form(chat: Chat) -> None:
    chat.say("demo-customer", "我换手机号了", at_bot=True, ts=TS)
    wife = chat.say("demo-wife", "13900001111", ts=TS)
    assert wife["replies"] == []
    chatter = chat.say("demo-wife", "今晚吃饺子还是面条呀", ts=TS)
    assert chatter["replies"] == []
    asked = chat.say("demo-customer", "13812345678", ts=TS)
    assert "地址" in _texts(asked)


def test_bank_card_in_the_group_is_not_taken_and_must_be_sent_privately(
    chat: Chat, database_url: str
) -> None:
    chat.say("demo-customer", "扣保费的银行卡要换", at_bot=True, ts=TS)
    out = chat.say("demo-customer", "6222020200001234562", ts=TS)
    withdraw = [r for r in out["replies"] if "撤回" in r["text"]]
    assert len(withdraw) == 1, out  # once, not twice (form + pipeline)
    assert withdraw[0]["to"] == "demo-customer"
    assert "私信" in _texts(out)
    assert "6222020200001234562" not in _texts(out)
    private = chat.say("demo-customer", "6222020200001234562", ts=TS, private=True)
    assert "哪家银行" in _texts(private), private
    done = chat.say("demo-customer", "招商银行", ts=TS, private=True)
    assert done["ticket_id"] is not None
    slots = _ticket(database_url, done["ticket_id"]).context["slots"]
    assert slots == {"new_bank_card": "6222****4562", "bank_name": "招商银行"}


def test_beneficiary_change_checks_the_policy_is_the_holders(
    chat: Chat, database_url: str
) -> None:
    chat.say("demo-customer", "我想改受益人", at_bot=True, ts=TS)
    wrong = chat.say("demo-customer", "CC2099999999", ts=TS)
    assert "没有找到" in _texts(wrong)
    right = chat.say("demo-customer", "CC2024000123", ts=TS)
    assert "新的受益人" in _texts(right), right
    both = chat.say("demo-customer", "我女儿王小花", ts=TS)
    assert both["ticket_id"] is not None, both
    slots = _ticket(database_url, both["ticket_id"]).context["slots"]
    assert slots["policy_no"] == "CC2024000123"
    assert slots["relation"] == "child"


def test_appointment_becomes_a_follow_up_at_the_chosen_time(
    chat: Chat, database_url: str
) -> None:
    opened = chat.say("demo-customer", "想约李娜见面聊一下", at_bot=True, ts=LATER)
    assert opened["replies"], opened
    past = chat.say("demo-customer", "昨天下午3点", ts=LATER)
    assert "过去" in _texts(past)
    way = chat.say("demo-customer", "明天下午3点", ts=LATER)
    assert "电话" in _texts(way)
    done = chat.say("demo-customer", "打电话吧", ts=LATER)
    assert "3月5日 15:00" in _texts(done)
    assert done["ticket_id"] is None
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(FollowUp.due_at, FollowUp.text)).all()
    engine.dispose()
    assert len(rows) == 1
    assert rows[0].due_at.isoformat().startswith("2030-03-05T07:00")
    assert "预约" in rows[0].text


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_lost_form_state_asks_again_politely(
    make_client: Callable[..., TestClient], database_url: str, store: str,
    request: pytest.FixtureRequest,
) -> None:
    extra = {"redis_url": request.getfixturevalue("redis_url")} if store == "redis" else {}
    client = make_client(database_url=database_url, **extra)
    chat = Chat(client)
    chat.say("demo-customer", "我换手机号了", at_bot=True, ts=TS)
    client.app.state.services.state.delete_prefix("pending:")  # type: ignore[attr-defined]
    out = chat.say("demo-customer", "13812345678", ts=TS)
    assert out["replies"][0]["text"].startswith("王先生不好意思"), out
    assert out["ticket_id"] is None
    assert "地址" in _texts(out)  # the form starts over, and this answer already counts
    done = chat.say("demo-customer", "上海市浦东新区张江路88号", ts=TS)
    assert done["ticket_id"] is not None


def test_state_store_down_hands_the_form_to_the_agent(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    client = make_client(database_url=database_url)
    chat = Chat(client)
    chat.say("demo-customer", "我换手机号了", at_bot=True, ts=TS)
    svc = client.app.state.services  # type: ignore[attr-defined]
    svc.state = svc.pipeline.state = _DownStore()
    out = chat.say("demo-customer", "13812345678", ts=TS)
    assert out["ticket_id"] is not None
    assert "13812345678" not in _texts(out)


class _DownStore:
    """A state store whose every call fails as a dead Redis would."""

    def __getattr__(self, name: str) -> Any:
        def down(*args: Any, **kwargs: Any) -> Any:
            raise StateUnavailable("redis down")

        return down
