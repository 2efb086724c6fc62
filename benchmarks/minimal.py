"""The practical limit, for benchmarks/load.py: a bare FastAPI endpoint doing one SQLite INSERT.

Run by load.py as `uvicorn benchmarks.minimal:app` with MINIMAL_DB pointing at a scratch file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from fastapi import FastAPI

app = FastAPI()
_db = sqlite3.connect(os.environ.get("MINIMAL_DB", ":memory:"), check_same_thread=False,
                      isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, msg_id TEXT UNIQUE, "
            "body TEXT, at REAL)")
_lock = threading.Lock()


@app.post("/insert")
def insert(body: dict[str, object]) -> dict[str, str]:
    with _lock:
        _db.execute("INSERT INTO m (msg_id, body, at) VALUES (?, ?, ?)",
                    (str(body.get("msg_id")), str(body.get("text")), time.time()))
    return {"status": "ok"}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
