"""Escalation fixtures: the demo app without its background scan, a second team, a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from bot.auth import hash_password
from storage.db import transaction
from storage.enums import CircleKind, Role, UserRole
from storage.models import Circle, CircleMember, Customer, Member, User

SH = ZoneInfo("Asia/Shanghai")
_HASH: list[str] = []  # argon2 is slow on purpose: hash the demo password once per run
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=SH)  # a working day, on duty


@pytest.fixture
def app(make_client: Callable[..., TestClient], database_url: str) -> TestClient:
    """The scan is driven by the tests with a fake clock, never by the background thread."""
    client = make_client(database_url=database_url, scheduler_enabled=False)
    with transaction(sessions_of(client)) as s:
        seed_other_team(s)
    return client


def sessions_of(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.services.sessions  # type: ignore[attr-defined, no-any-return]


def seed_other_team(s: Session) -> None:
    """Agent B (another supervisor's team) with their own family circle, and an admin."""
    s.add_all([
        Member(id="sup-b", display_name="赵敏"),
        Member(id="agent-b", display_name="陈晨", supervisor_id="sup-b"),
        Member(id="agent-a2", display_name="周杰", supervisor_id="demo-supervisor"),
        Member(id="admin", display_name="管理员"),
    ])
    s.flush()
    zhou = Customer(name="周小红", honorific="周女士")
    s.add(zhou)
    s.flush()
    s.add(Member(id="cust-b", display_name="周小红", customer_id=zhou.id))
    circle = Circle(chat_id="family-b", kind=CircleKind.CORE, name="周小红家庭服务群",
                    customer_id=zhou.id, agent_id="agent-b")
    support = Circle(chat_id="support-b", kind=CircleKind.SUPPORT, name="陈晨业务支持群",
                     agent_id="agent-b")
    s.add_all([circle, support])
    s.flush()
    s.add_all([
        CircleMember(circle_id=circle.id, member_id="cust-b", role=Role.CUSTOMER),
        CircleMember(circle_id=circle.id, member_id="agent-b", role=Role.AGENT),
        CircleMember(circle_id=support.id, member_id="agent-b", role=Role.AGENT),
        CircleMember(circle_id=support.id, member_id="sup-b", role=Role.SUPERVISOR),
    ])
    for name, role in (("agent-b", UserRole.AGENT), ("sup-b", UserRole.SUPERVISOR),
                       ("agent-a2", UserRole.AGENT), ("admin", UserRole.ADMIN)):
        if not _HASH:
            _HASH.append(hash_password("demo"))
        s.add(User(username=name, password_hash=_HASH[0], role=role,
                   member_id=name))


class Clock:
    """A fake clock the tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def body(**kw: Any) -> dict[str, Any]:
    return kw
