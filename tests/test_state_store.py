"""One contract, two stores: the in-memory default and the real Redis behave alike."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
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
