"""The state store port: dialog state, dedupe keys, counters and locks, in memory or in Redis.

Redis is an accelerator, never the record: every caller must survive `StateUnavailable` (the
database stays the source of truth), so the Redis client fails fast instead of retrying.

Locks. Waiting is per key and first come, first served: a release hands the lock to the next
waiter for that key only (nobody else is woken). In Redis, each process queues its own waiters
in-process and one background thread per process polls Redis for every key it waits on (one
round trip per poll, whatever the number of keys and waiters) and renews the locks it holds
with `renew=True`, so such a lock can have a TTL shorter than WeChat's 5 s retry window: a
process that dies holding one frees it within the TTL, a slow live holder keeps it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


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
    def lock(self, key: str, ttl: float, wait: float, *, renew: bool = False) -> Any:
        """A context manager holding an exclusive lock; yields a fencing token.

        Without `renew` the lock lapses `ttl` seconds after it was taken, whatever the holder
        does. With `renew` it is kept while the holder's process lives and lapses `ttl`
        seconds after that process stops renewing it (killed, or cut off from the store)."""
        ...
    def ping(self) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...


@dataclass(eq=False)
class _Waiter:
    ttl: float
    renew: bool
    event: threading.Event = field(default_factory=threading.Event)
    token: int | None = None


@dataclass(eq=False)
class _Held:
    token: int
    expires: float
    waiters: deque[_Waiter] = field(default_factory=deque)


class LocalLocks:
    """Exclusive locks inside one process: per-key FIFO waiting, fencing tokens, TTLs.

    A release hands the lock straight to the longest waiter for that key (so arrival order is
    kept and no other thread wakes); a holder past its TTL is overtaken by the first waiter."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._fence = 0

    def _expiry(self, ttl: float, renew: bool) -> float:
        return math.inf if renew else self._clock() + ttl

    def _grant(self, held: _Held, waiter: _Waiter) -> None:
        self._fence += 1
        held.token = waiter.token = self._fence
        held.expires = self._expiry(waiter.ttl, waiter.renew)
        waiter.event.set()

    def acquire(self, key: str, ttl: float, wait: float, *, renew: bool = False) -> int:
        deadline = time.monotonic() + wait
        with self._mutex:
            held = self._held.get(key)
            if held is None or (held.expires <= self._clock() and not held.waiters):
                self._fence += 1
                self._held[key] = _Held(self._fence, self._expiry(ttl, renew))
                return self._fence
            if wait <= 0:
                raise LockNotAcquired(key)
            me = _Waiter(ttl, renew)
            held.waiters.append(me)
        while True:
            with self._mutex:
                if me.token is not None:
                    return me.token
                now = self._clock()
                if held.expires <= now and held.waiters[0] is me:
                    held.waiters.popleft()
                    self._grant(held, me)  # the holder vanished: overtake it
                    return me.token  # type: ignore[return-value]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    head = held.waiters[0] is me
                    held.waiters.remove(me)
                    if head and held.waiters and held.expires <= now:
                        held.waiters[0].event.set()  # let the next in line overtake
                    raise LockNotAcquired(key)
                # Sleep until handed the lock, the holder's TTL runs out, or our wait ends.
                nap = min(remaining, max(held.expires - now, 0.001))
                me.event.clear()
            me.event.wait(nap)

    def release(self, key: str, token: int) -> None:
        with self._mutex:
            held = self._held.get(key)
            if held is None or held.token != token:
                return  # it lapsed and someone else took it: theirs now
            if held.waiters:
                self._grant(held, held.waiters.popleft())
            else:
                del self._held[key]

    def lapse_after(self, key: str, token: int, ttl: float) -> None:
        """Start the TTL of a lock taken with `renew` now (it lapses `ttl` from now)."""
        with self._mutex:
            held = self._held.get(key)
            if held is not None and held.token == token:
                held.expires = self._clock() + ttl

    @contextmanager
    def hold(self, key: str, ttl: float, wait: float, *, renew: bool = False) -> Iterator[int]:
        token = self.acquire(key, ttl, wait, renew=renew)
        try:
            yield token
        finally:
            self.release(key, token)

    def waiting(self, key: str) -> int:
        with self._mutex:
            held = self._held.get(key)
            return 0 if held is None else len(held.waiters)


