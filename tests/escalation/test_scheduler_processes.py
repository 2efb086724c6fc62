"""S2/S4 on the real services: two `corecircle scheduler` processes over PostgreSQL and Redis.

Each process runs the scan and the outbox; the demo family's group is delivered to a webhook
sink on loopback, which counts what the family would see. Nothing may arrive twice, nothing may
be lost, and a kill -9 of one scheduler between claim and send leaves the survivor to send the
rows it had claimed (after their lease) and to carry on. Processes are started on 127.0.0.1
with bounded waits and only the processes started here are stopped.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from escalation import followups
from storage.db import transaction
from storage.enums import FollowUpKind
from storage.models import Circle
from tests.conftest import _truncate_all
from tests.escalation.conftest import sessions_of
from tests.fakes.sink import Sink, sink

__all__ = ["sink"]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # two processes importing scikit-learn on a shared 2-core machine


@dataclass
class Scheduler:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def services(make_client: Callable[..., TestClient], pg_server_url: str,
             redis_url: str) -> tuple[TestClient, str, str]:
    """The schema and the demo circle on a clean PostgreSQL database; no scheduler in here."""
    _truncate_all(pg_server_url)
    app = make_client(database_url=pg_server_url, redis_url=redis_url, scheduler_enabled=False,
                      outbound_dispatch=False)
    return app, pg_server_url, redis_url


@pytest.fixture
def spawn(tmp_path: Path, services: tuple[TestClient, str, str],
          sink: Sink) -> Iterator[Callable[..., Scheduler]]:
    _, database_url, redis_url = services
    started: list[Scheduler] = []

    def start(name: str, **extra: str) -> Scheduler:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CORECIRCLE_", "DATABASE_URL", "REDIS_URL"))}
        env.update({
            "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "CORECIRCLE_DATA_DIR": str(tmp_path / name), "CORECIRCLE_SECRET_KEY": "test-key",
            "CORECIRCLE_OUTBOUND_ROUTES": json.dumps(
                {"demo-family": {"kind": "webhook", "url": sink.url}}),
            "CORECIRCLE_FOLLOWUP_LEASE_SECONDS": "5", "CORECIRCLE_OUTBOUND_LEASE_SECONDS": "3",
            # long heartbeats: only the wake-ups can make them prompt
            "CORECIRCLE_SCHEDULER_INTERVAL_SECONDS": "30", "CORECIRCLE_OUTBOUND_INTERVAL": "30",
            "CORECIRCLE_LOG_LEVEL": "INFO", **extra,
        })
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "scheduler"], cwd=ROOT,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        s = Scheduler(name, proc, log)
        started.append(s)
        return s

    yield start
    for s in started:  # only ours, by pid
        if s.alive():
            s.proc.send_signal(signal.SIGTERM)
    for s in started:
        try:
            s.proc.wait(20)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(5)


def _wait(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _ready(*schedulers: Scheduler) -> None:
    for s in schedulers:
        _wait(lambda s=s: "scheduler started" in s.text() or not s.alive(), START_TIMEOUT,
              f"{s.name} to start")
        assert s.alive(), s.text()[-3000:]


def _owe(app: TestClient, prefix: str, n: int, *, first_in: float,
         spread: float) -> dict[str, datetime]:
    """n follow-ups for the demo family, due from `first_in` s on over `spread` s."""
    start = datetime.now(UTC) + timedelta(seconds=first_in)
    due = {f"{prefix}{i:03d}": start + timedelta(seconds=spread * i / n) for i in range(n)}
    with transaction(sessions_of(app)) as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == "demo-family"))
        assert circle is not None
        for text, at in due.items():
            followups.create(s, circle_id=circle.id, ticket_id=None, recipient_id=None,
                             kind=FollowUpKind.MESSAGE, text=text, due_at=at,
                             now=datetime.now(UTC), created_by="demo-agent")
    return due


def _exactly_once(sink: Sink, due: dict[str, datetime], prefix: str, seconds: float) -> list[float]:
    _wait(lambda: len(sink.arrivals(prefix)) >= len(due), seconds, f"all {prefix} to arrive")
    time.sleep(1.0)  # a double would show up now
    arrived = sink.arrivals(prefix)
    assert sorted(arrived) == sorted(due), "nothing lost"
    doubled = {t: len(v) for t, v in arrived.items() if len(v) != 1}
    assert doubled == {}, "nothing sent twice"
    return sorted(v[0] - due[t].timestamp() for t, v in arrived.items())


def test_two_scheduler_processes_send_three_hundred_followups_exactly_once(
    services: tuple[TestClient, str, str], spawn: Callable[..., Scheduler], sink: Sink,
) -> None:
    app = services[0]
    a, b = spawn("a"), spawn("b")
    _ready(a, b)
    due = _owe(app, "双活", 300, first_in=2.0, spread=10.0)
    lateness = _exactly_once(sink, due, "双活", seconds=90)
    assert a.alive(), a.text()[-2000:]
    assert b.alive(), b.text()[-2000:]
    assert "Traceback" not in a.text() + b.text()
    assert min(lateness) >= 0
    p99 = lateness[math.ceil(0.99 * len(lateness)) - 1]
    print(f"two schedulers, 300 follow-ups over 10 s: lateness p50 "
          f"{lateness[len(lateness) // 2]:.2f} s, p99 {p99:.2f} s, max {lateness[-1]:.2f} s")
    # Loose here (the 2 s target is measured in test_on_time.py): two processes, the sink and
    # other test runs share 2 cores. Without wake-ups the 30 s heartbeats would show.
    assert p99 <= 10.0, lateness[-5:]


@pytest.mark.parametrize("outbox", ["followups", "messages"])
def test_a_scheduler_killed_between_claim_and_send_loses_and_doubles_nothing(
    services: tuple[TestClient, str, str], spawn: Callable[..., Scheduler], sink: Sink,
    tmp_path: Path, outbox: str,
) -> None:
    app = services[0]
    marker = tmp_path / "claimed"
    victim = spawn("victim", CORECIRCLE_TEST_PAUSE_AFTER_CLAIM=f"{outbox}:300",
                   CORECIRCLE_TEST_PAUSE_MARKER=str(marker))
    survivor = spawn("survivor")
    _ready(victim, survivor)
    due: dict[str, datetime] = {}
    for round_ in range(5):  # until the victim has claimed something (it nearly always does)
        due |= _owe(app, f"崩溃{round_}-", 20, first_in=1.0, spread=1.0)
        owed = len(due)
        _wait(lambda owed=owed: marker.exists() or len(sink.arrivals("崩溃")) >= owed, 30,
              "a claim")
        if marker.exists():
            break
    assert marker.exists(), "the victim never claimed a row"
    os.kill(victim.proc.pid, signal.SIGKILL)  # between its claim and its send
    victim.proc.wait(10)
    claimed = marker.read_text().split()
    assert claimed
    _exactly_once(sink, due, "崩溃", seconds=60)  # the survivor sent them, after the lease
    assert survivor.alive(), survivor.text()[-2000:]
    after = _owe(app, "之后", 10, first_in=1.0, spread=1.0)  # and it carries on
    lateness = _exactly_once(sink, after, "之后", seconds=30)
    assert lateness[-1] <= 5.0
    assert survivor.alive()
