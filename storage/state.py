"""The state store port: dialog state, dedupe keys, counters and locks, in memory or in Redis.

Redis is an accelerator, never the record: every caller must survive `StateUnavailable` (the
database stays the source of truth), so the Redis client fails fast instead of retrying.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class StateUnavailable(RuntimeError):
    """The state store did not answer in time; callers degrade instead of failing the request."""


class LockNotAcquired(RuntimeError):
    """Someone else holds the lock and it did not come free within the wait."""


class StateStore(Protocol):
    def get_json(self, key: str) -> Any | None: ...
    def set_json(self, key: str, value: Any, ttl: float) -> None: ...
    def delete(self, key: str) -> None: ...
    def add_once(self, key: str, ttl: float) -> bool:
        """Set `key` if absent; True when this call set it (a dedupe or claim)."""
        ...
    def incr(self, key: str, ttl: float) -> int:
        """Increment a counter that expires `ttl` seconds after its first increment."""
        ...
    def ttl(self, key: str) -> float | None: ...
    def lock(self, key: str, ttl: float, wait: float) -> Any:
        """A context manager holding an exclusive lock; yields a fencing token."""
        ...
    def ping(self) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...


class MemoryStateStore:
    """In-process store for the embedded default and fast tests; one process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[Any, float]] = {}
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._fence = 0

    def _live(self, key: str) -> tuple[Any, float] | None:
        item = self._data.get(key)
        if item is not None and item[1] <= self._clock():
            del self._data[key]
            return None
        return item

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]

    def get_json(self, key: str) -> Any | None:
        with self._mutex:
            item = self._live(key)
            return None if item is None else json.loads(item[0])

    def set_json(self, key: str, value: Any, ttl: float) -> None:
        with self._mutex:
            if len(self._data) > 10_000:
                self._sweep()  # keeps memory bounded under a long soak
            self._data[key] = (json.dumps(value), self._clock() + ttl)

    def delete(self, key: str) -> None:
        with self._cond:
            self._data.pop(key, None)
            self._cond.notify_all()

    def add_once(self, key: str, ttl: float) -> bool:
        with self._mutex:
            if self._live(key) is not None:
                return False
            self._data[key] = ("1", self._clock() + ttl)
            return True

    def incr(self, key: str, ttl: float) -> int:
        with self._mutex:
            item = self._live(key)
            value, exp = (int(item[0]), item[1]) if item else (0, self._clock() + ttl)
            self._data[key] = (str(value + 1), exp)
            return value + 1

    def ttl(self, key: str) -> float | None:
        with self._mutex:
            item = self._live(key)
            return None if item is None else item[1] - self._clock()

    @contextmanager
    def lock(self, key: str, ttl: float, wait: float) -> Iterator[int]:
        lock_key = f"lock:{key}"
        deadline = time.monotonic() + wait
        with self._cond:
            while self._live(lock_key) is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockNotAcquired(key)
                self._cond.wait(min(remaining, 0.05))
            self._fence += 1
            token = self._fence
            self._data[lock_key] = (str(token), self._clock() + ttl)
        try:
            yield token
        finally:
            with self._cond:
                item = self._live(lock_key)
                if item is not None and item[0] == str(token):
                    del self._data[lock_key]
                self._cond.notify_all()

    def ping(self) -> bool:
        return True

    def delete_prefix(self, prefix: str) -> int:
        with self._mutex:
            keys = [k for k in self._data if k.startswith(prefix)]
            for k in keys:
                del self._data[k]
            return len(keys)


# Release only if we still own it (the value is our token), atomically.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisStateStore:
    """Redis-backed store shared by all workers. Every call either answers fast or raises."""

    def __init__(self, url: str, *, timeout: float = 0.3, prefix: str = "cc:") -> None:
        self._prefix = prefix
        # redis-py's defaults (5 s socket timeout, retries with backoff) block for about a
        # minute on a hung server; one attempt with a short timeout keeps WeChat's 5 s budget.
        self._r = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._release = self._r.register_script(_RELEASE)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as exc:
            raise StateUnavailable(str(exc)) from exc

    def get_json(self, key: str) -> Any | None:
        with self._guard():
            raw = self._r.get(self._k(key))
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any, ttl: float) -> None:
        with self._guard():
            self._r.set(self._k(key), json.dumps(value), px=max(1, int(ttl * 1000)))

    def delete(self, key: str) -> None:
        with self._guard():
            self._r.delete(self._k(key))

    def add_once(self, key: str, ttl: float) -> bool:
        with self._guard():
            return bool(self._r.set(self._k(key), "1", nx=True, px=max(1, int(ttl * 1000))))

    def incr(self, key: str, ttl: float) -> int:
        with self._guard():
            pipe = self._r.pipeline()
            pipe.incr(self._k(key))
            pipe.pexpire(self._k(key), max(1, int(ttl * 1000)), nx=True)
            value, _ = pipe.execute()
        return int(value)

    def ttl(self, key: str) -> float | None:
        with self._guard():
            ms = self._r.pttl(self._k(key))
        return None if ms < 0 else ms / 1000

    @contextmanager
    def lock(self, key: str, ttl: float, wait: float) -> Iterator[int]:
        lock_key = self._k(f"lock:{key}")
        with self._guard():
            token = int(self._r.incr(self._k("fence")))
        deadline = time.monotonic() + wait
        while True:
            with self._guard():
                if self._r.set(lock_key, str(token), nx=True, px=max(1, int(ttl * 1000))):
                    break
            if time.monotonic() >= deadline:
                raise LockNotAcquired(key)
            time.sleep(0.01)
        try:
            yield token
        finally:
            # If Redis is gone the TTL frees it; the fencing token protects writes meanwhile.
            with suppress(redis.ConnectionError, redis.TimeoutError):
                self._release(keys=[lock_key], args=[str(token)])

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def delete_prefix(self, prefix: str) -> int:
        with self._guard():
            keys = list(self._r.scan_iter(match=self._k(prefix) + "*", count=500))
            return int(self._r.delete(*keys)) if keys else 0

    def close(self) -> None:
        self._r.close()
