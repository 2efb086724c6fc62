"""Platform quotas: the customer-service window (48 h, 5 kf messages) and the robot's 20/minute."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.enums import Direction
from storage.models import Message
from storage.state import StateStore

WINDOW = timedelta(hours=48)
KF_MAX_PER_WINDOW = 5


def service_window(s: Session, *, member_id: str, channel: str, now: datetime,
                   max_sends: int | None) -> str | None:
    """Why a 1:1 send to this member cannot go now ("window_closed"/"quota"), or None."""
    last_in = s.scalar(
        select(func.max(Message.created_at)).where(
            Message.sender_id == member_id, Message.direction == Direction.IN,
            Message.channel == channel,
        )
    )
    if last_in is None or now - last_in > WINDOW:
        return "window_closed"
    if max_sends is None:
        return None
    sent = s.scalar(
        select(func.count()).select_from(Message).where(
            Message.recipient_id == member_id, Message.direction == Direction.OUT,
            Message.channel == channel, Message.status == "sent", Message.sent_at >= last_in,
        )
    )
    return "quota" if (sent or 0) >= max_sends else None


class SlidingLimit:
    """At most `limit` sends in any rolling `period` per key (a strict log, not a bucket).

    `clock` is injectable (epoch seconds) so a test can walk through minutes without sleeping.
    A platform that says "too fast" anyway (45009: another sender shares the robot) pauses the
    key for a whole period: what waits is delayed, never dropped."""

    def __init__(self, state: StateStore, limit: int, period: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.state, self.limit, self.period = state, limit, period
        self.clock = clock

    def acquire(self, key: str) -> float:
        """0 when a send may go now (and it is counted); else seconds until one may."""
        now = float(self.clock())
        with self.state.lock(f"rate:{key}", ttl=5, wait=2):
            paused = self.state.get_json(f"rate:{key}:pause")
            if paused is not None and float(paused) > now:
                return max(0.01, float(paused) - now)
            log = [float(t) for t in (self.state.get_json(f"rate:{key}") or [])
                   if float(t) > now - self.period]
            if len(log) >= self.limit:
                return max(0.01, log[0] + self.period - now)
            log.append(now)
            self.state.set_json(f"rate:{key}", log, self.period)
            return 0.0

    def pause(self, key: str, seconds: float | None = None) -> float:
        """Stop sends on `key` for `seconds` (default: one period); returns the pause length."""
        seconds = self.period if seconds is None else seconds
        until = float(self.clock()) + seconds
        with self.state.lock(f"rate:{key}", ttl=5, wait=2):
            self.state.set_json(f"rate:{key}:pause", until, seconds)
        return seconds
