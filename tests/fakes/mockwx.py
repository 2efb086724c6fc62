"""MockWX: a fake WeChat/WeCom API on 127.0.0.1 that records calls, with programmable errcodes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request


@dataclass
class Call:
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class MockWX:
    calls: list[Call] = field(default_factory=list)
    errcodes: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    always: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    hangs: dict[str, float] = field(default_factory=dict)  # path -> seconds to hang (G29)
    released: threading.Event = field(default_factory=threading.Event)
    tokens_issued: int = 0
    kf_pages: deque[dict[str, Any]] = field(default_factory=deque)
    base: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def program(self, path: str, *codes: int) -> None:
        """The next calls to `path` answer these errcodes, one each, then 0."""
        self.errcodes[path].extend(codes)

    def sent(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def _errcode(self, path: str) -> int:
        with self._lock:
            if path in self.always:
                return self.always[path]
            queue = self.errcodes[path]
            return queue.popleft() if queue else 0

    def app(self) -> FastAPI:
        api = FastAPI()

        async def record(request: Request) -> Call:
            body: Any = None
            raw = await request.body()
            if raw:
                try:
                    body = await request.json()
                except ValueError:
                    body = raw.decode(errors="replace")
            call = Call(request.url.path, dict(request.query_params), body)
            with self._lock:
                self.calls.append(call)
            if self.delay:
                await asyncio.sleep(self.delay)
            hang = self.hangs.get(call.path)
            if hang:  # hang like a stuck platform; ends early when cleared or at teardown
                until = time.monotonic() + hang
                while (time.monotonic() < until and call.path in self.hangs
                       and not self.released.is_set()):
                    await asyncio.sleep(0.02)
            return call

        def token() -> dict[str, Any]:
            with self._lock:
                self.tokens_issued += 1
                n = self.tokens_issued
            return {"access_token": f"TOKEN-{n}", "expires_in": 7200}

        @api.post("/cgi-bin/stable_token")
        async def stable_token(request: Request) -> dict[str, Any]:
            await record(request)
            return token()

        @api.get("/cgi-bin/token")
        @api.get("/cgi-bin/gettoken")
        async def get_token(request: Request) -> dict[str, Any]:
            await record(request)
            return token()

        @api.post("/cgi-bin/kf/sync_msg")
        async def sync_msg(request: Request) -> dict[str, Any]:
            call = await record(request)
            with self._lock:
                page = self.kf_pages.popleft() if self.kf_pages else None
            if page is None:
                return {"errcode": 0, "next_cursor": call.body.get("cursor", ""),
                        "has_more": 0, "msg_list": []}
            return {"errcode": 0, **page}

        @api.post("/{path:path}")
        async def anything(request: Request, path: str) -> dict[str, Any]:
            call = await record(request)
            code = self._errcode(call.path)
            return {"errcode": code, "errmsg": "ok" if code == 0 else f"mock {code}"}

        return api


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """uvicorn on 127.0.0.1:<random port> in a thread; stopped in teardown."""

    def __init__(self, app: Any) -> None:
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def mockwx() -> Iterator[MockWX]:
    fake = MockWX()
    with ServerThread(fake.app()) as server:
        fake.base = server.url
        yield fake
        fake.released.set()  # no hung handler may hold the server's shutdown