class MemoryStateStore:
    """In-process store for the embedded default and fast tests; one process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[Any, float]] = {}
        self._mutex = threading.Lock()
        self._locks = LocalLocks(clock)

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
        with self._mutex:
            self._data.pop(key, None)

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

    def lock(self, key: str, ttl: float, wait: float, *, renew: bool = False) -> Any:
        # In one process a holder cannot die without its `finally`: `renew` keeps it held.
        return self._locks.hold(key, ttl, wait, renew=renew)

    def waiting(self, key: str) -> int:
        """How many threads wait for `key`."""
        return self._locks.waiting(key)

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

# KEYS[1] is the fence counter; for each further key (ARGV: its TTL in ms) take it if free.
# Returns one fencing token per key, 0 where the key is held. One round trip for any number.
_ACQUIRE = """
local out = {}
for i = 2, #KEYS do
  if redis.call('exists', KEYS[i]) == 1 then
    out[i - 1] = 0
  else
    local t = redis.call('incr', KEYS[1])
    redis.call('set', KEYS[i], t, 'PX', ARGV[i - 1])
    out[i - 1] = t
  end
end
return out
"""

# KEYS: locks; ARGV: token, ttl ms, token, ttl ms, ... Extends the ones still ours; 1/0 each.
_RENEW = """
local out = {}
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) == ARGV[2 * i - 1] then
    out[i] = redis.call('pexpire', KEYS[i], ARGV[2 * i])
  else
    out[i] = 0
  end
