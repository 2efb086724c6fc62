"""From one verified WeChat/WeCom message to the text of the passive reply (or none).

Thin and symmetric: WxMessage -> InboundMessage -> pipeline -> the replies
for this user. Unknown senders get the onboarding script and nothing is stored about anyone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels import inbound
from bot.channels.race import handle_within, late_key
from bot.channels.wxmessage import MEDIA_KINDS, TEXT_KINDS, WxMessage
from bot.messages import InboundMessage, Outcome
from bot.pipeline import Pipeline
from bot.settings import Settings
from escalation.notify import display_name
from storage.db import transaction
from storage.scripts import ScriptLibrary
from storage.state import StateStore, StateUnavailable

log = logging.getLogger(__name__)

SEEN_TTL = 2 * 24 * 3600.0  # WeChat retries within 15 s; events are remembered for two days
PASSIVE_MAX_BYTES = 2048  # longer answers go through the outbox, split into parts

# Events answered "success" and nothing else: the customer did not ask us anything.
SILENT_EVENTS = frozenset({
    "unsubscribe",
    "view", "view_miniprogram",  # a menu link opened: the customer has already left for it
    "location",  # the periodic location report (LOCATION), not a message
    "scancode_push",  # the WeChat client already shows what was scanned
    # the picture/location pickers: the picture or location follows as a message of its own,
    # which is answered there
    "pic_sysphoto", "pic_photo_or_album", "pic_weixin", "location_select",
    # delivery receipts and platform bookkeeping
    "templatesendjobfinish", "masssendjobfinish", "subscribe_msg_popup_event",
    "subscribe_msg_change_event", "subscribe_msg_sent_event",
    "kf_create_session", "kf_close_session", "kf_switch_session",
    # WeCom: entering the app, contact and directory changes, job results
    "enter_agent", "change_contact", "change_external_contact", "change_external_chat",
    "batch_job_result", "kf_msg_or_event",
})


@dataclass
class Gateway:
    sessions: sessionmaker[Session]
    state: StateStore
    scripts: ScriptLibrary
    pipeline: Pipeline
    settings: Settings
    executor: Executor

    async def answer(self, wx: WxMessage, *, channel: str,
                     identities: Sequence[str]) -> str | None:
        """The passive reply text for this message, or None to answer "success"."""
        if wx.kind == "event":
            return self._event(wx, channel)
        with transaction(self.sessions) as s:
            bound = inbound.resolve_sender(s, identities, wx.from_user)
            agent = display_name(s, bound.agent_id if bound else None,
                                 self.scripts.default("agent_name"))
        if bound is None:
            return self._once(channel, wx, "onboarding.unknown_sender")
        if wx.kind in TEXT_KINDS and wx.text.strip():
            return await self._converse(wx, channel, bound)
        if wx.kind in MEDIA_KINDS or wx.kind in TEXT_KINDS:
            return self._media(wx, channel, bound, agent or self.settings.bot_name)
        return self._once(channel, wx, "channel.unsupported")

    # -- the pipeline path -------------------------------------------------------------------
    async def _converse(self, wx: WxMessage, channel: str, bound: inbound.Bound) -> str | None:
        msg = InboundMessage(
            channel=channel, chat_id=bound.chat_id, sender_id=bound.member_id,
            sender_name=bound.display_name, text=wx.text[: self.settings.max_text_chars],
            msg_id=wx.dedupe_key, ts=datetime.fromtimestamp(wx.create_time, UTC), private=True,
        )
        try:
            outcome = await handle_within(
                handle=self.pipeline.handle, msg=msg, passive_to=bound.member_id,
                deadline=self.settings.wechat_reply_deadline, executor=self.executor,
                sessions=self.sessions, state=self.state,
            )
        except (OperationalError, InterfaceError):
            raise  # 503: WeChat retries, and the unique key keeps it once
        except Exception:  # a 500 makes WeChat show "暂时无法提供服务"; log and ack instead
            trace = uuid.uuid4().hex[:12]
            log.exception("wechat message %s failed trace=%s", msg.msg_id, trace)
            return None
        if outcome is None:
            return None
        return self._passive(msg, outcome, bound.member_id)

    def _passive(self, msg: InboundMessage, outcome: Outcome, member_id: str) -> str | None:
        now = datetime.now(UTC)
        with transaction(self.sessions) as s:
            if outcome.duplicate:
                if inbound.handed_to_outbox(s, outcome.message_id, member_id) or self._was_late(
                    msg
                ):
                    return None  # the first delivery is the outbox's: never a second copy
            else:
                # Replies meant for someone else (e.g. the holder) cannot ride this reply.
                inbound.queue_replies(s, outcome.message_id, now, except_to=member_id,
                                      only_others=True)
            texts = [r.text for r in outcome.replies if r.to in (None, member_id)]
            text = "\n\n".join(texts)
            if not text:
                return None
            if len(text.encode()) > PASSIVE_MAX_BYTES:
                if not outcome.duplicate:
                    inbound.queue_replies(s, outcome.message_id, now)
                return None
            return text

    def _was_late(self, msg: InboundMessage) -> bool:
        try:
            return self.state.get_json(late_key(msg)) is not None
        except StateUnavailable:
            return False

    # -- events, media, strangers ------------------------------------------------------------
    def _event(self, wx: WxMessage, channel: str) -> str | None:
        """subscribe: the welcome. Events that mean nothing to a customer: "success". Anything
        else the customer did on purpose (a menu CLICK, a SCAN, a device event, an event type
        WeChat invents next) gets the polite `channel.unsupported` answer, never silence."""
        if wx.event == "subscribe":
            return self._once(channel, wx, "welcome.subscribe")
        if wx.event in SILENT_EVENTS:
            return None
        log.info("no handler for %s event %r: answering the polite fallback",
                 channel, wx.event)
        return self._once(channel, wx, "channel.unsupported")

    def _once(self, channel: str, wx: WxMessage, script_id: str) -> str | None:
        """A scripted answer, produced once per dedupe key; a retry gets the same text."""
        key = f"wx:seen:{channel}:{wx.to_user}:{wx.dedupe_key}"
        text = self.scripts.render(script_id, {"bot_name": self.settings.bot_name}).text
        try:
            first = self.state.add_once(key, SEEN_TTL)
        except StateUnavailable:
            first = True  # stateless answer: repeating a fixed script is harmless
        if not first:
            log.info("repeat of %s answered from the first result", wx.dedupe_key)
        return text

    def _media(self, wx: WxMessage, channel: str, bound: inbound.Bound, agent: str) -> str:
        rendered = self.scripts.render(
            "channel.media_ack", {"agent_name": agent, "bot_name": self.settings.bot_name}
        )
        for attempt in range(2):  # a concurrent retry may commit first: then read its row
            try:
                with transaction(self.sessions) as s:
                    return inbound.record_media(
                        s, channel=channel, msg_id=wx.dedupe_key, bound=bound, kind=wx.kind,
                        detail=wx.detail, reply=rendered.text, script_id=rendered.script_id,
                        script_version=rendered.version, now=datetime.now(UTC),
                    )
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

