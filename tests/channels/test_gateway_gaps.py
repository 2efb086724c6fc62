"""Events (P11), hostile sizes and encodings (P4, P8), the WeCom AI bot's receiveid (G4),
replays (G7) and refused requests that must leave no trace."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from wechatpy.crypto import PrpCrypto as OAPrpCrypto
from wechatpy.enterprise.crypto import PrpCrypto as CorpPrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as CorpCrypto

from bot.nlu.engine import Parse
from storage.models import Base
from tests.channels.wx import (
    CUSTOMER,
    DEMO_APPID,
    DEMO_KEY,
    WECOM_CORP,
    WECOM_TOKEN,
    decrypt_reply,
    event_xml,
    plain_request,
    safe_request,
    sign,
    signed_envelope,
    text_xml,
)


def _svc(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app.state.services  # type: ignore[attr-defined]


def _rows_everywhere(client: TestClient) -> dict[str, int]:
    """Row count of every table: what a request stored, wherever it stored it."""
    with _svc(client).sessions() as s:
        return {t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in Base.metadata.sorted_tables}


def _unsupported(client: TestClient) -> str:
    svc = _svc(client)
    return str(svc.scripts.render("channel.unsupported",
                                  {"bot_name": svc.settings.bot_name}).text)


# -- P11: events ---------------------------------------------------------------------------
@pytest.mark.parametrize(("event", "key"), [
    ("CLICK", "MENU_POLICY"), ("SCAN", "123"), ("scancode_waitmsg", "scan-1"),
    ("brand_new_event_2027", ""),
])
def test_p11_events_the_customer_triggered_get_the_polite_fallback(
    wx: TestClient, event: str, key: str
) -> None:
    before = _rows_everywhere(wx)
    created = int(time.time()) - uuid.uuid4().int % 100  # distinct per run: a new event
    query, body = safe_request(event_xml(event, create_time=created, key=key))
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 200
    reply = decrypt_reply(r.text)
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == CUSTOMER
    assert reply["Content"] == _unsupported(wx)
    query, body = safe_request(event_xml(event, create_time=created, key=key))  # WeChat retry
    assert decrypt_reply(wx.post("/wechat/demo", params=query, content=body).text)[
        "Content"] == reply["Content"]
    assert _rows_everywhere(wx) == before  # an event stores nothing


@pytest.mark.parametrize("event", [
    "VIEW", "LOCATION", "unsubscribe", "TEMPLATESENDJOBFINISH", "pic_sysphoto",
    "location_select", "scancode_push", "subscribe_msg_popup_event",
])
def test_p11_events_that_mean_nothing_to_a_customer_answer_success(wx: TestClient,
                                                                   event: str) -> None:
    query, body = safe_request(event_xml(event, create_time=1700000100, key="https://x/y"))
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 200
    assert r.text == "success"


def test_p11_device_event_gets_the_polite_fallback(wx: TestClient) -> None:
    xml = (f"<xml><ToUserName>gh_demo</ToUserName><FromUserName>{CUSTOMER}</FromUserName>"
           "<CreateTime>1700000200</CreateTime><MsgType>device_event</MsgType>"
           "<Event>bind</Event><DeviceType>gh_x</DeviceType><DeviceID>dev1</DeviceID>"
           "<SessionID>0</SessionID><OpenID>o-demo-customer</OpenID></xml>")
    query, body = safe_request(xml)
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 200
    assert decrypt_reply(r.text)["Content"] == _unsupported(wx)


# -- P4, P8: sizes and encodings -----------------------------------------------------------
def _quadratic(entity_chars: int, refs: int) -> str:
    return (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "{"A" * entity_chars}">]>'
            f"<xml><ToUserName>a</ToUserName><Content>{'&a;' * refs}</Content></xml>")


def test_p4_quadratic_blowup_over_the_cap_is_413(wx: TestClient) -> None:
    xml = _quadratic(100_000, 20_000)  # 160 KB on the wire, 2 GB if expanded
    assert len(xml) > 150_000
    query, body = plain_request(xml)
    r = wx.post("/wechat/plain", params=query, content=body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "BODY_TOO_LARGE"


def test_p4_quadratic_blowup_under_the_cap_is_400_fast(wx: TestClient) -> None:
    xml = _quadratic(30_000, 10_000)  # 60 KB: under the cap, 300 MB if expanded
    query, body = plain_request(xml)
    started = time.perf_counter()
    r = wx.post("/wechat/plain", params=query, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_XML_INVALID"
    assert time.perf_counter() - started < 0.5


GBK_XML = ('<?xml version="1.0" encoding="GBK"?><xml><ToUserName>gh_demo</ToUserName>'
           f"<FromUserName>{CUSTOMER}</FromUserName><CreateTime>1700000300</CreateTime>"
           "<MsgType>text</MsgType><Content>保单什么时候到期</Content><MsgId>88001</MsgId></xml>")


@pytest.mark.parametrize("content_type", ["text/xml", "text/xml; charset=GBK"])
def test_p8_gbk_body_is_400(wx: TestClient, content_type: str) -> None:
    query, body = plain_request(GBK_XML.encode("gbk"))
    r = wx.post("/wechat/plain", params=query, content=body,
                headers={"Content-Type": content_type})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_XML_INVALID"
    assert "Traceback" not in r.text


def test_p8_gbk_inside_the_ciphertext_is_400(wx: TestClient) -> None:
    crypto = OAPrpCrypto(base64.b64decode(DEMO_KEY + "="))
    encrypt = crypto.encrypt(GBK_XML.encode("gbk"), DEMO_APPID)
    query, body = signed_envelope(encrypt.decode())
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_DECRYPT_FAILED"


def test_p8_gbk_envelope_is_400(wx: TestClient) -> None:
    query, body = safe_request(text_xml("你好"))
    body = body.replace(b"<xml>", '<xml><Note>保单</Note>'.encode("gbk"), 1)
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_XML_INVALID"


# -- G4: the WeCom AI bot's receiveid '' ----------------------------------------------------
def _echo(receiveid: str) -> dict[str, str]:
    key = CorpCrypto(WECOM_TOKEN, DEMO_KEY, WECOM_CORP).key
    echostr = CorpPrpCrypto(key).encrypt("echo-g4", receiveid).decode()
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
    return {"msg_signature": sign(WECOM_TOKEN, ts, nonce, echostr), "timestamp": ts,
            "nonce": nonce, "echostr": echostr}


def test_g4_ai_bot_verify_with_empty_receiveid_works(wx: TestClient) -> None:
    r = wx.get("/wecom/aibot", params=_echo(""))
    assert r.status_code == 200
    assert r.text == "echo-g4"


def test_g4_corp_app_verify_with_its_corpid_works(wx: TestClient) -> None:
    r = wx.get("/wecom/corp", params=_echo(WECOM_CORP))
    assert r.status_code == 200
    assert r.text == "echo-g4"


@pytest.mark.parametrize("receiveid", ["", "wwsomeoneelse"])
def test_g4_receiveid_mismatch_with_the_configured_corpid_is_403(wx: TestClient,
                                                                 receiveid: str) -> None:
    r = wx.get("/wecom/corp", params=_echo(receiveid))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_APPID_MISMATCH"
    assert "echo-g4" not in r.text


def test_g4_ai_bot_refuses_a_corp_ciphertext(wx: TestClient) -> None:
    r = wx.get("/wecom/aibot", params=_echo(WECOM_CORP))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_APPID_MISMATCH"


# -- G7: replays -----------------------------------------------------------------------------
def test_g7_replayed_request_has_its_business_effect_once(
    wx: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _svc(wx).pipeline.engine
    runs: list[str] = []
    real_parse: Callable[[str, datetime], Parse] = engine.parse

    def counting(text: str, now: datetime) -> Parse:
        runs.append(text)
        return real_parse(text, now)

    monkeypatch.setattr(engine, "parse", counting)
    query, body = safe_request(text_xml("我要投诉，理赔拖了两个月还没到账",
                                        msg_id=str(uuid.uuid4().int % 10**16)))
    before = _rows_everywhere(wx)
    first = wx.post("/wechat/demo", params=query, content=body)
    after_first = _rows_everywhere(wx)
    assert after_first != before  # the first delivery did something (message, reply, ...)
    for _ in range(3):  # the very same signed request, nonce and all
        again = wx.post("/wechat/demo", params=query, content=body)
        assert again.status_code == 200
        # answered from the first result: a retry after a lost answer still reaches them
        assert decrypt_reply(again.text)["Content"] == decrypt_reply(first.text)["Content"]
    assert len(runs) == 1  # understood once
    assert _rows_everywhere(wx) == after_first  # nothing more stored: no ticket, no reply


# -- refused requests leave nothing behind ---------------------------------------------------
def _refused(kind: str) -> tuple[str, dict[str, str], bytes, dict[str, str]]:
    xml = text_xml("保单什么时候到期")
    headers = {"Content-Type": "text/xml"}
    if kind == "bad-signature":
        query, body = plain_request(xml)
        query["signature"] = "0" * 40
        return "/wechat/plain", query, body, headers
    if kind == "stale":
        return ("/wechat/plain", *plain_request(xml, ts=int(time.time()) - 3600), headers)
    if kind == "wrong-appid":
        return ("/wechat/demo", *safe_request(xml, appid="wxsomeoneelse"), headers)
    if kind == "wrong-key":
        other = base64.b64encode(os.urandom(32)).decode()[:43]
        return ("/wechat/demo", *safe_request(xml, key=other), headers)
    if kind == "bad-xml":
        return ("/wechat/plain", *plain_request("<xml><MsgType>text"), headers)
    if kind == "gbk":
        return ("/wechat/plain", *plain_request(GBK_XML.encode("gbk")), headers)
    if kind == "too-large":
        return ("/wechat/plain", *plain_request(xml + " " * 70_000), headers)
    if kind == "json":
        return ("/wechat/plain", *plain_request(xml), {"Content-Type": "application/json"})
    if kind == "mode":  # a plain request to the safe-mode app
        return ("/wechat/demo", *plain_request(xml, token="corecircle-demo-token"), headers)
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "status"), [
    ("bad-signature", 403), ("stale", 403), ("wrong-appid", 403), ("wrong-key", 400),
    ("bad-xml", 400), ("gbk", 400), ("too-large", 413), ("json", 415), ("mode", 400),
])
def test_refused_requests_store_nothing(wx: TestClient, kind: str, status: int) -> None:
    path, query, body, headers = _refused(kind)
    before = _rows_everywhere(wx)
    r = wx.post(path, params=query, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"]
    assert _rows_everywhere(wx) == before
    app = path.rsplit("/", 1)[1]  # not even the nonce is remembered
    assert _svc(wx).state.add_once(
        f"wx:nonce:wechat:{app}:{query['timestamp']}:{query['nonce']}", 1)
