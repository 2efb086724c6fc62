"""Judgement in a family group, end to end: honest about being a bot, clarifying questions in
the customer's words, and family members' anger at each other is no complaint."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from storage.models import Ticket
from storage.scripts import ScriptLibrary
from tests.conftest import Chat, login


def _scripts_said(client: TestClient) -> list[str]:
    """The script id of every bot message in the demo family circle, oldest first."""
    rows = client.get(
        "/api/v1/circles/demo-family/messages", headers=login(client, "demo-agent")
    ).json()
    return [m["script_id"] for m in rows if m["direction"] == "out"]


def _tickets(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Ticket)).scalar_one()
    engine.dispose()
    return int(n)


def test_asked_whether_it_is_a_person_the_bot_says_it_is_the_agents_assistant(
    chat: Chat, database_url: str
) -> None:
    for text in ("你是真人吗", "你是机器人吗"):
        out = chat.say("demo-customer", text, at_bot=True)
        assert out["intent"] == "chitchat.bot_identity", text
        (reply,) = out["replies"]
        assert "李娜" in reply["text"]
        assert "智能助手" in reply["text"]
    assert _scripts_said(chat.client) == ["chitchat.bot_identity.reply"] * 2
    assert _tickets(database_url) == 0


def test_wife_calming_her_husband_opens_no_complaint(chat: Chat, database_url: str) -> None:
    for text in ("你别冲动", "老公你别冲动！！！", "有话好好说 别吵了"):
        out = chat.say("demo-wife", text)
        assert out["intent"] != "complaint", text
        assert out["replies"] == [], text
    assert _tickets(database_url) == 0


def test_clarifying_question_offers_options_in_customer_words(
    make_client: Callable[..., TestClient], scripts: ScriptLibrary
) -> None:
    client = make_client(confidence_threshold=0.999)  # every answer is unsure: ask first
    out = Chat(client).say("demo-customer", "那个保单的钱咋弄", at_bot=True)
    (reply,) = out["replies"]
    assert _scripts_said(client) == ["fallback.clarify"]
    words = {spec.customer_words for spec in scripts.intents.values()}
    m = re.fullmatch(r"不好意思，我想确认一下：您是想(.+)，还是(.+)？", reply["text"])
    assert m is not None, reply["text"]
    assert {m.group(1), m.group(2)} <= words
    assert "吗？" not in reply["text"]
    for spec in scripts.intents.values():
        assert spec.zh not in reply["text"]
        assert spec.id not in reply["text"]


def test_every_intent_has_customer_words(scripts: ScriptLibrary) -> None:
    for spec in scripts.intents.values():
        assert spec.customer_words, spec.id
        assert "." not in spec.customer_words, spec.id
