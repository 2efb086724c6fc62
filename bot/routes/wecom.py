"""WeCom callback: GET (encrypted echostr) and POST /wecom/{app}, including 微信客服 events."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.channels.wxcrypto import check_fresh, decrypt, envelope_cipher, verify
from bot.channels.wxmessage import parse
from bot.channels.xmlsafe import text_reply_xml
from bot.group_events import wecom_chat_change
from bot.http import ServicesDep
from bot.routes.wechat import SUCCESS, find_app, remember_nonce, require_xml, xml_response
from storage.errors import BadRequest

router = APIRouter(tags=["channels"])
log = logging.getLogger(__name__)

Q = Annotated[str | None, Query()]


@router.get("/wecom/{app}", response_class=PlainTextResponse)
def verify_url(app: str, svc: ServicesDep, *, msg_signature: Q = None, timestamp: Q = None,
               nonce: Q = None, echostr: Q = None) -> PlainTextResponse:
    """URL verification: decrypt echostr (signed with it) and answer its plaintext."""
    cfg = find_app(svc.channels.apps.wecom, app, "WeCom")
    verify(msg_signature, cfg.token, timestamp, nonce, echostr, what="msg_signature")
    check_fresh(timestamp or "", svc.settings.wechat_ts_window)
    if not echostr:
        raise BadRequest("echostr missing", code="WX_ECHOSTR_MISSING")
    return PlainTextResponse(decrypt(cfg, echostr, corp=True))


@router.post("/wecom/{app}")
async def callback(request: Request, app: str, svc: ServicesDep, *, msg_signature: Q = None,
                   timestamp: Q = None, nonce: Q = None) -> Response:
    """An app message (passive reply when in time) or a kf_msg_or_event (pull, then ack)."""
    cfg = find_app(svc.channels.apps.wecom, app, "WeCom")
    require_xml(request)
    cipher = envelope_cipher(cfg, await request.body(), msg_signature=msg_signature,
                             timestamp=timestamp or "", nonce=nonce or "")
    check_fresh(timestamp or "", svc.settings.wechat_ts_window)
    wx = parse(decrypt(cfg, cipher, corp=True))
    remember_nonce(svc, f"wecom:{app}", timestamp or "", nonce or "")
    if wx.kind == "event" and wx.event == "change_external_chat":
        await run_in_threadpool(wecom_chat_change, svc, wx)
        return PlainTextResponse(SUCCESS)
    if wx.kind == "event" and wx.event == "kf_msg_or_event":
        svc.channels.pull_kf(app, wx.open_kfid, wx.kf_token)
        return PlainTextResponse(SUCCESS)
    text = await svc.channels.gateway.answer(wx, channel="wecom", identities=["wecom"])
    if text is None:
        return PlainTextResponse(SUCCESS)
    reply = text_reply_xml(to_user=wx.from_user, from_user=wx.to_user, text=text,
                           create_time=int(time.time()))
    return xml_response(cfg, reply, encrypted=True)
