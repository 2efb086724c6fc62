"""Masking that cannot be dodged: every shape of an ID-card, phone or card number, in every
place it could be stored, shown or logged."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from storage.models import AuditEvent, Circle, FollowUp, Member, Message, Ticket
from storage.pii import find_pii, mask
from tests.conftest import Chat, login

ZW = "\u200b"
PHONE, ID18, ID15 = "13812345678", "610113199001011234", "610113900101123"
CARD_LUHN, CARD_BAD = "6222021234567890128", "6222021234567890123"

# (how it is written, the digits that must never be readable, kind)
SHAPES = [
    ("138 1234 5678", PHONE, "phone"),
    ("138.1234.5678", PHONE, "phone"),
    ("138/1234/5678", PHONE, "phone"),
    ("138-1234-5678", PHONE, "phone"),
    ("1 3 8 1 2 3 4 5 6 7 8", PHONE, "phone"),
    (f"138{ZW}1234{ZW}5678", PHONE, "phone"),
    (f"1{ZW}3{ZW}8{ZW}1{ZW}2{ZW}3{ZW}4{ZW}5{ZW}6{ZW}7{ZW}8", PHONE, "phone"),
    ("tel13812345678", PHONE, "phone"),
    ("Tel:138 1234 5678", PHONE, "phone"),
    ("phone.138.1234.5678", PHONE, "phone"),
    ("13812345678abc", PHONE, "phone"),
    ("１３８．１２３４．５６７８", PHONE, "phone"),
    ("ID610113199001011234", ID18, "id_card"),
    ("610113.1990.0101.1234", ID18, "id_card"),
    ("610113/19900101/1234", ID18, "id_card"),
    ("610113 1990 0101 1234", ID18, "id_card"),
    (f"6101{ZW}1319900101{ZW}1234", ID18, "id_card"),
    ("号码610113900101123", ID15, "id_card"),
    ("ID 610113-900101-123", ID15, "id_card"),
    ("卡号1234567890123456", "1234567890123456", "bank_card"),
    ("银行卡：1234 5678 9012 3456", "1234567890123456", "bank_card"),
    ("card no 1234-5678-9012-3456", "1234567890123456", "bank_card"),
    (f"卡号{CARD_BAD}", CARD_BAD, "bank_card"),
    ("6222.0212.3456.7890.128", CARD_LUHN, "bank_card"),
    (f"6222{ZW}0212{ZW}3456{ZW}7890{ZW}128", CARD_LUHN, "bank_card"),
]

_SEPARATORS = re.compile(r"[\s./_\-\u200b\u200c\u200d\u2060\ufeff．／]")


def readable(digits: str, blob: str) -> bool:
    """The digits can be read back from blob, whatever separators were typed between them."""
    folded = blob.translate({0xFF10 + i: str(i) for i in range(10)})
    return digits in _SEPARATORS.sub("", folded)


@pytest.mark.parametrize(("written", "digits", "kind"), SHAPES)
def test_every_shape_is_found_and_masked(written: str, digits: str, kind: str) -> None:
    text = f"我的是{written}，谢谢"
    assert [m.kind for m in find_pii(text)] == [kind]
    masked = mask(text)
    assert not readable(digits, masked), masked
    assert masked.startswith("我的是")
    assert masked.endswith("，谢谢")
    assert mask(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize("text", [
    "1234567890123456 这是订单",  # 16 digits failing Luhn, no card label
    "保单P13812345678",  # letters glued in front that are not a label: a policy number
    "保单CC2024000123",
    "交易号 20241123138123456789",
    "订单123138123456789",  # 15 digits, no plausible birth date
    "保费12000元 保额300000元",
    "2026-11-23 15:00:00",
    "请拨打400-820-8888",
])
def test_what_is_not_personal_stays(text: str) -> None:
    assert mask(text) == text


def _places(client: TestClient, written: str, n: int) -> dict[str, str]:
    """Put the shape into every place, and read each back as the service keeps or shows it."""
    svc = client.app.state.services  # type: ignore[attr-defined]
    Chat(client).say("demo-customer", f"我的号码是{written}")
    out = Chat(client).say("demo-customer", "转人工", at_bot=True)
    agent = login(client, "demo-agent")
    ticket_id = out["ticket_id"]
    assert ticket_id is not None
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    client.post(f"/api/v1/tickets/{ticket_id}/followups", headers=agent,
                json={"due_at": due, "text": f"回电{written}"}).raise_for_status()
    client.post(f"/api/v1/tickets/{ticket_id}/matter", headers=agent, json={
        "name": f"专项群{written}",
        "specialists": [{"member_id": f"spec-{n}", "display_name": f"专员{written}"}],
    }).raise_for_status()
    client.post("/api/v1/auth/token", data={"username": f"user {written}", "password": "x"})
    places: dict[str, str] = {}
    places["stored messages"] = json.dumps(client.get(
        "/api/v1/circles/demo-family/messages", headers=agent).json(), ensure_ascii=False)
    detail = client.get(f"/api/v1/tickets/{ticket_id}", headers=agent).json()
    places["ticket context and transcript"] = json.dumps(detail["context"], ensure_ascii=False)
    places["ticket summary"] = detail["summary"]
    places["follow-up texts (API)"] = json.dumps(detail["followups"], ensure_ascii=False)
    with svc.sessions() as s:
        places["messages table"] = " | ".join(
            f"{m.text} {m.sender_name}" for m in s.scalars(select(Message)))
        places["tickets table"] = " | ".join(
            json.dumps(t.context, ensure_ascii=False) + t.summary
            for t in s.scalars(select(Ticket)))
        places["follow-ups table"] = " | ".join(f.text for f in s.scalars(select(FollowUp)))
        places["matter name"] = " | ".join(c.name for c in s.scalars(select(Circle)))
        places["specialist name"] = " | ".join(m.display_name for m in s.scalars(select(Member)))
        places["audit actor ids"] = " | ".join(
            f"{a.actor_id} {a.subject}" for a in s.scalars(select(AuditEvent)))
    client.post(f"/api/v1/tickets/{ticket_id}/resolve", headers=agent).raise_for_status()
    return places


def test_no_shape_is_readable_in_any_place(
    make_client: Callable[..., TestClient], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(database_url=database_url, login_free_failures=1000)
    leaks: list[tuple[str, str]] = []
    with caplog.at_level(logging.DEBUG):
        for n, (written, digits, _) in enumerate(SHAPES):
            for place, blob in _places(client, written, n).items():
                if readable(digits, blob):
                    leaks.append((written, place))
            logging.getLogger("corecircle.test").warning("a customer wrote %s", written)
            logs = "\n".join(caplog.messages) + "\n".join(r.exc_text or "" for r in caplog.records)
            if readable(digits, logs):
                leaks.append((written, "logs"))
            caplog.clear()
    assert sorted({p for _, p in leaks}) == [], leaks
