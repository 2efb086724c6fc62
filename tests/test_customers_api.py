"""The customer in one place, search, and the audited reveal of one number (demo book)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from bot.accounts import add_user
from bot.book import naming
from storage.db import transaction
from storage.enums import UserRole
from tests.conftest import Chat, login


def other_agent(client: TestClient) -> dict[str, str]:
    svc = client.app.state.services  # type: ignore[attr-defined]
    with transaction(svc.sessions) as s:
        add_user(session=s, username="stranger", role=UserRole.AGENT, name="路人",
                 password="not the demo", naming=naming(svc.scripts, svc.settings),
                 now=datetime.now(UTC))
    return login(client, "stranger", "not the demo")


def test_the_agent_sees_the_whole_customer_masked(client: TestClient) -> None:
    Chat(client).say("demo-customer", "我要投诉，你们太慢了", at_bot=True)
    r = client.get("/api/v1/customers/C0000001", headers=login(client, "demo-agent"))
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["profile"]["name"] == "王建国"
    assert view["profile"]["phone"] == "138****5678"
    assert "13812345678" not in r.text
    assert "110105198003070039" not in r.text
    family = {m["member_id"]: m for m in view["family"]}
    assert family["demo-wife"]["consent"] == []  # 刘芳 is not authorized
    assert family["demo-son"]["relation"] == "child"
    due = {p["policy_no"]: p["next_due_date"] for p in view["policies"]}
    assert set(due) == {"CC2024000123", "CC2025000456"}
    assert view["claims"][0]["claim_no"] == "LP2026001234"
    assert view["open_tickets"]
    assert view["last_messages"]
    people = {p["who"]: p for p in view["coverage"]["people"]}
    assert people["C0000001"]["covered"] == {"critical_illness": ["CC2024000123"]}
    assert "medical" in people["C0000001"]["gaps"]
    assert people["demo-son"]["covered"] == {"annuity": ["CC2025000456"]}
    assert people["demo-wife"]["covered"] == {}
    assert "medical" in view["coverage"]["family_gaps"]


def test_supervisor_sees_the_customer_and_a_stranger_does_not(client: TestClient) -> None:
    assert client.get("/api/v1/customers/C0000001",
                      headers=login(client, "demo-supervisor")).status_code == 200
    headers = other_agent(client)
    assert client.get("/api/v1/customers/C0000001", headers=headers).status_code == 404
    assert client.get("/api/v1/customers?q=王", headers=headers).json()["total"] == 0
    assert client.get("/api/v1/customers/C0000001").status_code == 401


def test_search_by_name_phone_tail_and_policy_number(client: TestClient) -> None:
    headers = login(client, "demo-agent")
    for q in ("王建", "5678", "CC2025000456"):
        found = client.get("/api/v1/customers", params={"q": q}, headers=headers).json()
        assert [c["customer_no"] for c in found["items"]] == ["C0000001"], q
    none = client.get("/api/v1/customers", params={"q": "9999"}, headers=headers).json()
    assert none["total"] == 0


def test_a_reveal_is_for_the_agent_and_is_audited(client: TestClient) -> None:
    agent = login(client, "demo-agent")
    r = client.post("/api/v1/customers/C0000001/reveal", headers=agent,
                    json={"field": "phone", "reason": "客户要求回电"})
    assert r.status_code == 200, r.text
    assert r.json()["value"] == "13812345678"
    wife = client.post("/api/v1/customers/C0000001/reveal", headers=agent,
                       json={"field": "phone", "reason": "回电", "member_id": "demo-wife"})
    assert wife.json()["value"] == "13987654321"
    no_reason = client.post("/api/v1/customers/C0000001/reveal", headers=agent,
                            json={"field": "phone", "reason": " "})
    assert no_reason.status_code == 400
    supervisor = login(client, "demo-supervisor")
    refused = client.post("/api/v1/customers/C0000001/reveal", headers=supervisor,
                          json={"field": "id_number", "reason": "看看"})
    assert refused.status_code == 403
    reveals = client.get("/api/v1/reveals", headers=supervisor).json()
    assert [(x["agent"], x["field"], x["reason"]) for x in reveals] == [
        ("demo-agent", "phone", "回电"), ("demo-agent", "phone", "客户要求回电")]
    assert client.get("/api/v1/reveals", headers=agent).status_code == 403


def test_a_new_phone_from_a_form_can_be_revealed_from_its_ticket(client: TestClient) -> None:
    chat = Chat(client)
    chat.say("demo-customer", "我换手机号了", at_bot=True)
    asked = chat.say("demo-customer", "13911112222")
    assert all("13911112222" not in r["text"] for r in asked["replies"])
    done = chat.say("demo-customer", "上海市浦东新区张江路88号")
    ticket_id = done["ticket_id"]
    assert ticket_id is not None
    agent = login(client, "demo-agent")
    shown = client.get(f"/api/v1/tickets/{ticket_id}", headers=agent)
    assert shown.status_code == 200
    assert "13911112222" not in shown.text  # masked (and sealed) everywhere
    r = client.post(f"/api/v1/tickets/{ticket_id}/reveal", headers=agent,
                    json={"slot": "new_phone", "reason": "去核心系统改手机号"})
    assert r.status_code == 200, r.text
    assert r.json()["value"] == "13911112222"
    nothing = client.post(f"/api/v1/tickets/{ticket_id}/reveal", headers=agent,
                          json={"slot": "new_address", "reason": "看看"})
    assert nothing.status_code == 404
    supervisor = login(client, "demo-supervisor")
    assert client.post(f"/api/v1/tickets/{ticket_id}/reveal", headers=supervisor,
                       json={"slot": "new_phone", "reason": "看看"}).status_code == 403
    reveals = client.get("/api/v1/reveals", headers=supervisor).json()
    assert reveals[0]["customer_no"] == f"ticket:{ticket_id}"
    assert reveals[0]["field"] == "new_phone"
