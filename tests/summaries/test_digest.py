"""The 18:00 digest into each support circle, on a fake clock: once at 18:00, not before, not
twice (a second scheduler, a restart), the circles that need attention first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from escalation import digest
from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.enums import CircleKind, Role
from storage.models import (
    Circle,
    CircleMember,
    Customer,
    DigestSend,
    Member,
    Message,
    ServiceSummary,
)
from tests.summaries.conftest import DAY, Day, at, sessions_of


def _digests(app: TestClient, chat_id: str) -> list[str]:
    with sessions_of(app)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == chat_id))
        assert circle is not None
        return list(s.scalars(select(Message.text).where(
            Message.circle_id == circle.id, Message.script_id == "digest.head")
            .order_by(Message.id)))


def _quiet_second_family(app: TestClient) -> None:
    """李娜 serves a second family that says nothing all day."""
    with transaction(sessions_of(app)) as s:
        zhao = Customer(name="赵丽", honorific="赵女士")
        s.add(zhao)
        s.flush()
        s.add(Member(id="cust-c", display_name="赵丽", customer_id=zhao.id))
        circle = Circle(chat_id="family-c", kind=CircleKind.CORE, name="赵丽家庭服务群",
                        customer_id=zhao.id, agent_id="demo-agent")
        s.add(circle)
        s.flush()
        s.add_all([CircleMember(circle_id=circle.id, member_id="cust-c", role=Role.CUSTOMER),
                   CircleMember(circle_id=circle.id, member_id="demo-agent", role=Role.AGENT)])


def test_the_digest_goes_once_at_18_and_names_the_troubled_circle_first(day: Day) -> None:
    _quiet_second_family(day.app)
    day.at(9, 10).say("demo-customer", "转人工，问下理赔", at_bot=True)
    day.at(9, 30).say("demo-agent", "王先生您好，理赔进度我今天下午三点前回复您")
    day.at(15, 5).tick()
    day.at(17, 59).tick()
    assert _digests(day.app, "demo-support") == [], "not before 18:00"
    day.at(18).tick()
    assert _digests(day.app, "demo-support") == [
        "【今日服务小结】2026年3月3日，李娜名下2个客户群：\n"
        "⚠ 王建国家庭服务群：1个承诺逾期\n"
        "其余1个客户群今天没有新动态。"
    ]
    assert _digests(day.app, "support-b") == [], "陈晨's only family was quiet: no message"
    with sessions_of(day.app)() as s:
        quiet = s.scalar(select(DigestSend).where(DigestSend.dedupe_key.like("%:2026-03-03")
                                                  & DigestSend.message_id.is_(None)))
        assert quiet is not None, "... but the day is on record, so it is not looked at again"
    day.later(seconds=15).tick()
    tick(day.svc.sessions, day.svc.scripts, EscalationPolicy(), now=day.clock.now,
         owner="second-scheduler")
    day.at(23, 59).tick()
    assert len(_digests(day.app, "demo-support")) == 1, "not twice"
    day.at(17, 0, day.clock.now.date().replace(day=4)).tick()
    assert len(_digests(day.app, "demo-support")) == 1, "the next day's waits for 18:00"
    # the daily job stored the day summaries it read
    r = day.get("/api/v1/summaries", circle="demo-family", date="2026-03-03")
    assert r.json()[0]["figures"]["promises_overdue"] == 1


def test_a_restarted_app_on_the_same_database_does_not_send_it_again(
    day: Day, make_client: Callable[..., TestClient], database_url: str,
) -> None:
    day.at(9).say("demo-customer", "下次保费什么时候交", at_bot=True)
    day.at(18, 0).tick()
    assert _digests(day.app, "demo-support") == [
        "【今日服务小结】2026年3月3日，李娜名下1个客户群：\n"
        "王建国家庭服务群：提问1次，助手解答1次，转人工0件"
    ]
    again = make_client(database_url=database_url, scheduler_enabled=False)
    svc = again.app.state.services  # type: ignore[attr-defined]
    assert digest.run(svc.sessions, svc.scripts, now=day.clock.now) == []
    with sessions_of(again)() as s:
        support = s.scalar(select(Circle).where(Circle.chat_id == "demo-support"))
        assert support is not None
        # two schedulers racing past the read: the unique key lets one of them write
        assert digest.send(s, svc.scripts, support, day.clock.now.date(), now=day.clock.now) \
            is False
        assert len(list(s.scalars(select(DigestSend.id)))) == 2
    assert len(_digests(day.app, "demo-support")) == 1


def test_the_daily_run_writes_yesterdays_summaries_whole(day: Day) -> None:
    with transaction(sessions_of(day.app)) as s:
        for circle in s.scalars(select(Circle)):
            circle.created_at = at(8, 0, DAY - timedelta(days=30))
    day.at(9).say("demo-customer", "下次保费什么时候交", at_bot=True)
    day.at(18, 0, DAY + timedelta(days=1)).tick()
    with sessions_of(day.app)() as s:
        stored = s.scalar(select(ServiceSummary)
                          .join(Circle, Circle.id == ServiceSummary.circle_id)
                          .where(ServiceSummary.key.like("day:%:2026-03-03"),
                                 Circle.chat_id == "demo-family"))
        assert stored is not None, "stored by the daily run, before anyone asked"
        assert stored.complete is True
        assert stored.as_of == at(0, 0, DAY + timedelta(days=1))
        assert stored.figures["asks"] == 1


# A real race needs a server database (SQLite serialises writers): PostgreSQL only.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_schedulers_racing_at_18_send_one_digest(day: Day, database_url: str) -> None:
    day.at(9).say("demo-customer", "下次保费什么时候交", at_bot=True)
    day.at(18, 0)
    start = threading.Barrier(2)
    results: list[list[int]] = []

    def scheduler() -> None:
        start.wait()
        results.append(digest.run(day.svc.sessions, day.svc.scripts, now=day.clock.now))

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(len(r) for r in results) == [0, 1], "one of them sent it, the other nothing"
    assert len(_digests(day.app, "demo-support")) == 1
