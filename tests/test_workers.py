"""Several processes on one database: starting together, many writers, `serve --workers`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, func, select

from storage.models import Circle, Message, Policy

ROOT = Path(__file__).resolve().parent.parent

# Starts the real app (its lifespan: migrations, demo seeding, scheduler) at a given instant and
# stops it; the intent engine is not needed for a start, so a stand-in saves the training.
START = """
import sys, time
from fastapi.testclient import TestClient
from bot.app import create_app
from bot.settings import Settings
url, data, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, at - time.time()))
with TestClient(create_app(Settings(database_url=url, data_dir=data, demo=True),
                           nlu_engine=object())) as client:
    assert client.get("/healthz").status_code == 200
print("up", flush=True)
"""


def _fresh_database(pg_server_url: str) -> str:
    admin = pg_server_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"cc_start_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_server_url.rsplit("/", 1)[0] + f"/{name}"


def _drop(url: str, pg_server_url: str) -> None:
    admin = pg_server_url.replace("postgresql+psycopg://", "postgresql://")
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CORECIRCLE_DATABASE_URL",
                        "CORECIRCLE_REDIS_URL")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_two_workers_starting_at_once_on_a_fresh_database_both_come_up(
    pg_server_url: str, tmp_path: Path
) -> None:
    """Unserialised, one of two simultaneous starts crashed most times (a race on
    alembic_version and on the demo rows). Four rounds, each on a fresh database."""
    for round_ in range(4):
        url = _fresh_database(pg_server_url)
        try:
            at = time.time() + 4.0  # both are imported and waiting before the instant
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", START, url, str(tmp_path / f"d{round_}{n}"), str(at)],
                    env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                for n in range(2)
            ]
            outs = [p.communicate(timeout=90) for p in procs]
            for p, (out, err) in zip(procs, outs, strict=True):
                assert p.returncode == 0, f"round {round_}: {err[-3000:]}"
                assert out.strip() == "up"
            engine = create_engine(url)
            with engine.connect() as c:
                assert c.execute(select(func.count()).select_from(Policy)).scalar_one() == 2
                assert c.execute(select(func.count()).select_from(Circle)).scalar_one() == 2
            engine.dispose()
        finally:
            _drop(url, pg_server_url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(args: list[str], env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port),
                                 *args], env=env, stdout=sink, stderr=subprocess.STDOUT)
    for _ in range(900):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no answer in 90 s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _burst(base: str, senders: int, rounds: int) -> list[int]:
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=senders)) as client:
        for r in range(rounds):
            bodies = [{"chat_id": "demo-family", "sender_id": f"guest-{n}",
                       "sender_name": f"访客{n}", "text": f"@小助手 保单能贷款吗 {r}",
                       "msg_id": f"burst-{r}-{n}", "mentions": ["小助手"]}
                      for n in range(senders)]
            answers = await asyncio.gather(
                *(client.post("/api/v1/messages", json=b) for b in bodies))
            statuses += [a.status_code for a in answers]
    return statuses


@pytest.mark.timeout(240)
def test_fifty_concurrent_senders_on_sqlite_get_no_database_is_locked(tmp_path: Path) -> None:
    """The embedded default on a real server: 50 distinct members writing at the same moment
    (four times) are all answered; none gets `database is locked` as a 503."""
    port = _free_port()
    env = {**_env(), "CORECIRCLE_DATA_DIR": str(tmp_path)}
    proc = _serve(["--demo"], env, tmp_path / "server.log", port)
    try:
        statuses = asyncio.run(_burst(f"http://127.0.0.1:{port}", senders=50, rounds=4))
    finally:
        _stop(proc)
    assert statuses.count(200) == 200, sorted(set(statuses))
    assert "database is locked" not in (tmp_path / "server.log").read_text()
    engine = create_engine(f"sqlite:///{tmp_path / 'corecircle.db'}")
    with engine.connect() as c:
        inbound = c.execute(select(func.count()).select_from(Message)
                            .where(Message.direction == "in")).scalar_one()
    engine.dispose()
    assert inbound == 200


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(240)
def test_serve_with_two_workers_on_postgres_and_redis(
    pg_server_url: str, redis_url: str, tmp_path: Path
) -> None:
    """`corecircle serve --workers 2` as the README says: one port, two processes, both up
    (they started together on a fresh database), every message answered once."""
    url = _fresh_database(pg_server_url)
    port = _free_port()
    env = {**_env(), "CORECIRCLE_DATA_DIR": str(tmp_path), "DATABASE_URL": url,
           "REDIS_URL": redis_url, "CORECIRCLE_SECRET_KEY": "test-secret"}
    log = tmp_path / "server.log"
    try:
        proc = _serve(["--demo", "--workers", "2"], env, log, port)
        try:
            deadline = time.monotonic() + 90
            while log.read_text().count("Application startup complete") < 2:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            statuses = asyncio.run(_burst(f"http://127.0.0.1:{port}", senders=20, rounds=2))
        finally:
            _stop(proc)
        assert statuses.count(200) == 40
        text = log.read_text()
        for failure in ("startup failed", "UniqueViolation", "IntegrityError", "Child process"
                        " died"):
            assert failure not in text, text[-3000:]
        engine = create_engine(url)
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(Message)
                             .where(Message.direction == "in")).scalar_one() == 40
        engine.dispose()
    finally:
        _drop(url, pg_server_url)


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    env = {**_env(), "CORECIRCLE_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--workers", "2",
                          "--port", str(_free_port())], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode != 0
    assert "REDIS_URL" in out.stderr
