"""Health, readiness, metrics, the demo seed, migrations and the real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from bot.demo import seed_demo
from bot.settings import Settings
from storage.db import make_engine, make_sessionmaker, schema_is_current, transaction, upgrade
from storage.models import Circle, CircleMember, Member, Policy, User


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "state": "ok", "scheduler": "ok"}


def test_readyz_reports_a_dead_redis_as_degraded_and_messages_still_flow(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(database_url=database_url, redis_url=f"redis://127.0.0.1:{port}/0")
    ready = client.get("/readyz")
    # Degraded, still ready: a load balancer must not drop every worker while Redis restarts.
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "database": "ok", "state": "down",
                            "scheduler": "ok"}
    started = time.perf_counter()
    r = client.post("/api/v1/messages", json={
        "chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
        "text": "@小助手 你好", "msg_id": "redis-down-1", "mentions": ["小助手"],
    })
    assert r.status_code == 200
    assert r.json()["replies"]
    assert time.perf_counter() - started < 2.0  # degraded, not hung
    again = client.post("/api/v1/messages", json={
        "chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
        "text": "@小助手 你好", "msg_id": "redis-down-1", "mentions": ["小助手"],
    })
    assert again.json()["duplicate"] is True  # the database dedupes without Redis


def test_metrics_count_messages_and_latency(client: TestClient) -> None:
    client.post("/api/v1/messages", json={
        "chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
        "text": "@小助手 你好", "msg_id": "m-metrics", "mentions": ["小助手"],
    })
    text = client.get("/metrics").text
    assert 'corecircle_messages_total{channel="webhook",direction="in"} 1.0' in text
    assert "corecircle_pipeline_seconds_count" in text
    assert 'corecircle_replies_total{audience="group"}' in text


def test_demo_seed_is_idempotent(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    settings = Settings(data_dir=tmp_path)
    for _ in range(2):
        with transaction(sessions) as s:
            seed_demo(s, settings)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Policy)) == 2
        assert s.scalar(select(func.count()).select_from(Circle)) == 2
        assert s.scalar(select(func.count()).select_from(User)) == 2
        family = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        assert family is not None
        roles = {m.member_id: (m.role, m.authorized) for m in s.scalars(
            select(CircleMember).where(CircleMember.circle_id == family.id))}
        assert roles["demo-customer"][0] == "customer"
        assert roles["demo-wife"] == ("family", False)
        assert roles["demo-agent"][0] == "agent"
        agent = s.get(Member, "demo-agent")
        assert agent is not None
        assert agent.supervisor_id == "demo-supervisor"
    engine.dispose()


def test_migrations_apply_twice_and_report_current(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)
    assert schema_is_current(engine)
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_real_server_answers_the_demo_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    """What `make run` does: `corecircle serve --demo` on the embedded default."""
    port = _free_port()
    env = {**os.environ, "CORECIRCLE_DATA_DIR": str(tmp_path), "PORT": str(port)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    cli = [sys.executable, "-m", "bot.cli", "serve", "--demo", "--port", str(port)]
    body = {"chat_id": "demo-family", "sender_id": "demo-customer", "sender_name": "王建国",
            "text": "@小助手 下次保费什么时候交", "msg_id": "live-1", "mentions": ["小助手"]}
    for run in range(2):
        log = tmp_path / f"server-{run}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(cli, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            r = httpx.post(f"{base}/api/v1/messages", json=body, timeout=5)
            assert r.status_code == 200
            replies = r.json()["replies"]
            assert any(x["to"] == "demo-customer" and "CC2024000123" in x["text"] for x in replies)
            assert r.json()["duplicate"] is (run == 1)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    db = create_engine(f"sqlite:///{tmp_path / 'corecircle.db'}")
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(Policy)).scalar_one() == 2
    db.dispose()


def test_readyz_is_503_when_the_database_is_down(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    """The one dependency without which messages cannot be answered takes a worker out."""
    client = make_client(database_url=f"sqlite:///{tmp_path / 'cc.db'}")
    svc = client.app.state.services  # type: ignore[attr-defined]
    svc.db.dispose()
    svc.db = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                           connect_args={"connect_timeout": 1})
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unready"
    assert ready.json()["database"] == "down"
    assert client.get("/healthz").status_code == 200  # alive: a restart would not help
