"""One parsed WeChat/WeCom message: the fields we use, read eagerly so bad ones fail here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import xmltodict

from bot.channels.wxcrypto import PARSE_ERRORS, xml_invalid
from storage.text import strip_controls

TEXT_KINDS = frozenset({"text", "voice"})
MEDIA_KINDS = frozenset({"image", "location", "link", "video", "shortvideo", "file"})


@dataclass(frozen=True)
class WxMessage:
    kind: str  # text, voice, image, location, link, event, or whatever WeChat invents next
    from_user: str
    to_user: str
    create_time: int
    msg_id: str | None
    text: str  # Content, or the voice Recognition; "" otherwise
    event: str = ""
    event_key: str = ""
    detail: str = ""  # PicUrl, Url or Label: kept for the agent
    open_kfid: str = ""  # WeCom kf_msg_or_event
    kf_token: str = ""
    # WeCom change_external_chat (客户群变更): the group, what changed, who joined or left
    chat_id: str = ""
    change_type: str = ""  # create | update | dismiss
    update_detail: str = ""  # add_member | del_member | change_owner | change_name ...
    changed_members: tuple[str, ...] = ()

    @property
    def dedupe_key(self) -> str:
        """MsgId, or for events (MsgId absent; wechatpy's id is 0) the documented tuple."""
        if self.msg_id:
            return self.msg_id
        return f"ev:{self.from_user}:{self.create_time}:{self.event}:{self.event_key}"


def _str(data: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise KeyError(key)
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a single text element")
    return strip_controls(value)


def _member_list(value: Any) -> tuple[str, ...]:
    """MemChangeList: `<Item>id</Item>...` (one or several), or the older "id1,id2" text."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(strip_controls(v.strip()) for v in value.split(",") if v.strip())
    if isinstance(value, dict):
        items = value.get("Item")
        if isinstance(items, str):
            items = [items]
        if isinstance(items, list):
            return tuple(strip_controls(v) for v in items if isinstance(v, str) and v)
    raise TypeError("MemChangeList is neither items nor text")


LATEST_CREATE_TIME = 4_102_444_800  # 2100-01-01 UTC: later is a broken clock or a forgery


def parse(xml: str) -> WxMessage:
    """Parse decrypted/plain XML; every failure becomes 400 WX_XML_INVALID.

    We read the XML as WeChat sent it (xmltodict, entities disabled, as wechatpy does) rather
    than through wechatpy's message classes, which rewrite some events: a follow by scanning a
    QR code arrives as Event=subscribe with EventKey=qrscene_..., and wechatpy renames it
    `subscribe_scan`. WeCom and the OA share the fields we read."""
    try:
        if not xml:
            raise ValueError("empty message")
        data = xmltodict.parse(strip_controls(xml))["xml"]
        if not isinstance(data, dict):
            raise TypeError("<xml> holds no elements")
        kind = _str(data, "MsgType", required=True).lower()
        msg_id = _str(data, "MsgId") or _str(data, "MsgID")
        try:
            create_time = int(_str(data, "CreateTime", required=True))
        except ValueError as exc:
            raise ValueError("CreateTime is not a number") from exc
        if not 0 <= create_time < LATEST_CREATE_TIME:
            raise ValueError("CreateTime is outside 1970-2099")
        text = _str(data, "Recognition") if kind == "voice" else _str(data, "Content")
        return WxMessage(
            kind=kind,
            from_user=_str(data, "FromUserName", required=True),
            to_user=_str(data, "ToUserName", required=True),
            create_time=create_time,
            msg_id=msg_id if msg_id and msg_id != "0" else None,
            text=text,
            event=_str(data, "Event").lower(),
            event_key=_str(data, "EventKey"),
            detail=_str(data, "PicUrl") or _str(data, "Url") or _str(data, "Label"),
            open_kfid=_str(data, "OpenKfId"),
            kf_token=_str(data, "Token"),
            chat_id=_str(data, "ChatId"),
            change_type=_str(data, "ChangeType").lower(),
            update_detail=_str(data, "UpdateDetail").lower(),
            changed_members=_member_list(data.get("MemChangeList")),
        )
    except PARSE_ERRORS as exc:
        raise xml_invalid(type(exc).__name__) from exc
