"""One contract, two stores: the in-memory default and the real Redis behave alike."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from storage.state import (
    LockNotAcquired,
    MemoryStateStore,
    RedisStateStore,
    StateStore,
    StateUnavailable,
)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    url = request.getfixturevalue("redis_url")
    s = RedisStateStore(url)
    yield s
    s.close()


def test_json_round_trip_and_delete(store: StateStore) -> None:
    store.set_json("dialog:1:a", {"intent": "change.contact", "slots": {"x": 1}}, ttl=60)
    assert store.get_json("dialog:1:a") == {"intent": "change.contact", "slots": {"x": 1}}
    store.delete("dialog:1:a")
    assert store.get_json("dialog:1:a") is None


def test_values_expire(store: StateStore) -> None:
    store.set_json("short", "v", ttl=0.05)
    assert store.get_json("short") == "v"
    time.sleep(0.12)
    assert store.get_json("short") is None


def test_ttl_is_reported(store: StateStore) -> None:
    store.set_json("k", 1, ttl=30)
    remaining = store.ttl("k")
    assert remaining is not None
    assert 25 < remaining <= 30
    assert store.ttl("missing") is None


def test_add_once_is_a_dedupe(store: StateStore) -> None:
    assert store.add_once("dedupe:wx:123", ttl=60) is True
    assert store.add_once("dedupe:wx:123", ttl=60) is False
    assert store.add_once("dedupe:wx:124", ttl=60) is True


def test_counter_expires_from_first_increment(store: StateStore) -> None:
    assert [store.incr("rate:robot", ttl=0.2) for _ in range(3)] == [1, 2, 3]
    time.sleep(0.3)
    assert store.incr("rate:robot", ttl=0.2) == 1


def test_lock_excludes_and_fences(store: StateStore) -> None:
    with store.lock("conv:a", ttl=5, wait=0) as first:
        with pytest.raises(LockNotAcquired), store.lock("conv:a", ttl=5, wait=0.05):
            pass
        with store.lock("conv:b", ttl=5, wait=0):
            pass  # other keys are independent
    with store.lock("conv:a", ttl=5, wait=0) as second:
        assert second > first  # fencing tokens only grow


def test_lock_expires_when_holder_vanishes(store: StateStore) -> None:
    with store.lock("conv:c", ttl=0.1, wait=0) as first:
        time.sleep(0.15)
        # The TTL ran out: a second owner may start, with a larger token...
        with store.lock("conv:c", ttl=5, wait=0.5) as second:
            assert second > first


def test_lock_serialises_threads_in_order(store: StateStore) -> None:
    seen: list[int] = []

    def work(n: int) -> None:
        with store.lock("conv:order", ttl=5, wait=5):
            seen.append(n)
            time.sleep(0.01)
            seen.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # No interleaving: each worker's two entries are adjacent.
    assert all(seen[i] == seen[i + 1] for i in range(0, len(seen), 2))


def test_delete_prefix(store: StateStore) -> None:
    for i in range(3):
        store.set_json(f"dialog:9:{i}", i, ttl=60)
    store.set_json("other", 1, ttl=60)
    assert store.delete_prefix("dialog:9:") == 3
    assert store.get_json("other") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_down_fails_fast() -> None:
    """A closed port: redis-py's defaults take seconds; ours answers at once."""
    store = RedisStateStore(f"redis://127.0.0.1:{_free_port()}/0", timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(StateUnavailable):
        store.get_json("x")
    assert time.perf_counter() - started < 1.0
    assert store.ping() is False


@pytest.mark.redis
def test_redis_hung_fails_fast(tmp_path: object) -> None:
    """A SIGSTOPped server (hung, port open): a call gives up within the timeout, not ~60 s."""
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        store = RedisStateStore(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        for _ in range(50):
            if store.ping():
                break
            time.sleep(0.05)
        store.set_json("k", 1, ttl=60)
        os.kill(proc.pid, signal.SIGSTOP)
        started = time.perf_counter()
        with pytest.raises(StateUnavailable):
            store.get_json("k")
        assert time.perf_counter() - started < 1.0
        os.kill(proc.pid, signal.SIGCONT)
        store.close()
    finally:
        proc.kill()
        proc.wait()


# -- the conversation lock under contention ------------------------------------------------------


def _other_process(store: StateStore, request: pytest.FixtureRequest) -> StateStore:
    """A second holder: for Redis a separate client with its own queue and agent (as another
    worker would be); in memory the same store (one process is all it serves)."""
    if isinstance(store, RedisStateStore):
        other = RedisStateStore(request.getfixturevalue("redis_url"))
        request.addfinalizer(other.close)
        return other
    return store


def _queued(store: StateStore, key: str) -> int:
    assert isinstance(store, MemoryStateStore | RedisStateStore)
    return store.waiting(key)


def test_waiters_get_the_lock_in_arrival_order(
    store: StateStore, request: pytest.FixtureRequest
) -> None:
    """One member's messages are handled in the order they arrived, not in a scramble."""
    holder = _other_process(store, request)
    order: list[int] = []
    with holder.lock("conv:fifo", ttl=5, wait=0):
        threads = []
        for n in range(8):
            t = threading.Thread(target=lambda n=n: _take(store, "conv:fifo", order, n))
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 5
            while _queued(store, "conv:fifo") < n + 1 and time.monotonic() < deadline:
                time.sleep(0.002)
    for t in threads:
        t.join(10)
    assert order == list(range(8))


def _take(store: StateStore, key: str, order: list[int], n: int) -> None:
    with store.lock(key, ttl=5, wait=8):
        order.append(n)


def test_waiters_sleep_instead_of_spinning(
    store: StateStore, request: pytest.FixtureRequest
) -> None:
    """40 messages waiting on one member cost neither CPU nor a Redis round trip each."""
    holder = _other_process(store, request)
    done: list[int] = []
    with holder.lock("conv:busy", ttl=5, wait=0):
        threads = [threading.Thread(target=_take, args=(store, "conv:busy", done, n))
                   for n in range(40)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while _queued(store, "conv:busy") < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        cpu, rounds = time.process_time(), getattr(store, "lock_poll_rounds", 0)
        time.sleep(0.5)
        cpu, rounds = time.process_time() - cpu, getattr(store, "lock_poll_rounds", 0) - rounds
    for t in threads:
        t.join(10)
    assert sorted(done) == list(range(40))
    assert cpu < 0.15  # 40 threads polling every 10 ms would burn far more
    # One poller for the process: about one round trip per 10 ms poll, not one per waiter.
    assert rounds <= 60


def test_renewed_lock_outlives_its_ttl_while_held(
    store: StateStore, request: pytest.FixtureRequest
) -> None:
    """A slow message keeps its member's lock even though the TTL is short."""
    other = _other_process(store, request)
    with store.lock("conv:slow", ttl=0.3, wait=0, renew=True) as first:
        time.sleep(0.9)
        with pytest.raises(LockNotAcquired), other.lock("conv:slow", ttl=5, wait=0.05):
            pass
    with other.lock("conv:slow", ttl=5, wait=0) as second:
        assert second > first


@pytest.mark.redis
def test_lock_of_a_killed_worker_frees_within_its_ttl(redis_url: str, tmp_path: object) -> None:
    """kill -9 while holding a member's lock: the next message waits at most the TTL (1 s
    here; the pipeline's 3 s is inside WeChat's 5 s retry window), never 10 s."""
    code = (
        "import sys, time\n"
        "from storage.state import RedisStateStore\n"
        f"s = RedisStateStore({redis_url!r})\n"
        "with s.lock('conv:killed', ttl=1.0, wait=0, renew=True):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        store = RedisStateStore(redis_url)
        time.sleep(1.5)  # longer than the TTL: only renewal can be keeping it
        with pytest.raises(LockNotAcquired), store.lock("conv:killed", ttl=5, wait=0):
            pass
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        with store.lock("conv:killed", ttl=5, wait=3):
            waited = time.monotonic() - killed
        store.close()
        assert waited < 1.5
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
