"""A webhook sink on loopback: records every POSTed JSON body with the time it arrived."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []  # (epoch seconds, body)
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with sink.lock:
                    sink.received.append((time.time(), body))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        with self.lock:
            return [str(body.get("text")) for _, body in self.received]

    def arrivals(self, prefix: str) -> dict[str, list[float]]:
        """Arrival times by text, for texts starting with `prefix`."""
        out: dict[str, list[float]] = {}
        with self.lock:
            for at, body in self.received:
                text = str(body.get("text"))
                if text.startswith(prefix):
                    out.setdefault(text, []).append(at)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()
