"""access_token cached in the state store and refreshed single-flight across all workers.

Every fetch of a new token invalidates the old one (5-minute overlap), so per-process refresh
is the known cause of recurring 40001 errors (docs/measured-facts.md, "wechatpy"). One lock,
one fetch; a forced refresh after 40001/42001 happens at most once per `min_refresh_interval`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.state import LockNotAcquired, StateStore, StateUnavailable

log = logging.getLogger(__name__)

EARLY_REFRESH = 300  # refresh 5 minutes before the platform's expiry


class TokenError(RuntimeError):
    """The platform refused to issue a token (bad secret, IP not whitelisted, ...)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"token refused: errcode {errcode} {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


@dataclass(frozen=True)
class Token:
    value: str
    expires_in: int


class TokenCache:
    def __init__(self, state: StateStore, key: str, fetch: Callable[[bool], Token], *,
                 min_refresh_interval: float = 30.0, wait: float = 6.0) -> None:
        self.state, self.key, self.fetch = state, f"wx:token:{key}", fetch
        self.min_refresh_interval, self.wait = min_refresh_interval, wait
        self._local: tuple[str, float] | None = None  # only when the state store is down

    def _cached(self) -> str | None:
        item = self.state.get_json(self.key)
        if item and float(item["exp"]) > time.time():
            return str(item["token"])
        return None

    def _store(self, token: Token) -> str:
        ttl = max(60, token.expires_in - EARLY_REFRESH)
        self.state.set_json(self.key, {"token": token.value, "exp": time.time() + ttl}, ttl)
        return token.value

    def get(self) -> str:
        try:
            cached = self._cached()
            if cached:
                return cached
            with self.state.lock(f"{self.key}:refresh", ttl=10, wait=self.wait):
                return self._cached() or self._store(self.fetch(False))
        except (StateUnavailable, LockNotAcquired):
            return self._degraded()

    def refresh_after_invalid(self, bad: str) -> str | None:
        """A new token after the platform rejected `bad`, or None when refreshes are spent."""
        try:
            with self.state.lock(f"{self.key}:refresh", ttl=10, wait=self.wait):
                current = self._cached()
                if current and current != bad:
                    return current  # another worker already refreshed it
                if not self.state.add_once(f"{self.key}:forced", self.min_refresh_interval):
                    log.warning("token for %s rejected again; no refresh within %.0f s",
                                self.key, self.min_refresh_interval)
                    return None
                return self._store(self.fetch(True))
        except (StateUnavailable, LockNotAcquired):
            self._local = None
            return None

    def _degraded(self) -> str:
        """State store down: one token per process, as a last resort (logged)."""
        if self._local and self._local[1] > time.time():
            return self._local[0]
        log.warning("state store unavailable: fetching %s without the shared cache", self.key)
        token = self.fetch(False)
        self._local = (token.value, time.time() + max(60, token.expires_in - EARLY_REFRESH))
        return token.value
