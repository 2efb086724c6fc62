"""G29: the platform hangs for 30 s. The send times out within the configured timeout, the row
goes back to the queue with a backoff and the reason, and customers keep being answered."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.channels.inbound import queue_replies
from bot.nlu.engine import IntentEngine
from bot.settings import Settings
from storage.db import transaction
from storage.models import Message
from tests.channels.wx import (
    DEMO_APPID,
    DEMO_KEY,
    DEMO_TOKEN,
    decrypt_reply,
    safe_request,
    text_xml,
)
from tests.fakes.mockwx import MockWX

SEND = "/cgi-bin/message/custom/send"
TIMEOUT = 1.0  # Settings.outbound_timeout, down from the 5 s default (≤ 5 s is enforced)


@pytest.fixture
def app(mockwx: MockWX, tmp_path: Path, nlu: IntentEngine) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, demo=True, database_url=f"sqlite:///{tmp_path}/hang.db",
        wechat_apps={"demo": {"token": DEMO_TOKEN, "aes_key": DEMO_KEY, "appid": DEMO_APPID,
                              "secret": "s3cret"}},
        wechat_api_base=mockwx.base, outbound_dispatch=False, outbound_timeout=TIMEOUT,
    )
    with TestClient(create_app(settings, nlu_engine=nlu)) as client:
        yield client


def _say(app: TestClient, text: str) -> tuple[str, dict[str, str]]:
    msg_id = str(uuid.uuid4().int % 10**16)
    query, body = safe_request(text_xml(text, msg_id=msg_id))
    r = app.post("/wechat/demo", params=query, content=body)
    assert r.status_code == 200, r.text
    return msg_id, decrypt_reply(r.text)


def test_g29_hung_platform_times_out_requeues_and_does_not_block_inbound(
    app: TestClient, mockwx: MockWX
) -> None:
    svc = app.app.state.services  # type: ignore[attr-defined]
    dispatcher = svc.channels.dispatcher
    msg_id, _ = _say(app, "保单什么时候到期")
    with transaction(svc.sessions) as s:  # its answer goes through the outbox (the late path)
        inbound = s.scalar(select(Message.id).where(Message.channel_msg_id == msg_id))
        assert inbound is not None
        assert queue_replies(s, inbound, datetime.now(UTC)) == 1
    mockwx.hangs[SEND] = 30.0
    took: list[float] = []

    def run() -> None:
        started = time.perf_counter()
        dispatcher.dispatch_once()
        took.append(time.perf_counter() - started)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not mockwx.sent(SEND) and time.monotonic() < deadline:  # the send is in the air
        time.sleep(0.01)
    assert mockwx.sent(SEND)
    # meanwhile another customer message is answered at once, passively
    started = time.perf_counter()
    _, reply = _say(app, "下次保费什么时候交")
    assert time.perf_counter() - started < TIMEOUT
    assert reply["Content"]
    assert worker.is_alive()  # ...while the outbound send was still hanging
    worker.join(10)
    assert not worker.is_alive()
    assert took[0] < TIMEOUT + 1.5  # the client's timeout, not the platform's 30 s
    with svc.sessions() as s:
        row = s.scalar(select(Message).where(Message.reply_to_id == inbound))
    assert row is not None
    assert row.status == "queued"
    assert row.attempts == 1
    assert row.last_error
    assert "Timeout" in row.last_error
    assert row.next_attempt_at is not None
    assert row.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC) > timedelta(seconds=3)
    dispatcher.dispatch_once()  # not yet due: the backoff holds it
    assert len(mockwx.sent(SEND)) == 1
    # the platform recovers; after the backoff the retry goes through
    mockwx.hangs.clear()
    dispatcher.clock = lambda: datetime.now(UTC) + timedelta(seconds=30)
    dispatcher.dispatch_once()
    with svc.sessions() as s:
        row = s.scalar(select(Message).where(Message.reply_to_id == inbound))
    assert row is not None
    assert row.status == "sent"
    assert row.attempts == 2
    assert len(mockwx.sent(SEND)) == 2
