"""End-to-end latency of the group-chat webhook on a real server (the embedded default).

Starts `corecircle serve --demo` on a random loopback port with a fresh data dir, sends N
distinct messages (C at a time) from the demo family, and prints p50/p99/max latency, errors and
throughput as a table with the machine described. Usage:

    .venv/bin/python benchmarks/pipeline.py [--messages 500] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TEXTS = [
    ("demo-customer", "@小助手 下次保费什么时候交", True),
    ("demo-customer", "@小助手 保单能贷款吗", True),
    ("demo-wife", "今晚吃饺子还是面条", False),
    ("demo-wife", "@小助手 理赔要准备什么材料", True),
    ("demo-customer", "@小助手 你好", True),
]


def machine() -> str:
    cpu = "unknown CPU"
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(base: str, n: int, concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def one(i: int) -> None:
            nonlocal errors
            sender, text, at = TEXTS[i % len(TEXTS)]
            body = {"chat_id": "demo-family", "sender_id": sender, "sender_name": sender,
                    "text": text, "msg_id": f"bench-{i}", "mentions": ["小助手"] if at else []}
            async with sem:
                t = time.perf_counter()
                r = await client.post("/api/v1/messages", json=body)
                latencies.append(time.perf_counter() - t)
                errors += r.status_code != 200

        await asyncio.gather(*(one(i) for i in range(n)))
    return latencies, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=10)
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "CORECIRCLE_DATA_DIR": data}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--demo", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            started = time.perf_counter()
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
                if time.perf_counter() - started > 120:
                    raise SystemExit("server did not become ready in 120 s")
            startup = time.perf_counter() - started
            t0 = time.perf_counter()
            lat, errors = asyncio.run(run(base, args.messages, args.concurrency))
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    ms = sorted(x * 1000 for x in lat)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"Machine: {machine()}; embedded default (SQLite + in-memory state), loopback")
    print()
    print("| messages | concurrency | errors | p50 ms | p99 ms | max ms | msg/s | startup s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(ms)} | {args.concurrency} | {errors} | {statistics.median(ms):.1f} | "
          f"{p99:.1f} | {ms[-1]:.1f} | {len(ms) / wall:.0f} | {startup:.1f} |")


if __name__ == "__main__":
    main()
