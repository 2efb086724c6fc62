"""Timing over a real uvicorn: the late path (G11) and a retry storm (G8), with MockWX."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from bot.app import create_app
from bot.nlu.engine import IntentEngine, Parse
from bot.settings import Settings
from storage.models import Message
from tests.channels.wx import DEMO_APPID, DEMO_KEY, DEMO_TOKEN, safe_request, text_xml
from tests.fakes.mockwx import MockWX, ServerThread, mockwx

__all__ = ["mockwx"]
SEND = "/cgi-bin/message/custom/send"


class SlowEngine:
    """The real engine behind an injected delay, counting its runs."""

    def __init__(self, inner: IntentEngine, delay: float) -> None:
        self.inner, self.delay, self.runs = inner, delay, 0

    def parse(self, text: str, now: datetime) -> Parse:
        self.runs += 1
        time.sleep(self.delay)
        return self.inner.parse(text, now)


@pytest.fixture
def served(tmp_path: Path, nlu: IntentEngine, mockwx: MockWX,
           request: pytest.FixtureRequest) -> Iterator[tuple[str, SlowEngine, str]]:
    delay, deadline = request.param
    engine = SlowEngine(nlu, delay)
    db = f"sqlite:///{tmp_path}/lb.db"
    settings = Settings(
        data_dir=tmp_path, demo=True, database_url=db, wechat_reply_deadline=deadline,
        wechat_apps={"demo": {"token": DEMO_TOKEN, "aes_key": DEMO_KEY, "appid": DEMO_APPID,
                              "secret": "s3cret"}},
        wechat_api_base=mockwx.base, outbound_interval=0.1,
    )
    with ServerThread(create_app(settings, nlu_engine=engine)) as server:  # type: ignore[arg-type]
        yield server.url, engine, db


def _count(db: str, *where: object) -> int:
    engine = create_engine(db)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Message).where(*where)).scalar_one()
    engine.dispose()
    return int(n)


@pytest.mark.parametrize("served", [(1.5, 0.5)], indirect=True)
def test_g11_late_pipeline_answers_success_in_time_and_sends_once(
    served: tuple[str, SlowEngine, str], mockwx: MockWX
) -> None:
    url, engine, db = served
    query, body = safe_request(text_xml("保单什么时候到期"))
    started = time.perf_counter()
    r = httpx.post(f"{url}/wechat/demo", params=query, content=body, timeout=5)
    assert time.perf_counter() - started < 1.2
    assert r.text == "success"
    deadline = time.monotonic() + 8
    while not mockwx.sent(SEND) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a second send would show up by now
    replies = _count(db, Message.direction == "out", Message.status == "sent")
    assert len(mockwx.sent(SEND)) == replies >= 1
    assert engine.runs == 1


@pytest.mark.parametrize("served", [(1.0, 3.0)], indirect=True)
def test_g8_retry_storm_processes_once(served: tuple[str, SlowEngine, str],
                                       mockwx: MockWX) -> None:
    url, engine, db = served
    msg_id = str(uuid.uuid4().int % 10**16)
    results: list[httpx.Response] = []

    def deliver(after: float) -> None:
        time.sleep(after)
        query, body = safe_request(text_xml("保单什么时候到期", msg_id=msg_id))
        results.append(httpx.post(f"{url}/wechat/demo", params=query, content=body, timeout=10))

    threads = [threading.Thread(target=deliver, args=(t,)) for t in (0, 0.3, 0.6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200, 200]
    assert _count(db, Message.channel_msg_id == msg_id) == 1
    assert engine.runs == 1
    assert mockwx.sent(SEND) == []  # answered passively; nothing went through the outbox
