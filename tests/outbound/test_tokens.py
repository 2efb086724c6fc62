"""access_token single-flight over the memory and Redis state stores (L7, G25, G26)."""

from __future__ import annotations

import threading
import time

import pytest

from bot.outbound.tokens import Token, TokenCache
from storage.state import MemoryStateStore, RedisStateStore, StateStore


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> StateStore:
    if request.param == "memory":
        return MemoryStateStore()
    return RedisStateStore(request.getfixturevalue("redis_url"), timeout=0.5)


def test_fifty_concurrent_gets_fetch_once(store: StateStore) -> None:
    fetched: list[bool] = []

    def fetch(force: bool) -> Token:
        fetched.append(force)
        time.sleep(0.05)
        return Token(f"T{len(fetched)}", 7200)

    cache = TokenCache(store, "app", fetch)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get())) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fetched == [False]
    assert set(got) == {"T1"}


def test_invalid_token_refreshes_once_then_is_bounded(store: StateStore) -> None:
    fetched: list[bool] = []
    cache = TokenCache(store, "app2",
                       lambda force: fetched.append(force) or Token(f"T{len(fetched)}", 7200))
    first = cache.get()
    assert cache.refresh_after_invalid(first) == "T2"
    assert cache.refresh_after_invalid(first) == "T2"  # someone already refreshed: reuse
    assert cache.refresh_after_invalid("T2") is None  # again within the interval: refused
    assert fetched == [False, True]
