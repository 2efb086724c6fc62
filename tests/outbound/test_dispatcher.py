"""The outbox against MockWX: sends once, quotas, token refresh, window closed (G23-G26)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.channels.inbound import queue_replies
from bot.nlu.engine import IntentEngine
from bot.settings import Settings
from storage.db import transaction
from storage.models import Message, Ticket
from tests.channels.wx import DEMO_APPID, DEMO_KEY, DEMO_TOKEN, safe_request, text_xml
from tests.fakes.mockwx import MockWX

SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def app(mockwx: MockWX, tmp_path: object, nlu: IntentEngine,
        database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, demo=True, database_url=database_url,
        wechat_apps={"demo": {"token": DEMO_TOKEN, "aes_key": DEMO_KEY, "appid": DEMO_APPID,
                              "secret": "s3cret"}},
        wechat_api_base=mockwx.base, outbound_dispatch=False,
    )
    with TestClient(create_app(settings, nlu_engine=nlu)) as client:
        yield client


def _queue_a_reply(app: TestClient) -> int:
    """The customer writes; the bot's answer is handed to the outbox (as on the late path)."""
    msg_id = str(uuid.uuid4().int % 10**16)
    query, body = safe_request(text_xml("保单什么时候到期", msg_id=msg_id))
    assert app.post("/wechat/demo", params=query, content=body).status_code == 200
    svc = app.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        inbound = s.scalar(select(Message.id).where(Message.channel_msg_id == msg_id))
        assert inbound is not None
        assert queue_replies(s, inbound, datetime.now(UTC)) >= 1
    return int(inbound)


def _rows(app: TestClient, inbound: int) -> list[Message]:
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        return list(s.scalars(select(Message).where(Message.reply_to_id == inbound)))


def _dispatch(app: TestClient) -> int:
    return int(app.app.state.services.channels.dispatcher.dispatch_once())  # type: ignore[attr-defined]


def test_queued_reply_is_sent_once_to_the_openid(app: TestClient, mockwx: MockWX) -> None:
    inbound = _queue_a_reply(app)
    _dispatch(app)
    _dispatch(app)
    sends = mockwx.sent(SEND)
    assert len(sends) == len(_rows(app, inbound))
    assert sends[0].body["touser"] == "o-demo-customer"
    assert all(r.status == "sent" and r.sent_at and r.attempts == 1 for r in _rows(app, inbound))


def test_g23_window_closed_is_recorded_without_a_retry_loop(app: TestClient,
                                                            mockwx: MockWX) -> None:
    inbound = _queue_a_reply(app)
    mockwx.always[SEND] = 45015
    for _ in range(3):
        _dispatch(app)
    rows = _rows(app, inbound)
    assert {r.status for r in rows} == {"window_closed"}
    assert len(mockwx.sent(SEND)) == len(rows)
    with app.app.state.services.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.reason == "delivery_window_closed")) == len(rows)


def test_g24_quota_used_up_stops_and_hands_to_a_human(app: TestClient, mockwx: MockWX) -> None:
    inbound = _queue_a_reply(app)
    mockwx.always[SEND] = 45047
    _dispatch(app)
    _dispatch(app)
    rows = _rows(app, inbound)
    assert {r.status for r in rows} == {"needs_human"}
    assert len(mockwx.sent(SEND)) == len(rows)


def test_g25_invalid_token_once_means_one_refresh_and_one_retry(app: TestClient,
                                                               mockwx: MockWX) -> None:
    inbound = _queue_a_reply(app)
    mockwx.program(SEND, 40001)
    _dispatch(app)
    rows = _rows(app, inbound)
    assert {r.status for r in rows} == {"sent"}
    assert len(mockwx.sent("/cgi-bin/stable_token")) == 2
    assert mockwx.sent("/cgi-bin/stable_token")[1].body["force_refresh"] is True
    assert len(mockwx.sent(SEND)) == len(rows) + 1


def test_g26_always_invalid_token_is_bounded_and_surfaced(app: TestClient,
                                                         mockwx: MockWX) -> None:
    inbound = _queue_a_reply(app)
    mockwx.always[SEND] = 40001
    for _ in range(5):
        _dispatch(app)
    assert len(mockwx.sent("/cgi-bin/stable_token")) <= 2  # first fetch + one forced refresh
    rows = _rows(app, inbound)
    assert all(r.status == "queued" and r.last_error and "40001" in r.last_error for r in rows)
    assert all(r.next_attempt_at is not None for r in rows)  # backoff, not a hot loop
