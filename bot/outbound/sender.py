"""The outbound port: one `send` for every channel, answering with the platform's errcode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# WeChat/WeCom errcodes that decide what the outbox does next.
INVALID_TOKEN = frozenset({40001, 40014, 42001})
WINDOW_CLOSED = 45015  # more than 48 h since the customer's last message
QUOTA_USED_UP = 45047  # customer-service message count used up for this user
TRANSIENT = frozenset({-1, 45009, 45033})  # system busy, frequency limits: retry later
NETWORK = -2  # our own code: timeout or connection failure (no answer from the platform)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    errcode: int = 0
    errmsg: str = ""

    @property
    def retryable(self) -> bool:
        return not self.ok and (self.errcode in TRANSIENT or self.errcode == NETWORK
                                or self.errcode in INVALID_TOKEN or 500 <= self.errcode < 600)


OK = SendResult(True)


class Sender(Protocol):
    """Deliver `text` to `to` (a channel user id, or None for the whole group) in `circle`."""

    def send(self, text: str, to: str | None, circle: str | None) -> SendResult: ...
