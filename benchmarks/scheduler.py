"""10,000 follow-ups due in the same minute, on PostgreSQL: do they all go out within it?

Creates a throwaway PostgreSQL database, seeds the demo circle, starts S `corecircle scheduler`
processes on loopback, then inserts N follow-ups due evenly over one minute (starting a few
seconds after the insert ends). A follow-up "goes out" when the scheduler has turned it into
its outbound message (status `sent`, the message queued for the outbox, in one transaction).
The benchmark watches the table every 0.2 s, so each lateness is measured from outside the
scheduler (an upper bound, to within 0.2 s). With `--deliver` the demo family's group also has
a webhook route to a sink on loopback, and the time each message reaches it is reported too.

    .venv/bin/python benchmarks/scheduler.py [--followups 10000] [--schedulers 1] [--deliver]
        [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from bot.demo import seed_demo  # noqa: E402
from bot.settings import Settings  # noqa: E402
from storage.db import make_engine, make_sessionmaker, transaction, upgrade  # noqa: E402
from storage.models import Circle, FollowUp  # noqa: E402
from storage.wakeups import CHANNEL  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Sink:
    """Counts what reaches the group's webhook, with arrival times."""

    def __init__(self) -> None:
        self.arrived: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"] or 0)))
                with sink.lock:
                    sink.arrived.setdefault(str(body.get("text")), []).append(time.time())
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--followups", type=int, default=10_000)
    ap.add_argument("--schedulers", type=int, default=1)
    ap.add_argument("--window", type=float, default=60.0, help="seconds the due times span")
    ap.add_argument("--deliver", action="store_true", help="also deliver to a loopback webhook")
    ap.add_argument("--pg", default=os.environ.get(
        "BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()

    name = f"cc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    try:
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        settings = Settings(database_url=url, data_dir=tmp, demo=True, secret_key="bench")
        with transaction(sessions) as s:
            seed_demo(s, settings)
        with sessions() as s:
            circle_id = s.scalar(select(Circle.id).where(Circle.chat_id == "demo-family"))
        sink = Sink() if args.deliver else None
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORECIRCLE_")}
        env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": url,
                    "CORECIRCLE_SECRET_KEY": "bench", "CORECIRCLE_LOG_LEVEL": "WARNING"})
        if sink is not None:
            env["CORECIRCLE_OUTBOUND_ROUTES"] = json.dumps(
                {"demo-family": {"kind": "webhook", "url": sink.url}})
        for i in range(args.schedulers):
            log = (tmp / f"scheduler{i}.log").open("wb")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "scheduler"], cwd=ROOT,
                env={**env, "CORECIRCLE_DATA_DIR": str(tmp / f"s{i}"),
                     "CORECIRCLE_LOG_LEVEL": "INFO"},
                stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 180
        for i in range(args.schedulers):
            log_path = tmp / f"scheduler{i}.log"
            while "scheduler started" not in log_path.read_text(errors="replace"):
                if time.monotonic() > deadline or procs[i].poll() is not None:
                    raise SystemExit(f"scheduler {i} did not start:\n{log_path.read_text()}")
                time.sleep(0.2)

        n = args.followups
        started = time.perf_counter()
        first_due = datetime.now(UTC) + timedelta(seconds=10)
        due = [first_due + timedelta(seconds=args.window * i / n) for i in range(n)]
        rows = [{"dedupe_key": f"bench-{i}", "kind": "message", "circle_id": circle_id,
                 "text": f"到期提醒{i:05d}", "due_at": due[i], "status": "pending",
                 "attempts": 0, "created_by": "demo-agent", "created_at": datetime.now(UTC)}
                for i in range(n)]
        with transaction(sessions) as s:
            for k in range(0, n, 1000):
                s.execute(insert(FollowUp), rows[k:k + 1000])
            s.execute(text("SELECT pg_notify(:c, :p)"),
                      {"c": CHANNEL, "p": first_due.isoformat()})
        insert_s = time.perf_counter() - started
        if datetime.now(UTC) > first_due - timedelta(seconds=1):
            raise SystemExit("inserting took too long for the chosen start; raise the offset")
        print(f"inserted {n} follow-ups in {insert_s:.1f} s; due {first_due:%H:%M:%S} + "
              f"{args.window:g} s; load {load()}", flush=True)

        seen: dict[int, float] = {}
        with sessions() as s:
            ids = {r[0]: r[1] for r in s.execute(select(FollowUp.id, FollowUp.due_at))}
        end = first_due + timedelta(seconds=args.window)
        give_up = time.time() + args.window + 240
        while len(seen) < n and time.time() < give_up:
            with sessions() as s:
                done = s.scalars(select(FollowUp.id).where(
                    FollowUp.status.not_in(("pending", "claimed"))))
                now = time.time()
                for fid in done:
                    seen.setdefault(fid, now)
            time.sleep(0.2)
        lateness = [seen[f] - ids[f].timestamp() for f in seen]
        with sessions() as s:
            statuses: dict[str, int] = dict(s.execute(text(
                "SELECT status, count(*) FROM followups GROUP BY status")).all())
            queued = s.scalar(text("SELECT count(*) FROM messages WHERE text LIKE '到期提醒%'"))
            db_late = [r[0] for r in s.execute(text(
                "SELECT extract(epoch FROM sent_at - due_at) FROM followups "
                "WHERE status = 'sent'"))]
        last = max(seen.values()) if seen else float("nan")
        print(f"\n{machine()}; PostgreSQL; {args.schedulers} scheduler process(es); "
              f"load average at the end {load()}")
        print("| follow-ups | due over | out | within 2 s of due | p50 s | p99 s | max s | "
              "last out after the window's end |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        on_time = sum(1 for x in lateness if x <= 2.0)
        print(f"| {n} | {args.window:g} s | {len(seen)} | {on_time} | {pct(lateness, 50):.2f} | "
              f"{pct(lateness, 99):.2f} | {max(lateness):.2f} | "
              f"{last - end.timestamp():+.2f} s |")
        print(f"statuses {statuses}; messages queued {queued}; lateness by the scheduler's own "
              f"sent_at: p50 {pct(db_late, 50):.2f} s, p99 {pct(db_late, 99):.2f} s")
        if sink is not None:
            until = time.time() + 600
            while sum(len(v) for v in sink.arrived.values()) < n and time.time() < until:
                time.sleep(0.5)
            by_text = {f"到期提醒{i:05d}": due[i].timestamp() for i in range(n)}
            got = {t: v for t, v in sink.arrived.items() if t in by_text}
            twice = sum(1 for v in got.values() if len(v) > 1)
            arrive = [v[0] - by_text[t] for t, v in got.items()]
            span = max(v[0] for v in got.values()) - min(v[0] for v in got.values())
            print(f"delivered to the webhook: {len(got)} of {n}, {twice} twice; lateness p50 "
                  f"{pct(arrive, 50):.1f} s, p99 {pct(arrive, 99):.1f} s, max {max(arrive):.1f}"
                  f" s; {len(got) / span:.0f} msg/s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
