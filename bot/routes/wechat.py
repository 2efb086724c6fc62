"""WeChat Official Account callback: GET (echostr) and POST /wechat/{app}, plain and safe mode."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from bot.channels.config import ChannelApp, Mode
from bot.channels.wxcrypto import (
    check_fresh,
    decrypt,
    envelope_cipher,
    seal,
    verify,
)
from bot.channels.wxmessage import parse
from bot.channels.xmlsafe import strip_control_bytes, text_reply_xml
from bot.http import ServicesDep
from bot.services import Services
from storage.errors import AppError, BadRequest, NotFound
from storage.state import StateUnavailable

router = APIRouter(tags=["channels"])
log = logging.getLogger(__name__)

Q = Annotated[str | None, Query()]
SUCCESS = "success"  # WeChat's "received, no passive reply"


def find_app(apps: dict[str, ChannelApp], name: str, kind: str) -> ChannelApp:
    app = apps.get(name)
    if app is None:
        raise NotFound(f"no {kind} app {name!r} is configured", code="WX_APP_UNKNOWN")
    return app


def require_xml(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and "xml" not in ctype and ctype != "text/plain":
        raise AppError(f"content type {ctype} is not XML", code="WX_CONTENT_TYPE", status=415)


def remember_nonce(svc: Services, scope: str, timestamp: str, nonce: str) -> None:
    """Nonces live for the window; a replay is answered from dedupe, never processed twice."""
    try:
        fresh = svc.state.add_once(f"wx:nonce:{scope}:{timestamp}:{nonce}",
                                   2 * svc.settings.wechat_ts_window)
    except StateUnavailable:
        return
    if not fresh:
        log.info("replayed nonce on %s: answering from dedupe", scope)


def xml_response(app: ChannelApp, xml: str, *, encrypted: bool) -> Response:
    if encrypted:
        xml = seal(app, xml, secrets.token_hex(8), str(int(time.time())))
    return Response(xml, media_type="application/xml")


@router.get("/wechat/{app}", response_class=PlainTextResponse)
def verify_url(app: str, svc: ServicesDep, *, signature: Q = None, timestamp: Q = None,
               nonce: Q = None, echostr: Q = None) -> PlainTextResponse:
    """URL verification: the body is exactly the echostr, and only for a valid signature."""
    cfg = find_app(svc.channels.apps.wechat, app, "WeChat")
    verify(signature, cfg.token, timestamp, nonce)
    check_fresh(timestamp or "", svc.settings.wechat_ts_window)
    if not echostr:
        raise BadRequest("echostr missing", code="WX_ECHOSTR_MISSING")
    return PlainTextResponse(echostr)


@router.post("/wechat/{app}")
async def callback(request: Request, app: str, svc: ServicesDep, *, signature: Q = None,
                   timestamp: Q = None, nonce: Q = None, encrypt_type: Q = None,
                   msg_signature: Q = None) -> Response:
    """One message or event; the passive reply when the pipeline answers in time."""
    cfg = find_app(svc.channels.apps.wechat, app, "WeChat")
    require_xml(request)
    body = await request.body()
    encrypted = (encrypt_type or "").lower() == "aes"
    if encrypted != (cfg.mode == Mode.SAFE) and cfg.mode != Mode.COMPAT:
        raise BadRequest(f"app {app!r} runs in {cfg.mode} mode", code="WX_MODE_MISMATCH")
    if encrypted:
        cipher = envelope_cipher(cfg, body, msg_signature=msg_signature,
                                 timestamp=timestamp or "", nonce=nonce or "")
        check_fresh(timestamp or "", svc.settings.wechat_ts_window)
        xml = decrypt(cfg, cipher)
    else:
        verify(signature, cfg.token, timestamp, nonce)
        check_fresh(timestamp or "", svc.settings.wechat_ts_window)
        if not body.strip():
            raise BadRequest("empty body", code="WX_XML_INVALID")
        try:
            xml = strip_control_bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("body is not UTF-8", code="WX_XML_INVALID") from exc
    wx = parse(xml)
    remember_nonce(svc, f"wechat:{app}", timestamp or "", nonce or "")
    identities = [f"wechat:{app}"]
    if svc.channels.apps.default_wechat == app:
        identities.append("wechat")
    text = await svc.channels.gateway.answer(wx, channel="wechat", identities=identities)
    if text is None:
        return PlainTextResponse(SUCCESS)
    reply = text_reply_xml(to_user=wx.from_user, from_user=wx.to_user, text=text,
                           create_time=int(time.time()))
    return xml_response(cfg, reply, encrypted=encrypted)
