"""The console's login form and the API token share one password check (sign_in), so a guard
added there (throttling, audited failures) holds for both."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.auth import Principal
from bot.routes import auth as api_auth
from bot.web.pages import COOKIE
from storage.errors import AppError


class Throttled(AppError):
    status, code = 429, "LOGIN_THROTTLED"
    retry_after = 30


def test_both_logins_go_through_one_check(client: TestClient,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    real = api_auth.sign_in

    def counting(svc: Any, username: str, password: str, address: str) -> Principal:
        seen.append((username, address))
        return real(svc, username, password, address)

    monkeypatch.setattr(api_auth, "sign_in", counting)
    assert client.post("/api/v1/auth/token",
                       data={"username": "demo-agent", "password": "demo"}).status_code == 200
    r = client.post("/console/login", data={"username": "demo-agent", "password": "demo"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert [u for u, _ in seen] == ["demo-agent", "demo-agent"]
    assert all(address for _, address in seen)  # the client's address reaches the check


def test_a_throttled_check_keeps_the_form_closed(client: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def throttled(*_: Any) -> Principal:
        raise Throttled("too many failed logins")

    monkeypatch.setattr(api_auth, "sign_in", throttled)
    r = client.post("/console/login", data={"username": "demo-agent", "password": "demo"},
                    follow_redirects=False)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "30"
    assert "登录失败次数过多" in r.text
    assert COOKIE not in client.cookies
