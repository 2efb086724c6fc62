"""Matter circles from creation to record, and who may call which ticket route."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from storage.models import Circle, Matter, Message
from tests.conftest import Chat, login
from tests.escalation.conftest import sessions_of


def _ticket(app: TestClient, chat_id: str = "demo-family", sender: str = "demo-customer") -> int:
    out = Chat(app, chat_id).say(sender, "转人工", at_bot=True)
    assert out["ticket_id"] is not None
    return int(out["ticket_id"])


def test_matter_circle_lifecycle(app: TestClient) -> None:
    ticket_id = _ticket(app)
    headers = login(app, "demo-agent")
    r = app.post(f"/api/v1/tickets/{ticket_id}/matter", headers=headers, json={
        "name": "王建国理赔专项群",
        "specialists": [{"member_id": "claims-1", "display_name": "理赔专员小吴"}],
    })
    assert r.status_code == 201, r.text
    matter_chat = r.json()["chat_id"]
    assert set(r.json()["members"]) >= {"demo-customer", "demo-agent", "claims-1"}
    # a message in the matter circle reaches every other member
    Chat(app, matter_chat).say("claims-1", "请补充一下住院病历")
    with sessions_of(app)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == matter_chat))
        relayed = list(s.scalars(select(Message).where(
            Message.circle_id == circle.id, Message.script_id == "matter.relay")))
        assert {m.recipient_id for m in relayed} == {"demo-customer", "demo-agent"}
        assert all("住院病历" in m.text and m.status == "queued" for m in relayed)
    again = app.post(f"/api/v1/tickets/{ticket_id}/matter", headers=headers,
                     json={"name": "重复"})
    assert again.status_code == 409
    assert app.post(f"/api/v1/tickets/{ticket_id}/resolve", headers=headers).status_code == 200
    with sessions_of(app)() as s:
        circle = s.scalar(select(Circle).where(Circle.chat_id == matter_chat))
        assert circle.status == "dissolved"
        record = s.scalar(select(Matter).where(Matter.circle_id == circle.id))
        assert record.parent_circle_id == circle.parent_id
        assert record.summary
        assert any("住院病历" in m["text"] for m in record.transcript)
    dissolved = Chat(app, matter_chat).send("claims-1", "还在吗")
    assert dissolved.status_code == 404


def test_role_matrix_of_every_ticket_route(app: TestClient) -> None:
    mine = _ticket(app)  # demo-agent's circle (team demo-supervisor)
    other = _ticket(app, "family-b", "cust-b")  # agent-b's circle (team sup-b)
    routes = [
        ("get", "", None), ("post", "/reply", {"text": "您好"}),
        ("post", "/notes", {"text": "备注"}), ("post", "/claim", None),
        ("post", "/followups", {"due_at": "2099-01-01T10:00:00+08:00", "text": "回复"}),
        ("post", "/assign", {"assignee_id": "demo-agent"}), ("post", "/resolve", None),
    ]
    for method, suffix, payload in routes:
        url = f"/api/v1/tickets/{other}{suffix}"
        # no login (a customer or family member has none): 401
        assert app.request(method, url, json=payload).status_code == 401, url
        for who in ("demo-agent", "demo-supervisor"):
            code = app.request(method, url, json=payload, headers=login(app, who)).status_code
            assert code == 403, (who, url, code)
    agent = login(app, "demo-agent")
    assert app.post(f"/api/v1/tickets/{mine}/assign", json={"assignee_id": "agent-a2"},
                    headers=agent).status_code == 403, "only supervisors reassign"
    for who, expected in (("demo-agent", {mine}), ("demo-supervisor", {mine}),
                          ("agent-b", {other}), ("sup-b", {other}), ("admin", {mine, other})):
        listed = app.get("/api/v1/tickets", headers=login(app, who)).json()
        assert {t["id"] for t in listed} == expected, who
    urgent = app.get("/api/v1/tickets", params={"priority": "urgent"}, headers=agent).json()
    assert urgent == []
    summaries = app.get("/api/v1/summaries", headers=login(app, "demo-supervisor"))
    assert summaries.status_code == 200
    assert [(c["kind"], c["circle"]) for c in summaries.json()] == [("day", "demo-family")]
    assert summaries.json()[0]["figures"]["open_tickets"] == [mine]
    own = app.get("/api/v1/summaries", headers=agent).json()
    assert [c["circle"] for c in own] == ["demo-family"], "an agent reads their own circles"
    assert app.get("/api/v1/summaries").status_code == 401
    assert app.get("/api/v1/followups").status_code == 401
