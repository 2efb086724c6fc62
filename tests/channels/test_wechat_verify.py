"""OA callback: verification, signatures, freshness, hostile XML and ciphertexts."""

from __future__ import annotations

import base64
import os
import socket
import time

import pytest
from fastapi.testclient import TestClient

from tests.channels.wx import (
    plain_request,
    safe_request,
    sign,
    signed_envelope,
    text_xml,
)


def test_g1_echostr_is_answered_exactly(wx: TestClient) -> None:
    query, _ = plain_request("", token="corecircle-demo-token")
    r = wx.get("/wechat/demo", params={**query, "echostr": "1234567890abc"})
    assert r.status_code == 200
    assert r.content == b"1234567890abc"
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("signature", [None, "0" * 40, "bad"])
def test_g2_bad_or_missing_signature_is_403_and_not_echoed(wx: TestClient,
                                                           signature: str | None) -> None:
    query, _ = plain_request("", token="corecircle-demo-token")
    query.pop("signature")
    if signature:
        query["signature"] = signature
    r = wx.get("/wechat/demo", params={**query, "echostr": "secret-echo"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_SIG_INVALID"
    assert "secret-echo" not in r.text


def test_g5_post_without_query_params_is_refused_with_a_code(wx: TestClient) -> None:
    r = wx.post("/wechat/plain", content=text_xml("你好").encode())
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_SIG_INVALID"


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_g6_stale_or_future_timestamp_is_refused(wx: TestClient, skew: int) -> None:
    query, body = plain_request(text_xml("你好"), ts=int(time.time()) + skew)
    r = wx.post("/wechat/plain", params=query, content=body)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_TS_STALE"


def test_unknown_app_is_404(wx: TestClient) -> None:
    query, body = plain_request(text_xml("你好"))
    assert wx.post("/wechat/nope", params=query, content=body).status_code == 404
    assert wx.get("/wechat/nope", params=query).json()["error"]["code"] == "WX_APP_UNKNOWN"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_g20_other_methods_are_405(wx: TestClient, method: str) -> None:
    assert wx.request(method, "/wechat/plain").status_code == 405


def test_g20_json_content_type_is_415(wx: TestClient) -> None:
    query, body = plain_request(text_xml("你好"))
    r = wx.post("/wechat/plain", params=query, content=body,
                headers={"Content-Type": "application/json"})
    assert r.status_code == 415


BILLION_LAUGHS = """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<xml><Content>&lol4;</Content></xml>"""


def test_p1_billion_laughs_is_400_fast(wx: TestClient) -> None:
    query, body = plain_request(BILLION_LAUGHS)
    started = time.perf_counter()
    r = wx.post("/wechat/plain", params=query, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_XML_INVALID"
    assert time.perf_counter() - started < 0.5  # TestClient overhead; the parse is ~0.1 ms


def test_p2_xxe_file_is_400_and_not_read(wx: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = open

    def spy(path: object, *a: object, **k: object) -> object:
        opened.append(str(path))
        return real_open(path, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", spy)
    xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           "<xml><ToUserName>a</ToUserName><Content>&xxe;</Content></xml>")
    query, body = plain_request(xxe)
    r = wx.post("/wechat/plain", params=query, content=body)
    assert r.status_code == 400
    assert "/etc/passwd" not in opened
    assert "root:" not in r.text


def test_p3_parameter_entity_never_connects(wx: TestClient) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    xxe = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/x">'
           "%p;]><xml><Content>a</Content></xml>")
    query, body = plain_request(xxe)
    try:
        assert wx.post("/wechat/plain", params=query, content=body).status_code == 400
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


@pytest.mark.parametrize("body", [
    b"", b"   ", b"hello", b'{"a": 1}', b"<xml><MsgType>text", b"<xml></xml>",
    b"<root><MsgType>text</MsgType></root>",
    b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
    b"</xml>",
    b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
    b"<MsgType>text</MsgType><MsgType>image</MsgType></xml>",
    b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
    b"<MsgType><x>text</x></MsgType></xml>",
    b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>abc</CreateTime>"
    b"<MsgType>text</MsgType><Content>x</Content></xml>",
    b"\xff\xfe<xml>bad utf8</xml>",
], ids=["empty", "blank", "hello", "json", "truncated", "empty-xml", "wrong-root",
        "no-msgtype", "dup-msgtype", "nested-msgtype", "createtime-abc", "bad-utf8"])
def test_p6_p7_bad_plain_bodies_are_400(wx: TestClient, body: bytes) -> None:
    query, raw = plain_request(body)
    r = wx.post("/wechat/plain", params=query, content=raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "WX_XML_INVALID"
    assert "Traceback" not in r.text


def test_g16_wrong_msg_signature_is_403(wx: TestClient) -> None:
    query, body = safe_request(text_xml("你好"))
    query["msg_signature"] = "f" * 40
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_SIG_INVALID"


def test_g16_wrong_appid_is_403(wx: TestClient) -> None:
    query, body = safe_request(text_xml("你好"), appid="wxsomeoneelse")
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "WX_APPID_MISMATCH"


def test_g16_wrong_key_is_400(wx: TestClient) -> None:
    other = base64.b64encode(os.urandom(32)).decode()[:43]
    query, body = safe_request(text_xml("你好"), key=other)
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_DECRYPT_FAILED"


@pytest.mark.parametrize("encrypt", [
    "", "not base64 !!!", base64.b64encode(b"x" * 20).decode(),
    base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(16)).decode(),
], ids=["empty", "not-base64", "not-multiple-of-16", "random-32", "random-16"])
def test_g17_hostile_ciphertexts_are_400(wx: TestClient, encrypt: str) -> None:
    query, body = signed_envelope(encrypt)
    r = wx.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "WX_DECRYPT_FAILED"


def test_g17_missing_encrypt_element_is_400(wx: TestClient) -> None:
    ts, nonce = str(int(time.time())), "n1"
    query = {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes",
             "msg_signature": sign("corecircle-demo-token", ts, nonce, "")}
    r = wx.post("/wechat/demo", params=query, content=b"<xml><ToUserName>a</ToUserName></xml>")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "WX_DECRYPT_FAILED"
