"""Login throttling per username and per client address, counted in the state store.

After `free` failures a key is locked for `base` seconds, doubling with every further failure up
to `cap`; a locked key is answered 429 with Retry-After before the password is even checked, so
guessing gets exponentially slower across every worker sharing Redis. A success clears the
username's count (not the address's: a valid account must not wash an address clean).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.state import StateStore, StateUnavailable

log = logging.getLogger(__name__)

DAY = 24 * 3600


@dataclass(frozen=True)
class Throttle:
    state: StateStore
    free: int
    base: int
    cap: int
    clock: Callable[[], float] = time.time

    @staticmethod
    def keys(username: str, address: str) -> list[tuple[str, int]]:
        """(key, free-failure multiplier): an address shared by an office gets more tries."""
        user = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
        return [(f"login:user:{user}", 1), (f"login:addr:{address}", 4)]

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until this login may be tried again; 0 when it may now."""
        wait = 0.0
        try:
            for key, _ in self.keys(username, address):
                until = self.state.get_json(f"{key}:lock")
                if isinstance(until, int | float):
                    wait = max(wait, until - self.clock())
        except StateUnavailable:
            log.warning("login throttle unavailable (state store down): not enforced")
            return 0
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str) -> int:
        """Count a failure; returns the lockout it started (0: none yet)."""
        longest = 0
        try:
            for key, many in self.keys(username, address):
                n = self.state.incr(f"{key}:fails", DAY)
                over = n - self.free * many
                if over >= 0:
                    lock = min(self.cap, self.base * 2 ** min(over, 30))
                    self.state.set_json(f"{key}:lock", self.clock() + lock, lock)
                    longest = max(longest, lock)
        except StateUnavailable:
            log.warning("login throttle unavailable (state store down): failure not counted")
        return longest

    def succeeded(self, username: str, address: str) -> None:
        key, _ = self.keys(username, address)[0]
        try:
            self.state.delete(f"{key}:fails")
            self.state.delete(f"{key}:lock")
        except StateUnavailable:
            return
