"""Shared fixtures: real PostgreSQL and Redis when reachable (required when CI=true)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from bot.app import create_app
from bot.nlu.engine import IntentEngine
from bot.services import train_engine
from bot.settings import Settings
from bot.signing import signed_headers
from storage.models import Base
from storage.scripts import ScriptLibrary

PG_ADMIN = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str, why: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but unreachable: {why}")
    pytest.skip(f"{what} unreachable: {why}")


@pytest.fixture(autouse=True)
def _no_ambient_service_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built in tests use only the URLs a test passes: CI exports DATABASE_URL and
    REDIS_URL, and an app silently picking them up would share state across tests."""
    for var in ("DATABASE_URL", "REDIS_URL", "CORECIRCLE_DATABASE_URL", "CORECIRCLE_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A throwaway database on the real PostgreSQL server, dropped at the end."""
    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"cc_test_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    base, _, _ = PG_ADMIN.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    # A db of its own, flushed per test; CORECIRCLE_TEST_REDIS_DB lets parallel runs use others.
    url = REDIS_URL.rsplit("/", 1)[0] + "/" + os.environ.get("CORECIRCLE_TEST_REDIS_DB", "15")
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    return url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()
    client.close()


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            if conn.execute(text("SELECT to_regclass('public.messages')")).scalar():
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test using this runs twice: on the embedded SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cc.db'}"
    url: str = request.getfixturevalue("pg_server_url")
    _truncate_all(url)
    return url


@pytest.fixture(scope="session")
def scripts() -> ScriptLibrary:
    return ScriptLibrary()


@pytest.fixture(scope="session")
def nlu(scripts: ScriptLibrary) -> IntentEngine:
    """Trained once for the whole run: training is the slow part of an app start."""
    return train_engine(scripts)


@pytest.fixture
def make_client(
    tmp_path: Path, nlu: IntentEngine
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        # No daily care from the background scan: on a demo birthday or a festival it would
        # add follow-ups to tests that count them (tests/care drive it with a fake clock).
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "demo": True,
                                  "care_enabled": False}
        values.update(overrides)
        client = TestClient(create_app(Settings(**values), nlu_engine=nlu))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(
    make_client: Callable[..., TestClient], database_url: str, request: pytest.FixtureRequest
) -> TestClient:
    """The two production shapes: SQLite + in-memory state, PostgreSQL + the real Redis."""
    if database_url.startswith("postgresql"):
        redis_url: str = request.getfixturevalue("redis_url")
        return make_client(database_url=database_url, redis_url=redis_url)
    return make_client(database_url=database_url)


def post_signed(client: TestClient, body: dict[str, Any], secret: str,
                now: float | None = None) -> Any:
    """POST /api/v1/messages as the bridge does when a webhook secret is configured."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"content-type": "application/json", **signed_headers(secret, raw, now)}
    return client.post("/api/v1/messages", content=raw, headers=headers)


class Chat:
    """A group chat as a test reads it: `chat.say("demo-customer", "...")`; with `secret`, every
    message is signed as the bridge signs it."""

    _ids = count(1)

    def __init__(self, client: TestClient, chat_id: str = "demo-family",
                 secret: str | None = None) -> None:
        self.client, self.chat_id, self.secret = client, chat_id, secret

    def send(self, sender: str, text: str, *, at_bot: bool = False, msg_id: str | None = None,
             **extra: Any) -> Any:
        body = {
            "chat_id": self.chat_id,
            "sender_id": sender,
            "sender_name": sender,
            "text": f"@小助手\u2005{text}" if at_bot else text,
            "msg_id": msg_id or f"t-{next(self._ids)}-{uuid.uuid4().hex[:6]}",
            "mentions": ["小助手"] if at_bot else [],
            **extra,
        }
        if self.secret is not None:
            return post_signed(self.client, body, self.secret)
        return self.client.post("/api/v1/messages", json=body)

    def say(self, sender: str, text: str, **kw: Any) -> dict[str, Any]:
        response = self.send(sender, text, **kw)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def chat(client: TestClient) -> Chat:
    return Chat(client)


def login(client: TestClient, username: str, password: str = "demo") -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
