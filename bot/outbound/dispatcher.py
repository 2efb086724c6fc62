"""The outbox dispatcher: claims due `queued` message rows, sends them, records what happened.

A batch is claimed in one statement (`storage.outbox`: `FOR UPDATE SKIP LOCKED` on
PostgreSQL), and every later write is fenced by the attempt number the claim set, so two workers
never send the same row. A row is
marked `sending` (committed) just before the HTTP call: a worker that dies after a claim is
retried after the lease; one that dies mid-send leaves `unknown` for a human (at-most-once:
the WeChat APIs have no idempotency key).

A long text goes as numbered parts. After each delivered part the count is written (fenced)
to `channel_cursors` (channel "outbox-parts", key = the row id), so a retry after a failure
on part k resumes at part k: the customer never gets parts 1..k-1 twice.

A row addressed to one member goes only by a route that reaches that member alone
(bot/outbound/routing.py). With none, it is held (`private_held`), never sent to the group:
the member hears in the group that the agent will contact them, and the agent gets a ticket
(escalation/private_hold.py). A group note claiming the answer "was sent privately" is not
said when its private answer cannot be.

A group robot is held to its rolling limit (20 a minute): what cannot go now is put back with
`next_attempt_at` when a slot frees (the attempt does not count), and every later row for the
same robot waits too, so the order is kept. A 45009 from the robot pauses it for a minute.

Nothing is retried forever: a row still undelivered `give_up` after it was queued (a robot
answering 45009 for an hour, no route, failing retries) ends `failed` with the reason. Every end
that needs a person (unknown, failed, window closed, quota) opens a ticket for the console and,
when the dispatcher has the scripts, tells the agent's support circle.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.outbound.quota import KF_MAX_PER_WINDOW, SlidingLimit, service_window
from bot.outbound.routing import Route, Router, Unreachable
from bot.outbound.sender import FREQUENCY_LIMIT, QUOTA_USED_UP, WINDOW_CLOSED, PartDone, SendResult
from bot.outbound.split import split_text
from escalation import private_hold
from escalation.events import record as record_event
from escalation.notify import tell_support
from escalation.policy import EscalationPolicy
from escalation.tickets import open_ticket
from storage import outbox, wakeups
from storage.db import transaction
from storage.enums import CircleKind, Delivery, Direction
from storage.models import ChannelCursor, Circle, Message
from storage.outbox import Outbox
from storage.scripts import ScriptLibrary
from storage.state import LockNotAcquired, StateUnavailable

log = logging.getLogger(__name__)

QUEUED, CLAIMED, SENDING, SENT = Delivery.QUEUED, Delivery.CLAIMED, Delivery.SENDING, Delivery.SENT
FAILED, WINDOW, NEEDS_HUMAN, UNKNOWN = (
    Delivery.FAILED, Delivery.WINDOW_CLOSED, Delivery.NEEDS_HUMAN, Delivery.UNKNOWN
)
NO_ROUTE_DELAY = timedelta(minutes=10)
PARTS = "outbox-parts"  # ChannelCursor channel: outbox row id -> {"sent": k, "of": n}


MESSAGES = Outbox(
    name="messages", model=Message, status=Message.status, due=Message.next_attempt_at,
    lease_until=Message.next_attempt_at, attempts=Message.attempts,
    ready=(QUEUED, Delivery.HELD), claimed=CLAIMED, order_by=(Message.id,),
    where=(Message.direction == Direction.OUT,),
)


def _claims_private(script_id: str | None) -> bool:
    """The group notes that tell a member their answer went to them privately."""
    return bool(script_id) and (
        str(script_id).endswith(".group_note") or script_id == "privacy.sent_privately")


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s ... at most 5 min, each +/- 20 % so workers do not retry in step."""
    return outbox.backoff(attempts, base=5.0, cap=300.0)


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], router: Router, limiter: SlidingLimit,
                 *, lease: float = 30.0, max_attempts: int = 6, interval: float = 1.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 scripts: ScriptLibrary | None = None, policy: EscalationPolicy | None = None,
                 bot_name: str = "小助手", give_up: float = 3600.0) -> None:
        self.sessions, self.router, self.limiter = sessions, router, limiter
        # for held private replies and the support-circle notice when a person must step in
        self.scripts = scripts or ScriptLibrary()
        self.policy, self.bot_name = policy or EscalationPolicy(), bot_name
        self.give_up = timedelta(seconds=give_up)
        self.lease, self.max_attempts = timedelta(seconds=lease), max_attempts
        self.interval, self.clock = interval, clock
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake_at: datetime | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self.last_tick: datetime | None = None

    # -- one pass ---------------------------------------------------------------------------
    def dispatch_once(self, limit: int = 20) -> int:
        """Deliver what is due now, oldest first; returns how many rows reached an end state.

        One statement claims the batch (`storage.outbox.claim`); each row is then delivered
        under its fence, so a row whose lease ran out meanwhile is written by its new owner only.
        """
        now = self.clock()
        self._expire_sending(now)
        with transaction(self.sessions) as s:
            claims = outbox.claim(s, MESSAGES, owner="", now=now, lease=self.lease, limit=limit)
        outbox.claimed_hook(MESSAGES.name, [c.id for c in claims])
        blocked: dict[str, datetime] = {}  # a rate-limited group keeps its order: all wait
        done = 0
        expired = self._past_give_up(claims, now)
        for c in claims:
            if c.id in expired:
                done += self._give_up(c.id, c.fence, now)
                continue
            done += self._deliver(c.id, c.fence, blocked)
        self.last_tick = now
        return done

    def next_due(self) -> datetime | None:
        """When the next queued or held row falls due, or the next lease runs out."""
        now = self.clock()
        with self.sessions() as s:
            ready = outbox.next_due(s, MESSAGES, now=now)
            sending = s.scalar(select(func.min(Message.next_attempt_at)).where(
                Message.direction == Direction.OUT, Message.status == SENDING))
        times = [t for t in (ready, sending) if t is not None]
        return min(times) if times else None

    def _expire_sending(self, now: datetime) -> None:
        """A worker died mid-send: the row becomes `unknown` and a person is told, together.

        At most once: the platforms have no idempotency key, so the row is never sent again by
        itself; the agent checks with the customer (ticket, and a notice in the support circle).
        """
        with transaction(self.sessions) as s:
            lost = list(s.scalars(
                update(Message)
                .where(Message.direction == Direction.OUT, Message.status == SENDING,
                       Message.next_attempt_at <= now)
                .values(status=UNKNOWN, last_error="worker lost mid-send; delivery unknown")
                .returning(Message.id)
                .execution_options(synchronize_session=False)
            ))
            for row_id in lost:
                log.warning("outbound message %s: its sender died mid-send; handed to a person",
                            row_id)
                self._tell_a_person(s, row_id, "delivery_unknown", now)

    def _past_give_up(self, claims: list[outbox.Claim], now: datetime) -> set[int]:
        """Claimed rows first queued longer ago than `give_up` (robot pauses, no route, retries):
        nothing is retried forever."""
        if not claims:
            return set()
        oldest = now - self.give_up
        with self.sessions() as s:
            return set(s.scalars(select(Message.id).where(
                Message.id.in_([c.id for c in claims]), Message.created_at < oldest)))

    def _give_up(self, row_id: int, fence: int, now: datetime) -> int:
        with transaction(self.sessions) as s:
            last = s.scalar(select(Message.last_error).where(Message.id == row_id)) or ""
            minutes = self.give_up.total_seconds() / 60
            error = f"gave up: not delivered within {minutes:g} min; last error: {last}"[:256]
            if not outbox.finish(s, MESSAGES, row_id, fence=fence, from_status=CLAIMED,
                                 values={"status": FAILED, "last_error": error}):
                return 0
            log.warning("outbound message %s: %s", row_id, error)
            self._tell_a_person(s, row_id, "delivery_gave_up", now)
        return 1

    def _finish(self, row_id: int, fence: int, from_status: str, **values: object) -> bool:
        with transaction(self.sessions) as s:
            return outbox.finish(s, MESSAGES, row_id, fence=fence, from_status=from_status,
                                 values=values)

    def _deliver(self, row_id: int, fence: int, blocked: dict[str, datetime]) -> int:
        now = self.clock()
        with transaction(self.sessions) as s:
            row = s.get(Message, row_id)
            assert row is not None
            route = self.router.route(s, row, now)
            text = row.text
            if isinstance(route, Unreachable):
                return self._hold_private(row_id, fence, now)
            if route is None:
                self._finish(row_id, fence, CLAIMED, status=QUEUED, attempts=fence - 1,
                             next_attempt_at=now + NO_ROUTE_DELAY,
                             last_error="no outbound route for this circle/recipient")
                return 0
            if self._private_answer_unreachable(s, row, now):
                self._finish(row_id, fence, CLAIMED, status=Delivery.CANCELLED,
                             last_error="its private answer has no 1:1 route; not said")
                return 1
            held = self._hold_reason(s, route, now)
        if held is not None:
            return self._held(row_id, fence, route, held, now)
        if route.limit_key:
            wait = blocked.get(route.limit_key)
            if wait is None:
                try:
                    delay = self.limiter.acquire(route.limit_key)
                except (StateUnavailable, LockNotAcquired):
                    delay = 1.0
                if delay:
                    wait = blocked[route.limit_key] = now + timedelta(seconds=delay)
            if wait is not None:  # delayed, not dropped; the attempt does not count
                self._finish(row_id, fence, CLAIMED, status=QUEUED, attempts=fence - 1,
                             next_attempt_at=wait)
                return 0
        if not self._finish(row_id, fence, CLAIMED, status=SENDING):
            return 0  # fenced out: another worker took it over
        start = self._parts_sent(row_id, text)
        result = route.sender.send(text, route.to, route.circle, start=start,
                                   on_part=self._progress(row_id, fence))
        return self._record(row_id, fence, route, result, blocked)

    # -- split sends: what already went is never sent again ---------------------------------
    def _parts_sent(self, row_id: int, text: str) -> int:
        """Parts an earlier attempt delivered (0 if none, or if the split no longer matches)."""
        if len(split_text(text)) <= 1:
            return 0  # one part: nothing to resume, no progress is ever stored
        with self.sessions() as s:
            raw = s.scalar(select(ChannelCursor.value).where(
                ChannelCursor.channel == PARTS, ChannelCursor.key == str(row_id)))
        if not raw:
            return 0
        try:
            done = json.loads(raw)
            sent, total = int(done["sent"]), int(done["of"])
        except (ValueError, KeyError, TypeError):
            return 0
        if total != len(split_text(text)):
            log.warning("outbound %s: stored progress %s/%s no longer matches the split;"
                        " starting over", row_id, sent, total)
            return 0
        return max(0, min(sent, total))

    def _progress(self, row_id: int, fence: int) -> PartDone:
        def done(sent: int, total: int) -> None:
            if total <= 1:
                return  # a single part: the row's own end state says it all
            with transaction(self.sessions) as s:
                live = s.scalar(select(Message.id).where(
                    Message.id == row_id, Message.attempts == fence, Message.status == SENDING))
                if live is None:
                    return  # fenced out: the row is someone else's now
                value = json.dumps({"sent": sent, "of": total})
                row = s.scalar(select(ChannelCursor).where(
                    ChannelCursor.channel == PARTS, ChannelCursor.key == str(row_id)))
                if row is None:
                    s.add(ChannelCursor(channel=PARTS, key=str(row_id), value=value))
                else:
                    row.value, row.updated_at = value, self.clock()

        return done

    def _end_parts(self, row_id: int, total: int) -> str:
        """Forget the progress of a row that reached an end state; say what went, if any."""
        if total <= 1:
            return ""
        with transaction(self.sessions) as s:
            row = s.scalar(select(ChannelCursor).where(
                ChannelCursor.channel == PARTS, ChannelCursor.key == str(row_id)))
            if row is None:
                return ""
            s.delete(row)
            try:
                sent = int(json.loads(row.value)["sent"])
            except (ValueError, KeyError, TypeError):
                return ""
        return f"; parts 1-{sent} of {total} were delivered" if sent and total > 1 else ""

    def _hold_reason(self, s: Session, route: Route, now: datetime) -> str | None:
        if route.quota not in ("oa", "kf") or route.member_id is None:
            return None
        channel = "wechat" if route.quota == "oa" else "wecom"
        return service_window(s, member_id=route.member_id, channel=channel, now=now,
                              max_sends=KF_MAX_PER_WINDOW if route.quota == "kf" else None)

    def _private_answer_unreachable(self, s: Session, row: Message, now: datetime) -> bool:
        """A group note saying "sent to you privately" whose private answer cannot go."""
        if row.recipient_id is not None or row.reply_to_id is None or not _claims_private(
                row.script_id):
            return False
        siblings = s.scalars(select(Message).where(
            Message.reply_to_id == row.reply_to_id, Message.circle_id == row.circle_id,
            Message.direction == Direction.OUT, Message.recipient_id.is_not(None),
            Message.status.in_((QUEUED, Delivery.HELD, CLAIMED, Delivery.PRIVATE_HELD))))
        return any(sib.status == Delivery.PRIVATE_HELD
                   or isinstance(self.router.route(s, sib, now), Unreachable)
                   for sib in siblings)

    def _hold_private(self, row_id: int, fence: int, now: datetime) -> int:
        """No route reaches the member alone: held, and the agent takes it from here."""
        if not self._finish(row_id, fence, CLAIMED, status=Delivery.PRIVATE_HELD,
                            last_error="no 1:1 route to the member; held, never the group"):
            return 0
        with transaction(self.sessions) as s:
            row = s.get(Message, row_id)
            assert row is not None
            private_hold.hold(s, row=row, scripts=self.scripts, policy=self.policy,
                              bot_name=self.bot_name, now=now)
        return 1

    def _held(self, row_id: int, fence: int, route: Route, why: str, now: datetime) -> int:
        if why == "window_closed":
            self._finish(row_id, fence, CLAIMED, status=WINDOW, last_error="48 h window closed")
            self._hand_to_human(row_id, "delivery_window_closed", now)
        else:
            self._finish(row_id, fence, CLAIMED, status=NEEDS_HUMAN,
                         last_error="kf quota: 5 messages per customer message")
            self._hand_to_human(row_id, "delivery_quota", now)
        return 1

    def _record(self, row_id: int, fence: int, route: Route, result: SendResult,
                blocked: dict[str, datetime]) -> int:
        now = self.clock()
        error = f"{result.errcode} {result.errmsg}"[:200]
        if result.ok:
            self._finish(row_id, fence, SENDING, status=SENT, sent_at=now, last_error=None)
            self._end_parts(row_id, result.parts)
            return 1
        if result.errcode == FREQUENCY_LIMIT and route.limit_key:
            # The robot says "too fast" (someone else shares it): pause it for a full window;
            # this row and every later one for it wait, in order. Not an attempt.
            try:
                pause = self.limiter.pause(route.limit_key)
            except (StateUnavailable, LockNotAcquired):
                pause = self.limiter.period
            wait = blocked[route.limit_key] = now + timedelta(seconds=pause)
            log.warning("group robot answered 45009: pausing it for %.0f s", pause)
            self._finish(row_id, fence, SENDING, status=QUEUED, attempts=fence - 1,
                         last_error=error, next_attempt_at=wait)
            return 0
        if not result.retryable or fence >= self.max_attempts:  # an end state: say what went
            error += self._end_parts(row_id, result.parts)
        if result.errcode == WINDOW_CLOSED:  # no retry loop: the window will not reopen alone
            self._finish(row_id, fence, SENDING, status=WINDOW, last_error=error)
            self._hand_to_human(row_id, "delivery_window_closed", now)
            return 1
        if result.errcode == QUOTA_USED_UP:
            self._finish(row_id, fence, SENDING, status=NEEDS_HUMAN, last_error=error)
            self._hand_to_human(row_id, "delivery_quota", now)
            return 1
        if result.retryable and fence < self.max_attempts:
            self._finish(row_id, fence, SENDING, status=QUEUED, last_error=error,
                         next_attempt_at=now + backoff(fence))
            return 0
        log.warning("outbound message %s failed for good: %s", row_id, error)
        if self._finish(row_id, fence, SENDING, status=FAILED, last_error=error):
            self._hand_to_human(row_id, "delivery_failed", now)
        return 1

    def _hand_to_human(self, row_id: int, reason: str, now: datetime) -> None:
        """The platform will not carry it: the agent must reach the customer another way."""
        with transaction(self.sessions) as s:
            self._tell_a_person(s, row_id, reason, now)

    def _tell_a_person(self, s: Session, row_id: int, reason: str, now: datetime) -> None:
        """A ticket for the console (reason, the message, its last error) and, with scripts, a
        notice in the agent's support circle. A notice meant for a support circle that cannot
        be delivered is only logged: telling that circle about itself would loop."""
        row = s.get(Message, row_id)
        circle = s.get(Circle, row.circle_id) if row and row.circle_id else None
        if row is None or circle is None:
            return
        if circle.kind == CircleKind.SUPPORT:
            log.error("outbound message %s to support circle %s: %s (%s)", row_id,
                      circle.chat_id, reason, row.last_error)
            return
        ticket = open_ticket(session=s, circle=circle, member_id=row.recipient_id,
                             source_message_id=row.reply_to_id, intent=None, reason=reason,
                             summary=row.text[:200], now=now,
                             context={"outbound_id": row_id, "last_error": row.last_error},
                             policy=self.policy, scripts=self.scripts)
        record_event(s, ticket.id, reason, now=now, outbound_id=row_id,
                     last_error=row.last_error)
        tell_support(s, self.scripts, ticket, circle, row, reason=reason, now=now)

    # -- the background loop: sleep until the next due row, or until woken -------------------
    def wake(self, at: datetime | None = None) -> None:
        """A row falls due at `at` (default now): the loop recomputes how long to sleep."""
        with self._wake_lock:
            if at is None or self._wake_at is None or at < self._wake_at:
                self._wake_at = at or self.clock()
        self._woken.set()

    def start(self) -> None:
        self._unsubscribe = wakeups.subscribe(self.wake)
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._woken.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch_once()
            except Exception:  # the loop must outlive one bad pass; the trace is logged
                log.exception("outbox pass failed")
            self._sleep()

    def _sleep(self) -> None:
        """Until the next due row, a wake-up, or at most `interval` (the heartbeat)."""
        while not self._stop.is_set():
            self._woken.clear()
            with self._wake_lock:
                woken_for, self._wake_at = self._wake_at, None
            now = self.clock()
            target = now + timedelta(seconds=self.interval)
            try:
                due = self.next_due()
            except Exception:  # the heartbeat still runs; the trace is logged
                log.exception("outbox: could not read the next due time")
                due = None
            for at in (due, woken_for):
                if at is not None and at < target:
                    target = at
            delay = (target - now).total_seconds()
            if delay <= 0 or not self._woken.wait(delay):
                return
