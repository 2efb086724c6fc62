"""Group membership events from the channels, applied to circles (circles/group.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.channels.wxmessage import WxMessage
from bot.services import Services
from circles import group
from storage.db import transaction
from storage.errors import NotFound

log = logging.getLogger(__name__)


def wecom_chat_change(svc: Services, wx: WxMessage) -> list[group.Change]:
    """客户群变更: add_member / del_member change seats; dismiss archives the circle. A group
    with no circle is not ours to follow (logged, ignored); a retry changes nothing twice."""
    now = datetime.now(UTC)
    changes: list[group.Change] = []
    try:
        with transaction(svc.sessions) as s:
            if wx.change_type == "dismiss":
                group.dismiss(s, chat_id=wx.chat_id, now=now)
            elif wx.change_type == "update" and wx.update_detail in ("add_member", "del_member"):
                for uid in wx.changed_members:
                    member_id = group.resolve_member(s, "wecom", uid)
                    if wx.update_detail == "add_member":
                        changes.append(group.join(s, chat_id=wx.chat_id, member_id=member_id,
                                                  name=uid, scripts=svc.scripts, now=now))
                    else:
                        changes.append(group.leave(s, chat_id=wx.chat_id, member_id=member_id))
    except NotFound:
        log.info("change_external_chat for a group with no circle: ignored")
    return changes
