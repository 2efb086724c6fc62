"""Demo data (docs/architecture.md): the 王建国 family circle, seeded idempotently."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth import hash_password
from bot.settings import Settings
from storage.enums import CircleKind, ClaimStatus, PolicyStatus, Role, UserRole
from storage.models import (
    Base,
    Circle,
    CircleMember,
    Claim,
    Customer,
    Member,
    MemberIdentity,
    Policy,
    User,
)

T = TypeVar("T", bound=Base)

DEMO_PASSWORD = "demo"  # noqa: S105 - demo mode only, documented in the README


def _get_or_add(s: Session, model: type[T], where: dict[str, Any], **values: Any) -> T:
    row = s.scalar(select(model).filter_by(**where))
    if row is None:
        row = model(**where, **values)
        s.add(row)
        s.flush()
    return row


def seed_demo(s: Session, settings: Settings, today: date | None = None) -> None:
    """Create what is missing; a restart on the same data changes and duplicates nothing."""
    today = today or datetime.now(UTC).date()
    wang = _get_or_add(s, Customer, {"name": "王建国"}, honorific="王先生")
    people = [
        ("demo-supervisor", "张伟", None, None, False),
        ("demo-agent", "李娜", None, "demo-supervisor", False),
        ("demo-customer", "王建国", wang.id, None, False),
        ("demo-wife", "刘芳", None, None, False),
        (settings.bot_member_id, settings.bot_name, None, None, True),
    ]
    for mid, name, customer_id, supervisor, is_bot in people:
        _get_or_add(
            s, Member, {"id": mid}, display_name=name, customer_id=customer_id,
            supervisor_id=supervisor, is_bot=is_bot,
        )
    family = _get_or_add(
        s, Circle, {"chat_id": "demo-family"}, kind=CircleKind.CORE, name="王建国家庭服务群",
        customer_id=wang.id, agent_id="demo-agent",
    )
    support = _get_or_add(
        s, Circle, {"chat_id": "demo-support"}, kind=CircleKind.SUPPORT, name="李娜业务支持群",
        agent_id="demo-agent",
    )
    for circle, mid, role in [
        (family, "demo-customer", Role.CUSTOMER),
        (family, "demo-wife", Role.FAMILY),
        (family, "demo-agent", Role.AGENT),
        (family, settings.bot_member_id, Role.BOT),
        (support, "demo-agent", Role.AGENT),
        (support, "demo-supervisor", Role.SUPERVISOR),
        (support, settings.bot_member_id, Role.BOT),
    ]:
        _get_or_add(
            s, CircleMember, {"circle_id": circle.id, "member_id": mid}, role=role,
            authorized=False,
        )
    critical = _get_or_add(
        s, Policy, {"policy_no": "CC2024000123"}, product="康宁终身重大疾病保险",
        holder_id=wang.id, insured_name="王建国", sum_assured=Decimal("500000"),
        premium=Decimal("8650"), premium_frequency="annual",
        next_due_date=today + timedelta(days=22), status=PolicyStatus.ACTIVE,
        cash_value=Decimal("23480.50"), cash_value_date=today.replace(day=1),
        beneficiaries=[{"name": "刘芳", "relation": "spouse", "share": 100}],
    )
    _get_or_add(
        s, Policy, {"policy_no": "CC2025000456"}, product="金福年金保险",
        holder_id=wang.id, insured_name="王小明", sum_assured=Decimal("200000"),
        premium=Decimal("12000"), premium_frequency="annual",
        next_due_date=today + timedelta(days=98), status=PolicyStatus.ACTIVE,
        cash_value=Decimal("11020.00"), cash_value_date=today.replace(day=1),
        beneficiaries=[{"name": "王建国", "relation": "parent", "share": 100}],
    )
    _get_or_add(
        s, Claim, {"claim_no": "LP2026001234"}, policy_id=critical.id,
        status=ClaimStatus.REVIEWING, amount=Decimal("6800"),
    )
    _get_or_add(
        s, MemberIdentity, {"channel": "wechat", "channel_user_id": "o-demo-customer"},
        member_id="demo-customer",
    )
    logins = [("demo-agent", UserRole.AGENT), ("demo-supervisor", UserRole.SUPERVISOR)]
    for username, role in logins:
        _get_or_add(
            s, User, {"username": username}, password_hash=hash_password(DEMO_PASSWORD),
            role=role, member_id=username,
        )
