"""Console login and who may read a circle."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.auth import hash_password
from storage.db import transaction
from storage.enums import UserRole
from storage.models import Member, User
from tests.conftest import login


def _add_user(client: TestClient, username: str, role: UserRole, member: str | None) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]
    s: Session
    with transaction(svc.sessions) as s:
        if member and s.get(Member, member) is None:
            s.add(Member(id=member, display_name=member))
            s.flush()
        s.add(User(username=username, password_hash=hash_password("pw"), role=role,
                   member_id=member))


def test_login_gives_a_bearer_token(client: TestClient) -> None:
    r = client.post("/api/v1/auth/token", data={"username": "demo-agent", "password": "demo"})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["role"] == "agent"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["member_id"] == "demo-agent"


def test_passwords_are_hashed(client: TestClient) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]
    with svc.sessions() as s:
        user = s.query(User).filter_by(username="demo-agent").one()
        assert user.password_hash != "demo"
        assert user.password_hash.startswith("$argon2")


@pytest.mark.parametrize(("user", "password"), [("demo-agent", "wrong"), ("ghost", "demo")])
def test_bad_login_is_401_with_the_same_answer(
    client: TestClient, user: str, password: str
) -> None:
    r = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "LOGIN_FAILED"


def test_circle_messages_need_a_login(client: TestClient) -> None:
    r = client.get("/api/v1/circles/demo-family/messages")
    assert r.status_code == 401
    bad = client.get("/api/v1/circles/demo-family/messages",
                     headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "TOKEN_INVALID"


def test_agent_and_supervisor_read_newest_first_with_limit(client: TestClient) -> None:
    for i in range(3):
        client.post("/api/v1/messages", json={
            "chat_id": "demo-family", "sender_id": "demo-wife", "sender_name": "刘芳",
            "text": f"第{i}条家常话", "msg_id": f"order-{i}",
        })
    for user in ("demo-agent", "demo-supervisor"):
        r = client.get("/api/v1/circles/demo-family/messages?limit=2", headers=login(client, user))
        assert r.status_code == 200
        assert [m["text"] for m in r.json()] == ["第2条家常话", "第1条家常话"]


def test_other_agents_and_supervisors_are_refused(client: TestClient) -> None:
    _add_user(client, "agent-b", UserRole.AGENT, "agent-b")
    _add_user(client, "super-b", UserRole.SUPERVISOR, "super-b")
    for user in ("agent-b", "super-b"):
        r = client.get("/api/v1/circles/demo-family/messages",
                       headers=login(client, user, "pw"))
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "CIRCLE_FORBIDDEN"


def test_admin_reads_any_circle(client: TestClient) -> None:
    _add_user(client, "root", UserRole.ADMIN, None)
    r = client.get("/api/v1/circles/demo-family/messages", headers=login(client, "root", "pw"))
    assert r.status_code == 200


def test_limit_is_validated(client: TestClient) -> None:
    r = client.get("/api/v1/circles/demo-family/messages?limit=0",
                   headers=login(client, "demo-agent"))
    assert r.status_code == 422
