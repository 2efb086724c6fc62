"""Build callbacks exactly as WeChat/WeCom send them, with wechatpy's own crypto."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import xmltodict
from wechatpy.crypto import WeChatCrypto

DEMO_TOKEN = "corecircle-demo-token"
DEMO_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DEMO_APPID = "wxcorecircledemo0"
CUSTOMER = "o-demo-customer"
PLAIN_APP = {"plain": {"token": "plain-token", "mode": "plain"}}
WECOM_CORP, WECOM_TOKEN = "wwcorecircle", "wecom-token"
WECOM_APPS = {
    "corp": {"token": WECOM_TOKEN, "aes_key": DEMO_KEY, "corp_id": WECOM_CORP},
    "aibot": {"token": WECOM_TOKEN, "aes_key": DEMO_KEY, "corp_id": ""},  # receiveid ''
}


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def text_xml(content: str, *, from_user: str = CUSTOMER, msg_id: str | None = None,
             create_time: int | None = None) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_demo]]></ToUserName>"
        f"<FromUserName><![CDATA[{from_user}]]></FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id or uuid.uuid4().int % 10**16}</MsgId></xml>"
    )


def event_xml(event: str, *, from_user: str = CUSTOMER, create_time: int = 1700000000,
              key: str = "") -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_demo]]></ToUserName>"
        f"<FromUserName><![CDATA[{from_user}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>"
    )


def plain_request(xml: str | bytes, *, token: str = "plain-token", ts: int | None = None,
                  nonce: str | None = None) -> tuple[dict[str, str], bytes]:
    ts_s, nonce = str(ts or int(time.time())), nonce or uuid.uuid4().hex[:10]
    query = {"signature": sign(token, ts_s, nonce), "timestamp": ts_s, "nonce": nonce}
    return query, xml.encode() if isinstance(xml, str) else xml


def safe_request(xml: str, *, token: str = DEMO_TOKEN, key: str = DEMO_KEY,
                 appid: str = DEMO_APPID, ts: int | None = None,
                 nonce: str | None = None) -> tuple[dict[str, str], bytes]:
    """Encrypt as WeChat does (WeChatCrypto.encrypt_message) and sign the URL."""
    ts_s, nonce = str(ts or int(time.time())), nonce or uuid.uuid4().hex[:10]
    envelope = WeChatCrypto(token, key, appid).encrypt_message(xml, nonce, ts_s)
    encrypt = xmltodict.parse(envelope)["xml"]["Encrypt"]
    query = {"signature": sign(token, ts_s, nonce), "timestamp": ts_s, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": sign(token, ts_s, nonce, encrypt)}
    return query, envelope.encode()


def signed_envelope(encrypt: str, *, token: str = DEMO_TOKEN) -> tuple[dict[str, str], bytes]:
    """An envelope around any Encrypt value, correctly signed (for hostile ciphertexts)."""
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    query = {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes",
             "msg_signature": sign(token, ts, nonce, encrypt)}
    return query, body.encode()


def decrypt_reply(body: str, *, token: str = DEMO_TOKEN, key: str = DEMO_KEY,
                  appid: str = DEMO_APPID) -> dict[str, Any]:
    """Our own decrypt_message of the encrypted passive reply must round-trip."""
    env = xmltodict.parse(body)["xml"]
    crypto = WeChatCrypto(token, key, appid)
    plain = crypto.decrypt_message(body, env["MsgSignature"], env["TimeStamp"], env["Nonce"])
    return dict(xmltodict.parse(plain)["xml"])
