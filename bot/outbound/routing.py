"""Which sender carries an outbox row, and to whom: OpenID, kf external id, or the group route."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.outbound.sender import Sender
from storage.models import ChannelCursor, Circle, MemberIdentity, Message

KF_OPEN = "wecom-kf-open"  # ChannelCursor channel: external_userid -> "app|open_kfid"


@dataclass(frozen=True)
class Route:
    sender: Sender
    to: str | None  # the channel user id, None for the group
    circle: str | None
    member_id: str | None  # our member (quota checks)
    quota: str  # "oa" | "kf" | "robot" | "none"
    limit_key: str | None = None  # rolling rate limit key (group robot)


@dataclass
class Router:
    oa: dict[str, Sender]  # app name -> sender
    default_oa: str | None
    kf: dict[str, Sender]  # wecom app name -> kf sender
    groups: dict[str, tuple[str, Sender]]  # chat_id -> (kind, sender)

    def route(self, s: Session, row: Message) -> Route | None:
        circle = s.get(Circle, row.circle_id) if row.circle_id else None
        chat_id = circle.chat_id if circle else None
        member = row.recipient_id
        if member is None and row.channel in ("wechat", "wecom") and row.reply_to_id:
            # An OA/kf conversation is 1:1: "the group" is the person who wrote.
            member = s.scalar(select(Message.sender_id).where(Message.id == row.reply_to_id))
        if row.channel == "wechat" and member:
            return self._oa(s, member, chat_id)
        if row.channel == "wecom" and member:
            return self._kf(s, member, chat_id)
        group = self.groups.get(chat_id or "")
        if group is None:
            return None
        kind, sender = group
        key = hashlib.sha1(f"{kind}:{chat_id}".encode()).hexdigest()[:16]  # noqa: S324
        return Route(sender, row.recipient_id, chat_id, None, kind,
                     key if kind == "robot" else None)

    def _identity(self, s: Session, member: str, channels: list[str]) -> tuple[str, str] | None:
        row = s.execute(
            select(MemberIdentity.channel, MemberIdentity.channel_user_id).where(
                MemberIdentity.member_id == member, MemberIdentity.channel.in_(channels)
            ).order_by(MemberIdentity.id).limit(1)
        ).first()
        return (row[0], row[1]) if row else None

    def _oa(self, s: Session, member: str, chat_id: str | None) -> Route | None:
        channels = [f"wechat:{name}" for name in self.oa] + ["wechat"]
        found = self._identity(s, member, channels)
        if found is None:
            return None
        channel, openid = found
        app = channel.split(":", 1)[1] if ":" in channel else self.default_oa
        sender = self.oa.get(app or "")
        return Route(sender, openid, chat_id, member, "oa") if sender else None

    def _kf(self, s: Session, member: str, chat_id: str | None) -> Route | None:
        found = self._identity(s, member, ["wecom-kf", "wecom"])
        if found is None:
            return None
        ext = found[1]
        where = s.scalar(select(ChannelCursor.value).where(
            ChannelCursor.channel == KF_OPEN, ChannelCursor.key == ext))
        app = (where or "").split("|", 1)[0]
        sender = self.kf.get(app)
        return Route(sender, ext, chat_id, member, "kf") if sender else None


def open_kfid_lookup(sessions: Callable[[], Session]) -> Callable[[str], str | None]:
    """external_userid -> the kf account they last wrote to (recorded by the kf sync)."""

    def lookup(external_userid: str) -> str | None:
        with sessions() as s:
            value = s.scalar(select(ChannelCursor.value).where(
                ChannelCursor.channel == KF_OPEN, ChannelCursor.key == external_userid))
        return value.split("|", 1)[1] if value and "|" in value else None

    return lookup
