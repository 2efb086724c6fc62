"""Circles follow their group: joins, leaves, a dismissed group; WeCom 客户群变更 and the
generic webhook's events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.nlu.engine import IntentEngine
from bot.settings import Settings
from storage.models import Circle, CircleMember, Message
from tests.channels.wx import DEMO_KEY, safe_request
from tests.conftest import Chat

CORP, TOKEN = "wwcorecircle", "wecom-token"


def seats(client: TestClient, chat_id: str = "demo-family") -> dict[str, str]:
    with client.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id))
        assert circle is not None
        return {m.member_id: m.role.value for m in s.scalars(
            select(CircleMember).where(CircleMember.circle_id == circle.id))}


def event(client: TestClient, **body: str) -> dict[str, object]:
    r = client.post("/api/v1/events", json={"chat_id": "demo-family", **body})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_stranger_joins_as_a_guest_sees_nothing_and_the_agent_is_told(
    client: TestClient,
) -> None:
    joined = event(client, event="join", member_id="wx-unknown", member_name="张老三")
    assert joined["role"] == "guest"
    assert event(client, event="join", member_id="wx-unknown")["changed"] is False
    out = Chat(client).say("wx-unknown", "下次保费什么时候交", at_bot=True)
    assert not any("CC2024000123" in r["text"] for r in out["replies"])
    with client.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        support = s.scalar(select(Circle).where(Circle.chat_id == "demo-support"))
        assert support is not None
        told = s.scalars(select(Message.text).where(Message.circle_id == support.id)).all()
    assert any("张老三" in t and "访客" in t for t in told)


def test_family_leave_and_come_back_in_their_own_seat(client: TestClient) -> None:
    assert event(client, event="leave", member_id="demo-son")["changed"] is True
    assert "demo-son" not in seats(client)
    assert event(client, event="join", member_id="demo-son")["role"] == "family"


def test_a_dismissed_group_archives_its_circle(client: TestClient) -> None:
    assert event(client, event="dismiss")["changed"] is True
    r = Chat(client).send("demo-customer", "你好", at_bot=True)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "CIRCLE_DISSOLVED"
    missing = client.post("/api/v1/events", json={"chat_id": "demo-family", "event": "join"})
    assert missing.status_code == 400


@pytest.fixture
def corp(tmp_path: Path, nlu: IntentEngine) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, demo=True, database_url=f"sqlite:///{tmp_path}/c.db",
        wecom_apps={"kf": {"token": TOKEN, "aes_key": DEMO_KEY, "corp_id": CORP,
                           "secret": "corp-secret"}},
        outbound_dispatch=False,
    )
    with TestClient(create_app(settings, nlu_engine=nlu)) as client:
        yield client


def wecom_change(client: TestClient, change: str, detail: str, members: list[str]) -> None:
    items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members)
    xml = (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]>"
           f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]>"
           "</MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA["
           f"demo-family]]></ChatId><ChangeType><![CDATA[{change}]]></ChangeType><UpdateDetail>"
           f"<![CDATA[{detail}]]></UpdateDetail><MemChangeCnt>{len(members)}</MemChangeCnt>"
           f"<MemChangeList>{items}</MemChangeList></xml>")
    query, body = safe_request(xml, token=TOKEN, key=DEMO_KEY, appid=CORP)
    r = client.post("/wecom/kf", params=query, content=body,
                    headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    assert r.text == "success"


def test_wecom_group_changes_follow_the_circle(corp: TestClient) -> None:
    wecom_change(corp, "update", "add_member", ["wm-stranger", "wm-other"])
    assert seats(corp)["wm-stranger"] == "guest"
    wecom_change(corp, "update", "del_member", ["wm-stranger"])
    assert "wm-stranger" not in seats(corp)
    assert seats(corp)["wm-other"] == "guest"
    wecom_change(corp, "dismiss", "", [])
    with corp.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        status = s.scalar(select(Circle.status).where(Circle.chat_id == "demo-family"))
    assert status == "archived"
