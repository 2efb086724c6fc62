"""The real server's logs: clean access lines, masked numbers, no logging errors, request ids."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PHONE, ID_CARD = "13812345678", "110101199003071233"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("CORECIRCLE_")}
        environ.update(PYTHONPATH=str(ROOT), CORECIRCLE_DATA_DIR=str(tmp / "data"),
                       CORECIRCLE_SCHEDULER_ENABLED="false", **env)
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--demo", "--port", str(self.port)],
            cwd=tmp, env=environ, stdout=self._out, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError("server did not start:\n" + self.log.read_text())

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._out.close()
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    def make(**env: str) -> Server:
        server = Server(tmp_path, **env)
        started.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in started:
        if server.proc.poll() is None:
            server.stop()


def _traffic(base: str) -> httpx.Response:
    httpx.get(f"{base}/healthz?phone={PHONE}", timeout=10)
    return httpx.post(f"{base}/api/v1/messages", timeout=30, headers={"X-Request-ID": "req-42"},
                      json={"chat_id": "demo-family", "sender_id": "demo-customer",
                            "sender_name": "王建国", "msg_id": "log-1", "mentions": [],
                            "text": f"我的身份证{ID_CARD}，电话{PHONE}，出了事故"})


def test_access_lines_are_clean_and_masked(start: type[Server]) -> None:
    server = start()
    r = _traffic(server.base)
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req-42"
    log = server.stop()
    assert "Logging error" not in log
    assert "Traceback" not in log
    assert PHONE not in log
    assert ID_CARD not in log
    access = [line for line in log.splitlines() if "uvicorn.access" in line]
    assert any('"GET /healthz?phone=138****5678 HTTP/1.1" 200' in line for line in access), log
    assert any("[req-42]" in line and '"POST /api/v1/messages HTTP/1.1" 200' in line
               for line in access), log


def test_json_logs_carry_the_request_id(start: type[Server]) -> None:
    server = start(CORECIRCLE_LOG_JSON="true")
    r = _traffic(server.base)
    assert r.status_code == 200
    generated = httpx.get(f"{server.base}/healthz", timeout=10).headers["x-request-id"]
    log = server.stop()
    assert "Logging error" not in log
    assert PHONE not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines, log
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    assert any(x["request_id"] == "req-42" and "POST /api/v1/messages" in x["message"]
               for x in access)
    assert any(x["request_id"] == generated for x in access)
    assert {"time", "level", "logger", "message", "request_id"} <= set(lines[0])
