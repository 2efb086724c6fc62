"""Faults under load, on real servers: a worker killed with SIGKILL, Redis stopped and back.

Two `corecircle serve` processes share a fresh PostgreSQL database and a Redis of the test's
own (started here on a free loopback port, so stopping it disturbs nobody). A client thread
plays the load balancer and WeChat: it spreads messages over the workers and retries on the
other one when a request fails, as WeChat retries a message it got no answer for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import aliased

from storage.models import Message
from tests.conftest import Chat
from tests.test_workers import _drop, _env, _free_port, _fresh_database, _serve, _stop

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

SENDERS = 8  # few members, so their conversation locks are contended across workers


class OwnRedis:
    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import redis  # noqa: PLC0415

                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise AssertionError("own redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


class Traffic(threading.Thread):
    """Messages at a steady pace, alternating workers; a failed request is retried on the
    other worker with the same msg_id. Records what each acknowledged message was answered."""

    def __init__(self, ports: list[int], rate: float = 25) -> None:
        super().__init__(daemon=True)
        self.ports, self.rate = ports, rate
        self.dead: set[int] = set()
        self.acked: dict[str, dict[str, object]] = {}
        self.ordering: dict[str, str] = {}
        self.failures: list[str] = []
        self.stop_at = time.monotonic() + 3600
        self.sent = 0

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while time.monotonic() < self.stop_at:
                msg_id = f"fault-{n}"
                sender = f"member-{n % SENDERS}"
                body: dict[str, object] = {
                    "chat_id": "demo-family", "sender_id": sender, "sender_name": sender,
                    "text": "@小助手 保单能贷款吗" if n % 2 else "今晚吃什么",
                    "msg_id": msg_id, "mentions": ["小助手"] if n % 2 else []}
                self._deliver(client, n, msg_id, body)
                n += 1
                self.sent = n
                time.sleep(1 / self.rate)

    def _deliver(self, client: httpx.Client, n: int, msg_id: str, body: dict[str, object]) -> None:
        for attempt in range(6):
            live = [p for p in self.ports if p not in self.dead] or self.ports
            port = live[(n + attempt) % len(live)]
            try:
                r = client.post(f"http://127.0.0.1:{port}/api/v1/messages", json=body)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if r.status_code == 200:
                self.acked[msg_id] = r.json()
                self.ordering[msg_id] = r.headers.get("X-Corecircle-Ordering", "held")
                return
            time.sleep(0.2)  # a 503 asks for a retry
        self.failures.append(msg_id)


def _two_workers(tmp_path: Path, database_url: str, redis_url: str) -> list[tuple[
        subprocess.Popen[bytes], int]]:
    env = {**_env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "CORECIRCLE_SECRET_KEY": "fault-test", "CORECIRCLE_LOG_LEVEL": "WARNING"}
    workers = []
    for n in range(2):
        port = _free_port()
        workers.append((_serve(["--demo"], {**env, "CORECIRCLE_DATA_DIR": str(tmp_path / str(n))},
                               tmp_path / f"worker-{n}.log", port), port))
    return workers


def _check_once_each(database_url: str, traffic: Traffic) -> None:
    """Every acknowledged message is stored once and answered from one set of replies."""
    engine = create_engine(database_url)
    with engine.connect() as c:
        rows = c.execute(
            select(Message.channel_msg_id, func.count())
            .where(Message.direction == "in", Message.channel_msg_id.like("fault-%"))
            .group_by(Message.channel_msg_id)
        ).all()
        out = aliased(Message)
        replies = dict(c.execute(
            select(Message.channel_msg_id, func.count(out.id))
            .join(out, (out.reply_to_id == Message.id) & (out.circle_id == Message.circle_id)
                  & (out.status == "returned"), isouter=True)
            .where(Message.direction == "in", Message.channel_msg_id.like("fault-%"))
            .group_by(Message.channel_msg_id)
        ).all())
    engine.dispose()
    stored = dict(rows)
    assert traffic.failures == []
    assert set(traffic.acked) <= set(stored), "an acknowledged message was lost"
    assert all(count == 1 for count in stored.values()), "a message was stored twice"
    for msg_id, answer in traffic.acked.items():
        # processed once: the rows behind a message are exactly the replies it was answered
        assert replies[msg_id] == len(answer["replies"]), msg_id  # type: ignore[arg-type]


def test_a_worker_killed_mid_load_loses_nothing_and_doubles_nothing(
    pg_server_url: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    url = _fresh_database(pg_server_url)
    workers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        workers = _two_workers(tmp_path, url, own_redis.url)
        traffic = Traffic([port for _, port in workers])
        traffic.start()
        time.sleep(3)
        victim, victim_port = workers[0]
        os.kill(victim.pid, signal.SIGKILL)  # mid-load, maybe mid-message, holding locks
        traffic.dead.add(victim_port)
        killed_at = traffic.sent
        time.sleep(5)
        traffic.stop_at = time.monotonic()
        traffic.join(60)
        assert traffic.sent - killed_at >= 40, "the survivor carried on"
        _check_once_each(url, traffic)
        after = [f"fault-{n}" for n in range(killed_at + 5, traffic.sent)]
        assert all(m in traffic.acked for m in after)
    finally:
        for proc, _ in workers:
            _stop(proc)
        _drop(url, pg_server_url)


def test_redis_stopped_mid_load_every_message_is_answered_and_flagged(
    pg_server_url: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    url = _fresh_database(pg_server_url)
    workers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        workers = _two_workers(tmp_path, url, own_redis.url)
        traffic = Traffic([port for _, port in workers])
        traffic.start()
        time.sleep(2)
        own_redis.stop()
        down_from = traffic.sent
        time.sleep(3)
        down_to = traffic.sent
        own_redis.start()  # back, empty: the database still knows what was answered
        time.sleep(3)
        traffic.stop_at = time.monotonic()
        traffic.join(60)
        _check_once_each(url, traffic)
        during = [traffic.ordering[f"fault-{n}"] for n in range(down_from + 2, down_to)]
        assert during, "messages were sent while Redis was down"
        assert set(during) == {"process"}, "ordering fell back to the worker, and said so"
        tail = [traffic.ordering[f"fault-{n}"] for n in range(traffic.sent - 10, traffic.sent)]
        assert set(tail) == {"held"}, "the lock is back once Redis is"
        ready = httpx.get(f"http://127.0.0.1:{workers[1][1]}/readyz", timeout=5)
        assert ready.status_code == 200
    finally:
        for proc, _ in workers:
            _stop(proc)
        _drop(url, pg_server_url)


class Proxy:
    """A loopback TCP proxy whose live connections can all be cut (a database restart as the
    application's pooled connections see it), without touching the shared PostgreSQL."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut()


def test_database_connections_cut_cost_at_most_a_retry_and_recover(
    pg_server_url: str, make_client: Callable[..., TestClient]
) -> None:
    """Without the pool's pre-ping, a database restart (every pooled connection cut) costs at
    most one 503 with Retry-After, then the pool renews itself: no restart of ours needed."""
    url = _fresh_database(pg_server_url)
    pg_port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = Proxy(pg_port)
    try:
        client = make_client(database_url=url.replace(f":{pg_port}/", f":{proxy.port}/"),
                             scheduler_enabled=False)
        chat = Chat(client)
        for _ in range(5):  # pooled connections in use
            chat.say("demo-customer", "你好", at_bot=True)
        proxy.cut()
        statuses = []
        for n in range(6):
            r = chat.send("demo-customer", "你好", at_bot=True, msg_id=f"after-cut-{n}")
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["Retry-After"]
                again = chat.send("demo-customer", "你好", at_bot=True, msg_id=f"after-cut-{n}")
                assert again.status_code == 200, "the retry is answered"
        assert statuses.count(503) <= 1, statuses
        assert statuses[-4:] == [200] * 4
    finally:
        proxy.close()
        _drop(url, pg_server_url)
