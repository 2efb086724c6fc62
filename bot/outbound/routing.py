"""Which sender carries an outbox row, and to whom: OpenID, kf external id, or the group route.

A row addressed to one member (`recipient_id` set) travels only by a route that reaches that
member alone: OA 客服 (identity `wechat`), 微信客服 (`wecom-kf`), a WeCom app message to a corp
member (`wecom-user`, when the app has an AgentId), or a group bridge that declares 1:1
delivery (kind `bridge`, e.g. the web chat page's private panel). A group robot or a plain
group webhook posts to everyone, so it never carries one; with no 1:1 route the row is
`Unreachable` and the dispatcher holds it. The one exception is a support circle: it holds
only staff, so a note for one of them may go to that group when nothing else reaches them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.outbound.quota import service_window
from bot.outbound.sender import Sender
from storage.enums import CircleKind
from storage.models import ChannelCursor, Circle, MemberIdentity, Message

KF_OPEN = "wecom-kf-open"  # ChannelCursor channel: external_userid -> "app|open_kfid"
# Group route kinds: what the endpoint at the URL does with a message.
ROBOT = "robot"  # WeCom group robot: posts to the whole group, has no notion of a recipient
WEBHOOK = "webhook"  # a bridge that posts to the whole group
BRIDGE = "bridge"  # a bridge that delivers a message with `to` to that member alone
ROUTE_KINDS = frozenset({ROBOT, WEBHOOK, BRIDGE})
PRIVATE_KINDS = frozenset({BRIDGE})
WINDOW_CHANNELS = {"oa": "wechat", "kf": "wecom"}  # 1:1 routes open 48 h after a message


@dataclass(frozen=True)
class Route:
    sender: Sender
    to: str | None  # the channel user id, None for the group
    circle: str | None
    member_id: str | None  # our member (quota checks)
    quota: str  # "oa" | "kf" | "app" | "robot" | "webhook" | "bridge"
    limit_key: str | None = None  # rolling rate limit key (group robot)


@dataclass(frozen=True)
class Unreachable:
    """Addressed to one member, and no route reaches them alone: hold it, never the group."""

    member_id: str


@dataclass
class Router:
    oa: dict[str, Sender]  # app name -> sender
    default_oa: str | None
    kf: dict[str, Sender]  # wecom app name -> kf sender
    groups: dict[str, tuple[str, Sender]]  # chat_id -> (kind, sender)
    apps: dict[str, Sender] = field(default_factory=dict)  # wecom app -> app-message sender

    def route(self, s: Session, row: Message,
              now: datetime | None = None) -> Route | Unreachable | None:
        """How this row goes; None when its circle has no group route (yet)."""
        circle = s.get(Circle, row.circle_id) if row.circle_id else None
        chat_id = circle.chat_id if circle else None
        writer = None
        if row.channel in ("wechat", "wecom") and row.reply_to_id:
            # An OA/kf conversation is 1:1: "the group" is the person who wrote.
            writer = s.scalar(select(Message.sender_id).where(Message.id == row.reply_to_id))
        member = row.recipient_id or writer
        if member:
            found = self.private(s, row.channel, member, chat_id, now,
                                 conversation=member == writer)
            if found is not None:
                return found
            if row.recipient_id is None:
                return None  # the OA/kf user is not bound (yet): nothing else may carry it
            if circle is None or circle.kind != CircleKind.SUPPORT:
                return Unreachable(member)
        return self._group(chat_id, row.recipient_id)

    def private(self, s: Session, channel: str, member: str, chat_id: str | None,
                now: datetime | None = None, *, conversation: bool = False) -> Route | None:
        """A route that reaches `member` alone: the row's own channel first, then any.

        OA 客服 and 微信客服 may write only within 48 h of the member's last message there: for
        anything but the member's own OA/kf conversation (`conversation`, where the window
        ladder of the dispatcher decides), a closed window means that way is not open, and
        the next is tried."""
        native = {"wechat": self._oa, "wecom": self._kf}.get(channel, self._bridge)
        for way in (native, self._oa, self._kf, self._app, self._bridge):
            found = way(s, member, chat_id)
            if found is None:
                continue
            own = WINDOW_CHANNELS.get(found.quota)
            if own is None or (conversation and own == channel) or now is None or service_window(
                    s, member_id=member, channel=own, now=now, max_sends=None) is None:
                return found
        return None

    def _group(self, chat_id: str | None, to: str | None) -> Route | None:
        group = self.groups.get(chat_id or "")
        if group is None:
            return None
        kind, sender = group
        key = hashlib.sha1(f"{kind}:{chat_id}".encode()).hexdigest()[:16]  # noqa: S324
        return Route(sender, to, chat_id, None, kind, key if kind == ROBOT else None)

    def _bridge(self, s: Session, member: str, chat_id: str | None) -> Route | None:
        group = self.groups.get(chat_id or "")
        if group is None or group[0] not in PRIVATE_KINDS:
            return None
        return Route(group[1], member, chat_id, member, group[0])

    def _app(self, s: Session, member: str, chat_id: str | None) -> Route | None:
        """A WeCom app message: identity `wecom-user:<app>` (or `wecom-user`, the first app)."""
        if not self.apps:
            return None
        channels = [f"wecom-user:{name}" for name in self.apps] + ["wecom-user"]
        found = self._identity(s, member, channels)
        if found is None:
            return None
        channel, userid = found
        app = channel.split(":", 1)[1] if ":" in channel else next(iter(self.apps))
        sender = self.apps.get(app)
        return Route(sender, userid, chat_id, member, "app") if sender else None

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
