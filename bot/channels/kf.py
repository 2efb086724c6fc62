"""微信客服 (WeCom kf): pull messages with sync_msg (durable cursor) and mirror handoff state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import IntEnum

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.channels.inbound import QUEUED, resolve_sender
from bot.messages import InboundMessage
from bot.outbound.platform import PlatformApi
from bot.outbound.routing import KF_OPEN
from bot.pipeline import Pipeline
from storage.db import transaction
from storage.enums import TicketStatus
from storage.models import ChannelCursor, MemberIdentity, Ticket
from storage.state import LockNotAcquired, StateStore, StateUnavailable

log = logging.getLogger(__name__)

CURSOR = "wecom-kf"
STATE = "wecom-kf-state"  # ChannelCursor channel: external_userid -> last mirrored "state|servicer"
CUSTOMER_ORIGIN = 3  # sync_msg origin: 3 = sent by the customer


class ServiceState(IntEnum):
    """kf/service_state/trans values."""

    UNTOUCHED = 0
    BOT = 1  # 由智能助手接待
    QUEUED = 2  # 待接入池排队中 (waiting for a human)
    HUMAN = 3  # 由人工接待
    ENDED = 4  # 已结束/未开始


def service_state_for(ticket_status: TicketStatus | str | None) -> ServiceState:
    """Our handoff state (the open ticket of the conversation, if any) as the kf state."""
    match ticket_status:
        case None:
            return ServiceState.BOT
        case TicketStatus.OPEN:
            return ServiceState.QUEUED
        case TicketStatus.CLAIMED | TicketStatus.WAITING_CUSTOMER:
            return ServiceState.HUMAN
        case TicketStatus.RESOLVED:
            return ServiceState.ENDED
    raise ValueError(f"unknown ticket status {ticket_status!r}")


def mirror_state(api: PlatformApi, *, open_kfid: str, external_userid: str,
                 ticket_status: TicketStatus | None, servicer: str | None = None) -> int:
    """Tell WeCom who is serving; returns the errcode (0 = ok)."""
    state = service_state_for(ticket_status)
    payload: dict[str, object] = {"open_kfid": open_kfid, "external_userid": external_userid,
                                  "service_state": int(state)}
    if state == ServiceState.HUMAN and servicer:
        payload["servicer_userid"] = servicer
    return int(api.call("/cgi-bin/kf/service_state/trans", payload).get("errcode") or 0)


def _cursor(s: Session, key: str) -> ChannelCursor:
    row = s.scalar(select(ChannelCursor).where(ChannelCursor.channel == CURSOR,
                                               ChannelCursor.key == key))
    if row is None:
        row = ChannelCursor(channel=CURSOR, key=key, value="")
        s.add(row)
        s.flush()
    return row


def _remember_kf(s: Session, app: str, external_userid: str, open_kfid: str) -> None:
    row = s.scalar(select(ChannelCursor).where(ChannelCursor.channel == KF_OPEN,
                                               ChannelCursor.key == external_userid))
    value = f"{app}|{open_kfid}"
    if row is None:
        s.add(ChannelCursor(channel=KF_OPEN, key=external_userid, value=value))
    elif row.value != value:
        row.value, row.updated_at = value, datetime.now(UTC)


class KfSync:
    def __init__(self, *, app: str, api: PlatformApi, sessions: sessionmaker[Session],
                 state: StateStore, pipeline: Pipeline, max_text: int) -> None:
        self.app, self.api, self.sessions = app, api, sessions
        self.state, self.pipeline, self.max_text = state, pipeline, max_text

    def pull(self, open_kfid: str, token: str = "") -> int:
        """Fetch and handle everything new for this kf account; returns messages handled.

        One puller per account at a time; the cursor advances only after a page is handled,
        and a re-pulled message is deduped by its msgid.
        """
        key = f"{self.app}:{open_kfid}"
        try:
            with self.state.lock(f"kf:sync:{key}", ttl=60, wait=0.5):
                return self._pull(key, open_kfid, token)
        except LockNotAcquired:
            return 0  # the current puller will see these messages too
        except StateUnavailable:
            return self._pull(key, open_kfid, token)

    def _pull(self, key: str, open_kfid: str, token: str) -> int:
        handled = 0
        for _ in range(100):  # bounded: 100 pages of 1000
            with transaction(self.sessions) as s:
                cursor = _cursor(s, key).value
            payload = {"cursor": cursor, "limit": 1000, "open_kfid": open_kfid}
            if token:
                payload["token"] = token
            data = self.api.call("/cgi-bin/kf/sync_msg", payload)
            if int(data.get("errcode") or 0) != 0:
                log.warning("kf sync_msg for %s failed: %s", key, data.get("errcode"))
                return handled
            for item in data.get("msg_list") or []:
                handled += self._one(item, open_kfid)
            with transaction(self.sessions) as s:
                row = _cursor(s, key)
                row.value = str(data.get("next_cursor") or cursor)
                row.updated_at = datetime.now(UTC)
            if not data.get("has_more"):
                break
        return handled

    def _one(self, item: dict[str, object], open_kfid: str) -> int:
        if item.get("origin") != CUSTOMER_ORIGIN or item.get("msgtype") != "text":
            return 0
        ext = str(item.get("external_userid") or "")
        body = item.get("text")
        text = str(body.get("content") or "") if isinstance(body, dict) else ""
        with transaction(self.sessions) as s:
            bound = resolve_sender(s, ["wecom-kf", "wecom"], ext)
            if bound is not None:
                _remember_kf(s, self.app, ext, open_kfid)
        if bound is None or not text.strip():
            return 0  # a stranger: nothing stored (onboarding goes through the agent)
        send_time = item.get("send_time")
        msg = InboundMessage(
            channel="wecom", chat_id=bound.chat_id, sender_id=bound.member_id,
            sender_name=bound.display_name, text=text[: self.max_text],
            msg_id=str(item.get("msgid")),
            ts=datetime.fromtimestamp(int(send_time), UTC) if isinstance(send_time, int)
            else datetime.now(UTC),
            private=True,
        )
        # kf has no passive reply: every reply is the outbox's, decided inside the commit.
        self.pipeline.handle(msg, deliver=lambda _reply: QUEUED)
        return 1


# -- mirroring our handoff state onto kf service_state ---------------------------------------
_ACTIVE = (TicketStatus.OPEN, TicketStatus.CLAIMED, TicketStatus.WAITING_CUSTOMER)


def _desired(status: TicketStatus | None, resolved_at: datetime | None, servicer: str | None,
             last: str | None, last_at: datetime | None) -> tuple[TicketStatus | None, str]:
    """(the ticket status to mirror, the value to remember) for one kf customer."""
    if status == TicketStatus.RESOLVED:
        last_state = last.split("|", 1)[0] if last else None
        # ENDED once a handoff we knew of ends, or when it was resolved after the last mirror;
        # an old resolved ticket of a customer never mirrored (or back with the bot) stays BOT.
        ended = last is not None and (
            last_state != str(int(ServiceState.BOT))
            or (resolved_at is not None and last_at is not None
                and _aware(resolved_at) > _aware(last_at)))
        if not ended:
            status = None
    state = service_state_for(status)
    who = servicer if state == ServiceState.HUMAN and servicer else ""
    return status, f"{int(state)}|{who}"


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def sync_service_states(sessions: sessionmaker[Session], apis: Mapping[str, PlatformApi], *,
                        clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    """One pass: mirror each known kf customer's handoff state where it changed.

    A handful of queries whatever the number of customers; a platform call only on a change.
    The new state is remembered only when WeCom accepted it (errcode 0): a failure is retried
    on the next pass. Returns how many states were mirrored.
    """
    if not apis:
        return 0
    kf_members = select(MemberIdentity.member_id).where(MemberIdentity.channel == "wecom-kf")
    ranked = (
        select(Ticket.member_id, Ticket.status, Ticket.assignee_id, Ticket.resolved_at,
               func.row_number().over(
                   partition_by=Ticket.member_id,
                   # an unresolved ticket first (a human is on it), then the most recent
                   order_by=(case((Ticket.status.in_(_ACTIVE), 0), else_=1),
                             Ticket.created_at.desc(), Ticket.id.desc()),
               ).label("rn"))
        .where(Ticket.member_id.in_(kf_members))
        .subquery()
    )
    customer = aliased(MemberIdentity)
    staff = aliased(MemberIdentity)
    last = aliased(ChannelCursor)
    query = (
        select(ChannelCursor.key, ChannelCursor.value, ranked.c.status, ranked.c.resolved_at,
               staff.channel_user_id, last.value, last.updated_at)
        .join(customer, and_(customer.channel == "wecom-kf",
                             customer.channel_user_id == ChannelCursor.key))
        .outerjoin(ranked, and_(ranked.c.member_id == customer.member_id, ranked.c.rn == 1))
        .outerjoin(staff, and_(staff.channel == "wecom",
                               staff.member_id == ranked.c.assignee_id))
        .outerjoin(last, and_(last.channel == STATE, last.key == ChannelCursor.key))
        .where(ChannelCursor.channel == KF_OPEN)
        .order_by(ChannelCursor.key, staff.id)
    )
    with sessions() as s:
        rows = s.execute(query).all()
    mirrored, seen = 0, set()
    for ext, where, raw_status, resolved_at, servicer, value, value_at in rows:
        if ext in seen:  # an assignee with several WeCom identities: the first one
            continue
        seen.add(ext)
        app, _, open_kfid = (where or "").partition("|")
        api = apis.get(app)
        if api is None or not open_kfid:
            continue
        status = TicketStatus(raw_status) if raw_status is not None else None
        mirror, wanted = _desired(status, resolved_at, servicer, value, value_at)
        if wanted == value:
            continue
        code = mirror_state(api, open_kfid=open_kfid, external_userid=ext,
                            ticket_status=mirror, servicer=servicer)
        if code != 0:
            log.warning("kf service_state for %s -> %s failed: %s; retried next pass",
                        ext, wanted, code)
            continue
        with transaction(sessions) as s:
            row = s.scalar(select(ChannelCursor).where(ChannelCursor.channel == STATE,
                                                       ChannelCursor.key == ext))
            if row is None:
                s.add(ChannelCursor(channel=STATE, key=ext, value=wanted, updated_at=clock()))
            else:
                row.value, row.updated_at = wanted, clock()
        mirrored += 1
    return mirrored
