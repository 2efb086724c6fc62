"""P5 over a real uvicorn on 127.0.0.1: oversized bodies get 413 before they are read in full,
and the server's memory stays flat.

The client sends only the headers and the first part of each body, then waits for the answer:
a server that needed the whole body would never answer (and the read would time out). The
server runs in this process, so /proc/<our pid>/status is the server's RSS."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import create_app
from bot.nlu.engine import IntentEngine
from bot.settings import Settings
from tests.channels.wx import PLAIN_APP, plain_request
from tests.fakes.mockwx import ServerThread

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, nlu: IntentEngine) -> Iterator[str]:
    data = tmp_path_factory.mktemp("lb")
    settings = Settings(data_dir=data, demo=True, database_url=f"sqlite:///{data}/lb.db",
                        wechat_apps=PLAIN_APP)
    with ServerThread(create_app(settings, nlu_engine=nlu)) as running:
        yield f"127.0.0.1:{running.port}"


def _rss() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _path() -> str:
    query, _ = plain_request("")
    return "/wechat/plain?" + "&".join(f"{k}={v}" for k, v in query.items())


def _answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """Read one response (the server closes the connection after a 413)."""
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length(raw):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _connect(host: str) -> socket.socket:
    name, port = host.split(":")
    return socket.create_connection((name, int(port)), timeout=5)


def _declared(host: str, size: int) -> tuple[int, dict[str, object]]:
    """Content-Length: size; only 16 KB of it is ever sent."""
    with _connect(host) as sock:
        sock.sendall(f"POST {_path()} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode() + b"<" * 16384)
        return _answer(sock)


def _chunked(host: str, sent: int) -> tuple[int, dict[str, object]]:
    """Transfer-Encoding: chunked, no Content-Length, no final chunk: `sent` bytes, then wait."""
    with _connect(host) as sock:
        sock.sendall(f"POST {_path()} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"<" * 16384
        for _ in range(sent // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return _answer(sock)


def test_p5_declared_two_megabytes_is_413_before_the_body(server: str) -> None:
    status, body = _declared(server, 2 * MIB)
    assert status == 413
    assert body["error"]["code"] == "BODY_TOO_LARGE"  # type: ignore[index]


def test_p5_declared_two_hundred_megabytes_is_413_before_the_body(server: str) -> None:
    status, _ = _declared(server, 200 * MIB)
    assert status == 413


def test_p5_chunked_without_content_length_is_413_before_the_end(server: str) -> None:
    status, body = _chunked(server, 128 * 1024)  # twice the cap, and the body never ends
    assert status == 413
    assert body["error"]["code"] == "BODY_TOO_LARGE"  # type: ignore[index]


def test_p5_rss_stays_flat_under_oversized_bodies(server: str) -> None:
    for _ in range(3):  # warm up: first-request allocations are not growth
        _declared(server, 2 * MIB)
        _chunked(server, 128 * 1024)
    before = _rss()
    for _ in range(20):
        assert _declared(server, 2 * MIB)[0] == 413
        assert _chunked(server, 128 * 1024)[0] == 413
    grown = _rss() - before
    assert grown < 20 * MIB, f"RSS grew by {grown / MIB:.1f} MiB"
