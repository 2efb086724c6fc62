"""The outbound port: one `send` for every channel, answering with the platform's errcode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# WeChat/WeCom errcodes that decide what the outbox does next.
INVALID_TOKEN = frozenset({40001, 40014, 42001})
WINDOW_CLOSED = 45015  # more than 48 h since the customer's last message
QUOTA_USED_UP = 45047  # customer-service message count used up for this user
FREQUENCY_LIMIT = 45009  # the API's (or the group robot's 20/min) frequency limit: back off
TRANSIENT = frozenset({-1, FREQUENCY_LIMIT, 45033})  # system busy, frequency limits: retry later
NETWORK = -2  # our own code: timeout or connection failure (no answer from the platform)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    errcode: int = 0
    errmsg: str = ""
    parts: int = 1  # how many parts the text was split into (the platform saw them in order)

    @property
    def retryable(self) -> bool:
        return not self.ok and (self.errcode in TRANSIENT or self.errcode == NETWORK
                                or self.errcode in INVALID_TOKEN or 500 <= self.errcode < 600)


OK = SendResult(True)

PartDone = Callable[[int, int], None]  # (parts delivered so far, parts in all)


class Sender(Protocol):
    """Deliver `text` to `to` (a channel user id, or None for the whole group) in `circle`.

    A long text goes as numbered parts. `start` skips the parts an earlier attempt already
    delivered, and `on_part(done, total)` is told after each delivered part, so that a retry
    after a failure on part k resumes at part k instead of repeating parts 1..k-1."""

    def send(self, text: str, to: str | None, circle: str | None, *, start: int = 0,
             on_part: PartDone | None = None) -> SendResult: ...