end
return out
"""

POLL_SECONDS = 0.01


@dataclass(eq=False)
class _RemoteWait:
    key: str
    ttl_ms: int
    event: threading.Event = field(default_factory=threading.Event)
    token: int = 0
    error: BaseException | None = None


@dataclass(eq=False)
class _Renewal:
    key: str
    token: int
    ttl: float
    due: float  # monotonic time of the next renewal


class _LockAgent:
    """One thread per process: polls Redis for all waited-on locks and renews held ones."""

    def __init__(
        self,
        acquire: Callable[[list[_RemoteWait]], list[int]],
        renew: Callable[[list[_Renewal]], list[int]],
        release: Callable[[str, int], None],
        poll: float = POLL_SECONDS,
    ) -> None:
        self._acquire, self._renew, self._release = acquire, renew, release
        self._poll = poll
        self._cond = threading.Condition()
        self._waits: dict[str, _RemoteWait] = {}
        self._renewals: dict[str, _Renewal] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.rounds = 0  # poll round trips, for tests and the curious

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="redis-lock-agent",
                                            daemon=True)
            self._thread.start()

    def wait_for(self, key: str, ttl_ms: int, wait: float) -> int:
        """Block until this process takes `key` in Redis; 0 when the wait ran out."""
        w = _RemoteWait(key, ttl_ms)
        with self._cond:
            self._waits[key] = w  # one waiter per key per process: LocalLocks queues the rest
            self._ensure_thread()
            self._cond.notify()
        w.event.wait(wait)
        with self._cond:
            if self._waits.get(key) is w:
                del self._waits[key]
        if w.error is not None:
            raise StateUnavailable(str(w.error)) from w.error
        return w.token  # set under the condition before the event, so never half-seen

    def waiting(self, key: str) -> int:
        with self._cond:
            return int(key in self._waits)

    def hold(self, key: str, token: int, ttl: float) -> None:
        with self._cond:
            self._renewals[key] = _Renewal(key, token, ttl, time.monotonic() + ttl / 3)
            self._ensure_thread()
            self._cond.notify()

    def drop(self, key: str) -> None:
        with self._cond:
            self._renewals.pop(key, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    next_renewal = min((r.due for r in self._renewals.values()), default=None)
                    if self._waits or (next_renewal is not None and next_renewal <= now):
                        break
                    self._cond.wait(None if next_renewal is None else next_renewal - now)
                if self._closed:
                    return
                waits = list(self._waits.values())
                now = time.monotonic()
                renewals = [r for r in self._renewals.values() if r.due <= now]
            if waits:
                self._poll_once(waits)
            if renewals:
                self._renew_once(renewals)
            if waits:
                time.sleep(self._poll)

    def _poll_once(self, waits: list[_RemoteWait]) -> None:
        self.rounds += 1
        error: StateUnavailable | None = None
        try:
            tokens = self._acquire(waits)
        except StateUnavailable as exc:
            tokens, error = [0] * len(waits), exc
        orphans: list[tuple[str, int]] = []
        with self._cond:
            for w, token in zip(waits, tokens, strict=True):
                if self._waits.get(w.key) is not w:
                    if token:  # the waiter gave up as we took it: give it back at once
                        orphans.append((w.key, int(token)))
                    continue
                if error is not None or token:
                    w.token, w.error = int(token), error
                    del self._waits[w.key]
                    w.event.set()
        for key, token in orphans:
            with suppress(StateUnavailable):
                self._release(key, token)

    def _renew_once(self, renewals: list[_Renewal]) -> None:
        kept: list[int | None]
        try:
            kept = list(self._renew(renewals))
        except StateUnavailable:
            kept = [None] * len(renewals)  # try again soon; the TTL covers a short blip
        with self._cond:
            for r, ok in zip(renewals, kept, strict=True):
                if self._renewals.get(r.key) is not r:
                    continue
                if ok == 0:
                    log.warning("lock %s lapsed while held (store outage or a long stall)", r.key)
                    del self._renewals[r.key]
                else:
                    r.due = time.monotonic() + (r.ttl / 3 if ok else r.ttl / 10)


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
        self._release_script = self._r.register_script(_RELEASE)
        self._acquire_script = self._r.register_script(_ACQUIRE)
        self._renew_script = self._r.register_script(_RENEW)
        self._local = LocalLocks()  # this process's waiters queue here, per key
        self._agent = _LockAgent(self._acquire_many, self._renew_many, self._release_one)

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

    # -- locks ----------------------------------------------------------------------------------
    def _acquire_many(self, waits: list[_RemoteWait]) -> list[int]:
        with self._guard():
            out = self._acquire_script(
                keys=[self._k("fence"), *(w.key for w in waits)], args=[w.ttl_ms for w in waits]
            )
        return [int(t) for t in out]

    def _renew_many(self, renewals: list[_Renewal]) -> list[int]:
        args: list[int] = []
        for r in renewals:
            args += [r.token, max(1, int(r.ttl * 1000))]
        with self._guard():
            out = self._renew_script(keys=[r.key for r in renewals], args=args)
        return [int(v) for v in out]

    def _release_one(self, lock_key: str, token: int) -> None:
        with self._guard():
            self._release_script(keys=[lock_key], args=[str(token)])

    @contextmanager
    def lock(self, key: str, ttl: float, wait: float, *, renew: bool = False) -> Iterator[int]:
        lock_key = self._k(f"lock:{key}")
        deadline = time.monotonic() + wait
        ttl_ms = max(1, int(ttl * 1000))
        # First in line in this process (others wait here, woken one at a time), then Redis:
        # one round trip when the key is free, else the agent's shared poll. The local place
        # in line does not lapse while its holder waits for Redis; then it has Redis's TTL.
        with self._local.hold(key, ttl, wait, renew=True) as local:
            probe = _RemoteWait(lock_key, ttl_ms)
            token = self._acquire_many([probe])[0]
            if not token:
                token = self._agent.wait_for(lock_key, ttl_ms, deadline - time.monotonic())
                if not token:
                    raise LockNotAcquired(key)
            if not renew:
                self._local.lapse_after(key, local, ttl)
            else:
                self._agent.hold(lock_key, token, ttl)
            try:
                yield token
            finally:
                if renew:
                    self._agent.drop(lock_key)
                # If Redis is gone the TTL frees it; the fencing token protects writes meanwhile.
                with suppress(StateUnavailable):
                    self._release_one(lock_key, token)

    def waiting(self, key: str) -> int:
        """How many of this process's threads wait for `key` (queued here or polling Redis)."""
        return self._local.waiting(key) + self._agent.waiting(self._k(f"lock:{key}"))

    @property
    def lock_poll_rounds(self) -> int:
        """Round trips spent polling for contended locks (one per poll, for all waiters)."""
        return self._agent.rounds

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
        self._agent.close()
        self._r.close()
