"""WeCom callback (G3), kf service_state mapping and the kf pull with a durable cursor."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bot.app import create_app
from bot.channels.kf import ServiceState, service_state_for
from bot.nlu.engine import IntentEngine
from bot.settings import Settings
from escalation.tickets import claim
from storage.db import transaction
from storage.enums import TicketStatus
from storage.models import ChannelCursor, MemberIdentity, Message, Ticket
from tests.channels.wx import DEMO_KEY, sign
from tests.fakes.mockwx import MockWX, mockwx

__all__ = ["mockwx"]
CORP, TOKEN = "wwcorecircle", "wecom-token"


@pytest.fixture
def corp(tmp_path: Path, nlu: IntentEngine, mockwx: MockWX) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, demo=True, database_url=f"sqlite:///{tmp_path}/c.db",
        wecom_apps={"kf": {"token": TOKEN, "aes_key": DEMO_KEY, "corp_id": CORP,
                           "secret": "corp-secret"}},
        wecom_api_base=mockwx.base, outbound_dispatch=False,
    )
    with TestClient(create_app(settings, nlu_engine=nlu)) as client:
        yield client


def _echo(plain: str) -> tuple[str, str, str, str]:
    crypto = WeChatCrypto(TOKEN, DEMO_KEY, CORP)
    echostr = PrpCrypto(crypto.key).encrypt(plain, CORP).decode()
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
    return echostr, ts, nonce, sign(TOKEN, ts, nonce, echostr)


def test_g3_encrypted_echostr_with_escaped_plus_and_slash(corp: TestClient) -> None:
    for _ in range(20):  # until the ciphertext has a + or /, which must arrive %2B / %2F
        echostr, ts, nonce, sig = _echo("echo-12345")
        if "+" in echostr or "/" in echostr:
            break
    url = (f"/wecom/kf?msg_signature={sig}&timestamp={ts}&nonce={nonce}"
           f"&echostr={quote(echostr, safe='')}")
    started = time.perf_counter()
    r = corp.get(url)
    assert r.status_code == 200
    assert r.text == "echo-12345"
    assert time.perf_counter() - started < 1
    if "+" in echostr:  # a proxy that decoded twice turns + into a space: refused cleanly
        bad = f"/wecom/kf?msg_signature={sig}&timestamp={ts}&nonce={nonce}&echostr={echostr}"
        assert corp.get(bad).status_code == 403


@pytest.mark.parametrize(("status", "state"), [
    (None, ServiceState.BOT), (TicketStatus.OPEN, ServiceState.QUEUED),
    (TicketStatus.CLAIMED, ServiceState.HUMAN), (TicketStatus.WAITING_CUSTOMER, ServiceState.HUMAN),
    (TicketStatus.RESOLVED, ServiceState.ENDED),
])
def test_service_state_mirrors_the_ticket(status: TicketStatus | None,
                                          state: ServiceState) -> None:
    assert service_state_for(status) == state


def test_kf_event_pulls_with_a_durable_cursor_and_queues_replies(corp: TestClient,
                                                                 mockwx: MockWX) -> None:
    svc = corp.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        s.add(MemberIdentity(channel="wecom-kf", channel_user_id="wm-ext-1",
                             member_id="demo-customer"))
    mockwx.kf_pages.append({"next_cursor": "C1", "has_more": 0, "msg_list": [
        {"msgid": "kf-1", "open_kfid": "wk-1", "external_userid": "wm-ext-1",
         "send_time": int(time.time()), "origin": 3, "msgtype": "text",
         "text": {"content": "保单什么时候到期"}},
    ]})
    future = svc.channels.pull_kf("kf", "wk-1", "sync-token")
    assert future.result(timeout=10) == 1
    with svc.sessions() as s:
        cursor = s.scalar(select(ChannelCursor.value).where(ChannelCursor.channel == "wecom-kf"))
        replies = list(s.scalars(select(Message).where(
            Message.channel == "wecom", Message.direction == "out")))
    assert cursor == "C1"
    assert replies
    assert {r.status for r in replies} == {"queued"}
    assert mockwx.sent("/cgi-bin/kf/sync_msg")[0].body["token"] == "sync-token"
    svc.channels.dispatcher.dispatch_once()
    sends = mockwx.sent("/cgi-bin/kf/send_msg")
    assert len(sends) == len(replies)
    assert sends[0].body["open_kfid"] == "wk-1"
    # the next pull starts from the stored cursor
    assert svc.channels.pull_kf("kf", "wk-1", "").result(timeout=10) == 0
    assert mockwx.sent("/cgi-bin/kf/sync_msg")[1].body["cursor"] == "C1"


def _kf_escalate(svc: object, mockwx: MockWX, msgid: str = "kf-esc-1") -> None:
    mockwx.kf_pages.append({"next_cursor": "C-esc", "has_more": 0, "msg_list": [
        {"msgid": msgid, "open_kfid": "wk-1", "external_userid": "wm-ext-1",
         "send_time": int(time.time()), "origin": 3, "msgtype": "text",
         "text": {"content": "转人工"}},
    ]})
    assert svc.channels.pull_kf("kf", "wk-1", "").result(timeout=10) == 1  # type: ignore[attr-defined]


def _ticket(svc: object) -> Ticket:
    with svc.sessions() as s:  # type: ignore[attr-defined]
        ticket = s.scalar(select(Ticket).where(Ticket.member_id == "demo-customer")
                          .order_by(Ticket.id.desc()).limit(1))
    assert ticket is not None
    return ticket


def test_kf_service_state_follows_the_handoff(corp: TestClient, mockwx: MockWX) -> None:
    svc = corp.app.state.services  # type: ignore[attr-defined]
    trans = "/cgi-bin/kf/service_state/trans"
    with transaction(svc.sessions) as s:
        s.add(MemberIdentity(channel="wecom-kf", channel_user_id="wm-ext-1",
                             member_id="demo-customer"))
        s.add(MemberIdentity(channel="wecom", channel_user_id="lina", member_id="demo-agent"))
        for t in s.scalars(select(Ticket).where(Ticket.member_id == "demo-customer")):
            s.delete(t)  # only the ticket this test opens
    _kf_escalate(svc, mockwx)
    assert _ticket(svc).status == TicketStatus.OPEN

    assert svc.channels.sync_kf_states() == 1
    calls = mockwx.sent(trans)
    assert len(calls) == 1
    assert calls[0].body == {"open_kfid": "wk-1", "external_userid": "wm-ext-1",
                             "service_state": 2}
    assert svc.channels.sync_kf_states() == 0  # no change: no call
    assert len(mockwx.sent(trans)) == 1

    with transaction(svc.sessions) as s:  # an agent claims it
        claim(s, s.get(Ticket, _ticket(svc).id), actor_id="demo-agent", now=datetime.now(UTC))
    assert svc.channels.sync_kf_states() == 1
    assert mockwx.sent(trans)[-1].body == {"open_kfid": "wk-1", "external_userid": "wm-ext-1",
                                           "service_state": 3, "servicer_userid": "lina"}
    assert svc.channels.sync_kf_states() == 0

    with transaction(svc.sessions) as s:  # resolved
        ticket = s.get(Ticket, _ticket(svc).id)
        ticket.status, ticket.resolved_at = TicketStatus.RESOLVED, datetime.now(UTC)
    assert svc.channels.sync_kf_states() == 1
    assert mockwx.sent(trans)[-1].body["service_state"] == 4
    assert svc.channels.sync_kf_states() == 0
    assert svc.channels.sync_kf_states() == 0  # ENDED stays ENDED: no flip back to BOT
    assert [c.body["service_state"] for c in mockwx.sent(trans)] == [2, 3, 4]
    with svc.sessions() as s:
        mirrored = s.scalar(select(ChannelCursor.value).where(
            ChannelCursor.channel == "wecom-kf-state", ChannelCursor.key == "wm-ext-1"))
    assert mirrored == "4|"


def test_kf_service_state_failure_is_retried_next_pass(corp: TestClient,
                                                       mockwx: MockWX) -> None:
    svc = corp.app.state.services  # type: ignore[attr-defined]
    trans = "/cgi-bin/kf/service_state/trans"
    with transaction(svc.sessions) as s:
        s.add(MemberIdentity(channel="wecom-kf", channel_user_id="wm-ext-1",
                             member_id="demo-customer"))
        for t in s.scalars(select(Ticket).where(Ticket.member_id == "demo-customer")):
            s.delete(t)
    _kf_escalate(svc, mockwx, "kf-esc-2")
    mockwx.program(trans, 95000)
    assert svc.channels.sync_kf_states() == 0  # refused: nothing remembered
    with svc.sessions() as s:
        assert s.scalar(select(ChannelCursor).where(
            ChannelCursor.channel == "wecom-kf-state")) is None
    assert svc.channels.sync_kf_states() == 1  # retried, accepted
    assert svc.channels.sync_kf_states() == 0
    assert [c.body["service_state"] for c in mockwx.sent(trans)] == [2, 2]


def test_kf_customer_without_a_ticket_is_with_the_bot(corp: TestClient, mockwx: MockWX) -> None:
    svc = corp.app.state.services  # type: ignore[attr-defined]
    trans = "/cgi-bin/kf/service_state/trans"
    with transaction(svc.sessions) as s:
        s.add(MemberIdentity(channel="wecom-kf", channel_user_id="wm-ext-1",
                             member_id="demo-customer"))
        for t in s.scalars(select(Ticket).where(Ticket.member_id == "demo-customer")):
            s.delete(t)
        s.add(ChannelCursor(channel="wecom-kf-open", key="wm-ext-1", value="kf|wk-1"))
        s.add(ChannelCursor(channel="wecom-kf-open", key="wm-unbound", value="kf|wk-1"))
        s.add(ChannelCursor(channel="wecom-kf-open", key="wm-other-app", value="gone|wk-9"))
    assert svc.channels.sync_kf_states() == 1
    assert [c.body for c in mockwx.sent(trans)] == [
        {"open_kfid": "wk-1", "external_userid": "wm-ext-1", "service_state": 1}]
    assert svc.channels.sync_kf_states() == 0


def test_kf_service_state_runs_in_the_background(tmp_path: Path, nlu: IntentEngine,
                                                 mockwx: MockWX) -> None:
    settings = Settings(
        data_dir=tmp_path, demo=True, database_url=f"sqlite:///{tmp_path}/bg.db",
        wecom_apps={"kf": {"token": TOKEN, "aes_key": DEMO_KEY, "corp_id": CORP,
                           "secret": "corp-secret"}},
        wecom_api_base=mockwx.base, outbound_dispatch=True, outbound_interval=0.05,
    )
    with TestClient(create_app(settings, nlu_engine=nlu)) as client:
        svc = client.app.state.services  # type: ignore[attr-defined]
        with transaction(svc.sessions) as s:
            s.add(MemberIdentity(channel="wecom-kf", channel_user_id="wm-bg",
                                 member_id="demo-customer"))
            s.add(ChannelCursor(channel="wecom-kf-open", key="wm-bg", value="kf|wk-1"))
        deadline = time.monotonic() + 10
        while not mockwx.sent("/cgi-bin/kf/service_state/trans"):
            assert time.monotonic() < deadline, "the background pass never mirrored"
            time.sleep(0.05)
    assert mockwx.sent("/cgi-bin/kf/service_state/trans")[0].body["external_userid"] == "wm-bg"
