"""Open-loop load on real servers: a fixed arrival rate from many senders, latency measured
from when each message was due (so queueing shows), and server CPU per message from the
server processes' own CPU time (/proc). In one run, under the same generator:

  healthz   GET /healthz of the embedded server (the HTTP floor)
  minimal   a bare FastAPI endpoint doing one SQLite INSERT (benchmarks/minimal.py: the
            practical limit for one process)
  embedded  `corecircle serve --demo`: SQLite + in-memory state, one process
  pg-N      `corecircle serve --demo --workers N` on a fresh PostgreSQL database + Redis

Usage (PostgreSQL/Redis URLs default to the local test servers; runs needing them are skipped
when they do not answer):

    .venv/bin/python benchmarks/load.py [--rate 300] [--seconds 10] [--senders 200]
        [--workers 2 3 4] [--only embedded healthz minimal pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9")

# What a family circle says, by share: chatter (the bot keeps quiet), and questions to the bot.
TEXTS = [
    ("今晚吃饺子还是面条", False),
    ("明天谁去接孩子放学", False),
    ("@小助手 保单能贷款吗", True),
    ("@小助手 理赔要准备什么材料", True),
    ("@小助手 你好", True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a minimal keep-alive HTTP/1.1 client (httpx costs more CPU than the servers we measure) --


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, from when it was due
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def open_loop(port: int, method: str, path: str, rate: float, seconds: float,
                    senders: int, tag: str, max_conns: int = 256) -> Result:
    """Message i is due at t0 + i / rate whatever happened before; each goes on an idle
    connection (a new one if none is idle, up to max_conns, else it queues: that is latency)."""
    result = Result()
    idle: list[Conn] = []
    opened = 0
    slots = asyncio.Semaphore(max_conns)
    n = int(rate * seconds)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def one(i: int, due: float) -> None:
        nonlocal opened
        text, at = TEXTS[i % len(TEXTS)]
        body = None
        if method == "POST":
            sender = f"bench-{i % senders}"
            body = json.dumps({
                "chat_id": "demo-family", "sender_id": sender, "sender_name": sender,
                "text": text, "msg_id": f"{tag}-{i}", "mentions": ["小助手"] if at else [],
            }, ensure_ascii=False).encode()
        async with slots:
            for attempt in (1, 2):
                reused = bool(idle)
                conn = idle.pop() if idle else None
                if conn is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    conn = Conn(reader, writer)
                    opened += 1
                try:
                    status = await asyncio.wait_for(conn.request(method, path, body), 30)
                    break
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                    conn.writer.close()
                    # A kept-alive connection the server closed meanwhile: retry once on a
                    # fresh one, as any HTTP client does; anything else is an error.
                    if not (reused and attempt == 1 and isinstance(exc, ConnectionError)):
                        result.error(type(exc).__name__)
                        return
            result.latencies.append(loop.time() - due)
            if status != 200:
                result.error(str(status))
            assert conn is not None
            idle.append(conn)

    tasks = []
    for i in range(n):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    result.wall = loop.time() - t0
    for conn in idle:
        conn.writer.close()
    return result


# -- servers -------------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            ppid, cpu = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
            stats[int(entry.name)] = (ppid, cpu)
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        total += stats.get(p, (0, 0.0))[1]
        stack.extend(children.get(p, []))
    return total


class Server:
    def __init__(self, args: list[str], env: dict[str, str], port: int, ready: str) -> None:
        self.port = port
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.log.name}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(f"GET {ready} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if b" 200 " in s.recv(200):
                    break
            time.sleep(0.2)
        else:
            raise SystemExit(f"server not ready in 180 s: see {self.log.name}")

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def base_env(data: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CORECIRCLE_DATABASE_URL",
                        "CORECIRCLE_REDIS_URL")}
    env.update(CORECIRCLE_DATA_DIR=data, PYTHONPATH=str(ROOT), CORECIRCLE_LOG_LEVEL="WARNING",
               CORECIRCLE_SECRET_KEY="bench")
    return env


def serve(env: dict[str, str], workers: int = 1) -> Server:
    port = free_port()
    return Server([sys.executable, "-m", "bot.cli", "serve", "--demo", "--port", str(port),
                   "--workers", str(workers)], env, port, "/readyz")


def measure(server: Server, method: str, path: str, args: argparse.Namespace,
            tag: str) -> tuple[Result, float]:
    # a short warm-up (first-use lookups, connection pools), not counted
    asyncio.run(open_loop(server.port, method, path, 50, 1, args.senders, f"warm-{tag}"))
    cpu = server.cpu()
    result = asyncio.run(open_loop(server.port, method, path, args.rate, args.seconds,
                                   args.senders, tag))
    return result, server.cpu() - cpu


def row(name: str, result: Result, cpu: float, rate: float) -> str:
    ms = sorted(x * 1000 for x in result.latencies)
    done = len(ms)

    def pct(p: float) -> float:
        return ms[min(done - 1, int(done * p))] if ms else float("nan")

    errors = sum(result.errors.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(result.errors.items()))
    return (f"| {name} | {rate:.0f} | {done + (errors if not ms else 0)} | {errors}"
            f"{f' ({detail})' if detail else ''} | {done / result.wall:.0f} | {pct(0.5):.1f} | "
            f"{pct(0.99):.1f} | {ms[-1] if ms else float('nan'):.1f} | "
            f"{cpu * 1000 / max(done, 1):.2f} |")


def pg_available() -> bool:
    try:
        import psycopg  # noqa: PLC0415
        import redis  # noqa: PLC0415

        psycopg.connect(PG_ADMIN, connect_timeout=2).close()
        redis.Redis.from_url(REDIS, socket_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means "skip the PostgreSQL runs"
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--senders", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="*", default=[2, 3, 4])
    ap.add_argument("--only", nargs="*", default=["healthz", "minimal", "embedded", "pg"])
    args = ap.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as data:
        if "healthz" in args.only or "embedded" in args.only:
            server = serve(base_env(data))
            try:
                if "healthz" in args.only:
                    result, cpu = measure(server, "GET", "/healthz", args, "h")
                    rows.append(row("GET /healthz (embedded server)", result, cpu, args.rate))
                if "embedded" in args.only:
                    result, cpu = measure(server, "POST", "/api/v1/messages", args, "e")
                    rows.append(row("embedded: SQLite + memory, 1 process", result, cpu,
                                    args.rate))
            finally:
                server.stop()
        if "minimal" in args.only:
            port = free_port()
            env = {**base_env(data), "MINIMAL_DB": str(Path(data) / "minimal.db")}
            server = Server([sys.executable, "-m", "uvicorn", "benchmarks.minimal:app",
                             "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            env, port, "/healthz")
            try:
                result, cpu = measure(server, "POST", "/insert", args, "m")
                rows.append(row("minimal: FastAPI + one SQLite INSERT", result, cpu, args.rate))
            finally:
                server.stop()
        if "pg" in args.only and pg_available():
            import psycopg  # noqa: PLC0415
            import redis  # noqa: PLC0415

            for workers in args.workers:
                name = f"cc_bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                redis.Redis.from_url(REDIS).flushdb()
                env = {**base_env(data), "DATABASE_URL":
                       PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
                       + f"/{name}", "REDIS_URL": REDIS}
                try:
                    server = serve(env, workers)
                    try:
                        result, cpu = measure(server, "POST", "/api/v1/messages", args,
                                              f"p{workers}")
                        rows.append(row(f"PostgreSQL + Redis, {workers} workers", result, cpu,
                                        args.rate))
                    finally:
                        server.stop()
                finally:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"Machine: {machine()}; loopback; open loop at {args.rate:.0f}/s for "
          f"{args.seconds:.0f} s from {args.senders} senders; latency from when each was due")
    print()
    print("| target | rate/s | sent | errors | done/s | p50 ms | p99 ms | max ms | "
          "server CPU ms/msg |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
