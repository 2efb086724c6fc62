"""The ticket page reads the book of business: the customer panel, and the audited reveal of a
masked number (the customer's phone or ID number, a number given in a form)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from circles.consent import grant
from storage.enums import ConsentScope, ConsentSource
from storage.models import AuditEvent, Customer
from tests.conftest import Chat, login
from tests.web.test_pages import csrf_of, db, open_ticket, web_login


def visible(html: str) -> str:
    """What a person reads: the text between tags, without hidden inputs."""
    return re.sub(r"<[^>]+>", " ", html)


def form_ticket(chat: Chat) -> int:
    chat.say("demo-customer", "我换手机号了", at_bot=True)
    chat.say("demo-customer", "13911112222")
    done = chat.say("demo-customer", "上海市浦东新区张江路88号")
    assert done["ticket_id"], done
    return int(done["ticket_id"])


def test_panel_shows_the_book_masked_with_consent_and_coverage(
    client: TestClient, chat: Chat
) -> None:
    with db(client)() as s, s.begin():
        holder = s.scalar(select(Customer).where(Customer.customer_no == "C0000001"))
        grant(s, holder_id=holder.id, member_id="demo-wife",
              scopes=[ConsentScope.POLICY, ConsentScope.CLAIM], until=date(2027, 12, 31),
              source=ConsentSource.PAPER, actor="demo-agent", now=datetime.now(UTC))
    tid = open_ticket(chat)
    web_login(client, "demo-agent")
    html = client.get(f"/console/tickets/{tid}").text
    customer = html[html.index('id="customer"'):html.index('id="coverage"')]
    text = visible(customer)
    assert "138****5678" in text  # the profile, masked
    assert "13812345678" not in html
    assert "110105198003070039" not in html
    assert "刘芳" in text
    assert "可看理赔、保单 · 至 2027-12-31" in text  # from the consent record
    assert "王小明" in text
    assert "未授权" in text
    assert "康宁终身重大疾病保险" in text
    assert "下次缴费" in text
    assert "LP2026001234" in text
    coverage = visible(html[html.index('id="coverage"'):])
    coverage = coverage[:coverage.index("推荐话术")]
    assert "重疾险" in coverage  # 王建国 holds critical illness cover
    assert "医疗险" in coverage  # ... and nobody has medical cover: a gap
    assert "全家都没有" in coverage
    api = client.get("/api/v1/customers/C0000001", headers=login(client, "demo-agent")).json()
    for kind in api["coverage"]["family_gaps"]:
        assert client.app.state.services.scripts.label("product_kind", kind) in coverage


def test_agent_reveals_a_number_with_a_reason_once_and_audited(
    client: TestClient, chat: Chat
) -> None:
    tid = open_ticket(chat)
    token = web_login(client, "demo-agent")
    page = client.get(f"/console/tickets/{tid}").text
    assert "查看完整" in page

    def reveal(**form: str) -> tuple[int, str, str]:
        r = client.post(f"/console/tickets/{tid}/reveal", data={"csrf": token, **form},
                        headers={"HX-Request": "true"})
        return r.status_code, r.text, r.headers.get("cache-control", "")

    status, text, cache = reveal(field="phone", reason="客户要求回电")
    assert status == 200
    assert "13812345678" in text
    assert cache == "no-store"
    assert "13987654321" in reveal(field="phone", member_id="demo-wife", reason="回电")[1]
    assert "110105198003070039" in reveal(field="id_number", reason="核对身份")[1]
    # a reason is required; nothing is shown and nothing audited without one
    status, text, _ = reveal(field="phone", reason=" ")
    assert "13812345678" not in text
    assert "查看原因" in text
    # without JavaScript: a page of its own, with the way back
    plain = client.post(f"/console/tickets/{tid}/reveal",
                        data={"csrf": token, "field": "phone", "reason": "回电确认"})
    assert plain.status_code == 200
    assert "13812345678" in plain.text
    assert f"/console/tickets/{tid}" in plain.text
    # the ticket page never carries the full number afterwards
    assert "13812345678" not in client.get(f"/console/tickets/{tid}").text
    # no form token: refused before anything is opened
    forged = client.post(f"/console/tickets/{tid}/reveal",
                         data={"csrf": "forged", "field": "phone", "reason": "回电"})
    assert forged.status_code == 403
    assert "13812345678" not in forged.text

    reveals = client.get("/api/v1/reveals", headers=login(client, "demo-supervisor")).json()
    assert [(x["agent"], x["field"], x["reason"]) for x in reveals] == [
        ("demo-agent", "phone", "回电确认"), ("demo-agent", "id_number", "核对身份"),
        ("demo-agent", "phone", "回电"), ("demo-agent", "phone", "客户要求回电")]

    # the supervisor sees the ticket but may not reveal (the customer's own agent only)
    sup = web_login(client, "demo-supervisor")
    assert "查看完整" not in client.get(f"/console/tickets/{tid}").text
    r = client.post(f"/console/tickets/{tid}/reveal",
                    data={"csrf": sup, "field": "phone", "reason": "看看"})
    assert r.status_code == 403
    assert "13812345678" not in r.text
    assert "专属顾问" in r.text


def test_form_answers_have_chinese_names_and_the_new_phone_can_be_revealed(
    client: TestClient, chat: Chat
) -> None:
    tid = form_ticket(chat)
    token = web_login(client, "demo-agent")
    html = client.get(f"/console/tickets/{tid}").text
    slots = visible(html[html.index('id="slots"'):html.index("推荐话术")])
    assert "新手机号" in slots
    assert "新地址" in slots
    assert "new_phone" not in slots
    assert "new_address" not in slots
    assert "139****2222" in slots
    assert "13911112222" not in html
    assert "v1:" not in html  # the sealed token never reaches the page
    assert html.count("查看完整") == 4  # phone, ID number, the wife's phone, the new phone

    r = client.post(f"/console/tickets/{tid}/reveal", headers={"HX-Request": "true"},
                    data={"csrf": token, "slot": "new_phone", "reason": "去核心系统改手机号"})
    assert "新手机号" in r.text
    assert "13911112222" in r.text
    missing = client.post(f"/console/tickets/{tid}/reveal", headers={"HX-Request": "true"},
                          data={"csrf": csrf_of(html), "slot": "new_address", "reason": "看看"})
    assert "没有登记" in missing.text
    with db(client)() as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.kind == "pii_reveal")).all()
        assert [(a.subject, a.data["field"]) for a in audit] == [(f"ticket:{tid}", "new_phone")]
