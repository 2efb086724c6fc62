"""OA messages end to end: safe-mode replies, dedupe, events, strangers, hostile reply text."""

from __future__ import annotations

import uuid

import pytest
import xmltodict
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.channels.xmlsafe import text_reply_xml
from storage.models import Message, Ticket
from tests.channels.wx import CUSTOMER, decrypt_reply, event_xml, safe_request, text_xml


def _count(client: TestClient, *where: object) -> int:
    with client.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        return int(s.scalar(select(func.count()).select_from(Message).where(*where)) or 0)


def _post(client: TestClient, xml: str, **kw: object) -> dict[str, str]:
    query, body = safe_request(xml, **kw)  # type: ignore[arg-type]
    r = client.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 200, r.text
    return decrypt_reply(r.text) if r.text != "success" else {}


def test_g15_safe_mode_message_is_processed_and_the_reply_encrypted(wx: TestClient) -> None:
    msg_id = str(uuid.uuid4().int % 10**16)
    reply = _post(wx, text_xml("下次保费什么时候交", msg_id=msg_id))
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == CUSTOMER
    assert "CC2024000123" in reply["Content"]  # the holder, privately: details allowed
    assert _count(wx, Message.channel == "wechat", Message.channel_msg_id == msg_id) == 1


def test_g7_replayed_request_is_answered_once(wx: TestClient) -> None:
    msg_id = str(uuid.uuid4().int % 10**16)
    query, body = safe_request(text_xml("保单什么时候到期", msg_id=msg_id))
    first = wx.post("/wechat/demo", params=query, content=body)
    again = wx.post("/wechat/demo", params=query, content=body)
    assert first.status_code == again.status_code == 200
    assert decrypt_reply(first.text)["Content"] == decrypt_reply(again.text)["Content"]
    assert _count(wx, Message.channel_msg_id == msg_id) == 1
    inbound_id = select(Message.id).where(Message.channel_msg_id == msg_id).scalar_subquery()
    replies = _count(wx, Message.reply_to_id == inbound_id)
    assert replies >= 1
    query2, body2 = safe_request(text_xml("保单什么时候到期", msg_id=msg_id))
    wx.post("/wechat/demo", params=query2, content=body2)  # a WeChat retry: new nonce
    assert _count(wx, Message.reply_to_id == inbound_id) == replies


def test_g10_same_event_twice_is_processed_once_and_welcomed(wx: TestClient) -> None:
    first = _post(wx, event_xml("subscribe", from_user="o-new-fan", create_time=1700000001))
    again = _post(wx, event_xml("subscribe", from_user="o-new-fan", create_time=1700000001))
    assert "欢迎关注" in first["Content"]
    assert again["Content"] == first["Content"]
    store = wx.app.state.services.state  # type: ignore[attr-defined]
    assert not store.add_once("wx:seen:wechat:gh_demo:ev:o-new-fan:1700000001:subscribe:", 60)


def test_g9_two_users_same_second_are_both_welcomed(wx: TestClient) -> None:
    a = _post(wx, event_xml("subscribe", from_user="o-a", create_time=1700000002))
    b = _post(wx, event_xml("subscribe", from_user="o-b", create_time=1700000002))
    assert "欢迎关注" in a["Content"]
    assert "欢迎关注" in b["Content"]


def test_following_by_qr_code_is_welcomed_like_any_follow(wx: TestClient) -> None:
    """A follow by scanning a QR code carries EventKey=qrscene_<scene>: still a welcome."""
    scan = _post(wx, event_xml("subscribe", from_user="o-scan", create_time=1700000005,
                               key="qrscene_agent-li-na"))
    assert "欢迎关注" in scan["Content"]


def test_unsubscribe_is_silent(wx: TestClient) -> None:
    query, body = safe_request(event_xml("unsubscribe", create_time=1700000003))
    assert wx.post("/wechat/demo", params=query, content=body).text == "success"


def test_unknown_sender_gets_onboarding_and_nothing_is_stored(wx: TestClient) -> None:
    before = _count(wx)
    reply = _post(wx, text_xml("我的保单号是多少", from_user="o-stranger"))
    assert "代理人" in reply["Content"]
    assert "CC20" not in reply["Content"]
    assert _count(wx) == before


def test_p9_control_character_inside_content_is_stripped(wx: TestClient) -> None:
    msg_id = str(uuid.uuid4().int % 10**16)
    reply = _post(wx, text_xml("你好\x1d，保单什么时候到期", msg_id=msg_id))
    assert reply["Content"]
    with wx.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        text = s.scalar(select(Message.text).where(Message.channel_msg_id == msg_id))
    assert text is not None
    assert "\x1d" not in text


@pytest.mark.parametrize("kind", ["image", "location", "link"])
def test_media_from_a_customer_is_acknowledged_and_kept(wx: TestClient, kind: str) -> None:
    msg_id = str(uuid.uuid4().int % 10**16)
    xml = (f"<xml><ToUserName>gh_demo</ToUserName><FromUserName>{CUSTOMER}</FromUserName>"
           f"<CreateTime>1700000000</CreateTime><MsgType>{kind}</MsgType>"
           f"<PicUrl>http://x/p.jpg</PicUrl><MsgId>{msg_id}</MsgId></xml>")
    first = _post(wx, xml)
    assert "李娜" in first["Content"]
    assert _post(wx, xml)["Content"] == first["Content"]
    assert _count(wx, Message.channel_msg_id == msg_id) == 1


@pytest.mark.parametrize("kind", ["device_text", "newfangled"])
def test_p11_unknown_message_type_gets_a_polite_fallback(wx: TestClient, kind: str) -> None:
    xml = (f"<xml><ToUserName>gh_demo</ToUserName><FromUserName>{CUSTOMER}</FromUserName>"
           f"<CreateTime>1700000000</CreateTime><MsgType>{kind}</MsgType>"
           f"<MsgId>{uuid.uuid4().int % 10**16}</MsgId></xml>")
    reply = _post(wx, xml)
    assert "文字" in reply["Content"]


def test_g12_engine_failure_is_200_with_holding_text_and_a_ticket(
    wx: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = wx.app.state.services.pipeline.engine  # type: ignore[attr-defined]

    def boom(*_: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(engine, "parse", boom)
    with wx.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        tickets = s.scalar(select(func.count()).select_from(Ticket))
    reply = _post(wx, text_xml("保单什么时候到期"))
    assert "小状况" in reply["Content"]
    with wx.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Ticket)) == (tickets or 0) + 1


def _render(text: str) -> dict[str, object]:
    xml = text_reply_xml(to_user="o-x", from_user="gh", text=text, create_time=1)
    return xmltodict.parse(xml)["xml"]  # type: ignore[no-any-return]


def test_g13_cdata_terminator_in_reply_cannot_inject(wx: TestClient) -> None:
    evil = "ok]]></Content><MsgType><![CDATA[image]]></MsgType><Content><![CDATA[x"
    parsed = _render(evil)
    assert parsed["MsgType"] == "text"
    assert parsed["Content"] == evil


def test_g14_control_characters_are_removed_from_replies(wx: TestClient) -> None:
    parsed = _render("a\x00b\x07c\x1dd\ne")
    assert parsed["Content"] == "abcd\ne"
