"""Accounts and tokens: throttled, audited logins; tokens that die with their user; staff-only
assignment."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.auth import Principal
from storage.db import transaction
from storage.enums import UserRole
from storage.models import AuditEvent, Ticket, User
from tests.conftest import Chat, login


def _try(client: TestClient, user: str, password: str) -> object:
    return client.post("/api/v1/auth/token", data={"username": user, "password": password})


def _svc(client: TestClient) -> object:
    return client.app.state.services  # type: ignore[attr-defined]


def test_guessing_a_password_is_throttled_and_audited(client: TestClient) -> None:
    for _ in range(5):
        assert _try(client, "demo-agent", "guess").status_code == 401
    r = _try(client, "demo-agent", "demo")  # even the right password waits out the lock
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "LOGIN_THROTTLED"
    assert int(r.headers["retry-after"]) >= 1
    assert _try(client, "demo-supervisor", "demo").status_code == 200  # others are not locked
    with _svc(client).sessions() as s:  # type: ignore[attr-defined]
        kinds = [e.kind for e in s.scalars(select(AuditEvent).where(
            AuditEvent.actor_id == "demo-agent"))]
    assert kinds.count("login_failed") == 5
    assert "login_throttled" in kinds


def test_lockouts_grow_exponentially_and_then_let_the_owner_in(
    make_client: Callable[..., TestClient]
) -> None:
    client = make_client(login_lockout_seconds=1, login_free_failures=2)
    for _ in range(2):
        assert _try(client, "demo-agent", "guess").status_code == 401
    assert _try(client, "demo-agent", "guess").headers.get("retry-after") == "1"
    time.sleep(1.1)
    assert _try(client, "demo-agent", "guess").status_code == 401  # the third failure ...
    assert _try(client, "demo-agent", "demo").headers.get("retry-after") == "2"  # ... doubles
    time.sleep(2.1)
    assert _try(client, "demo-agent", "demo").status_code == 200


def test_one_address_trying_many_usernames_is_throttled(
    make_client: Callable[..., TestClient]
) -> None:
    client = make_client(login_free_failures=2)  # 8 failures per address
    for i in range(8):
        assert _try(client, f"user-{i}", "guess").status_code == 401
    r = _try(client, "demo-agent", "demo")
    assert r.status_code == 429


def test_a_token_needs_exp(client: TestClient) -> None:
    secret = _svc(client).signer._secret  # type: ignore[attr-defined]
    forever = jwt.encode({"sub": "demo-supervisor", "role": "supervisor",
                          "mid": "demo-supervisor", "iat": int(time.time())},
                         secret, algorithm="HS256")
    r = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {forever}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "TOKEN_INVALID"


def test_a_token_for_nobody_is_refused(client: TestClient) -> None:
    ghost = _svc(client).signer.issue(Principal("ghost", UserRole.ADMIN, None))  # type: ignore[attr-defined]
    r = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {ghost}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "TOKEN_REVOKED"


@pytest.mark.parametrize("change", [{"active": False}, {"role": UserRole.ADMIN}])
def test_a_token_dies_when_its_user_is_deactivated_or_changes_role(
    make_client: Callable[..., TestClient], change: dict[str, object]
) -> None:
    client = make_client(principal_cache_seconds=0)
    headers = login(client, "demo-agent")
    assert client.get("/api/v1/tickets", headers=headers).status_code == 200
    with transaction(_svc(client).sessions) as s:  # type: ignore[attr-defined]
        s.execute(update(User).where(User.username == "demo-agent").values(**change))
    r = client.get("/api/v1/tickets", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "TOKEN_REVOKED"


def test_tickets_are_assigned_only_to_staff(client: TestClient) -> None:
    Chat(client).say("demo-customer", "转人工", at_bot=True)
    with _svc(client).sessions() as s:  # type: ignore[attr-defined]
        ticket_id = s.scalar(select(Ticket.id))
    assert ticket_id is not None
    boss = login(client, "demo-supervisor")
    for outsider in ("demo-wife", "demo-customer"):
        r = client.post(f"/api/v1/tickets/{ticket_id}/assign", json={"assignee_id": outsider},
                        headers=boss)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "ASSIGNEE_NOT_STAFF"
    r = client.post(f"/api/v1/tickets/{ticket_id}/assign", json={"assignee_id": "demo-agent"},
                    headers=boss)
    assert r.status_code == 200
    assert r.json()["assignee_id"] == "demo-agent"
