"""Console login: POST /api/v1/auth/token (OAuth2 password form) -> bearer token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from bot.auth import Principal, authenticate
from bot.http import PrincipalDep, ServicesDep, error_responses
from bot.services import Services
from bot.throttle import Throttle
from storage.db import transaction
from storage.errors import AppError, Unauthorized
from storage.models import AuditEvent
from storage.pii import mask

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class Throttled(AppError):
    status, code = 429, "LOGIN_THROTTLED"

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many failed logins; try again in {seconds} s")
        self.retry_after = seconds


def throttle_of(svc: Services) -> Throttle:
    cfg = svc.settings
    return Throttle(svc.state, cfg.login_free_failures, cfg.login_lockout_seconds,
                    cfg.login_lockout_max_seconds)


def _audit(svc: Services, kind: str, username: str, address: str, **data: object) -> None:
    with transaction(svc.sessions) as s:
        s.add(AuditEvent(kind=kind, actor_id=mask(username)[:64], subject=address[:128],
                         data=dict(data), created_at=datetime.now(UTC)))


def sign_in(svc: Services, username: str, password: str, address: str) -> Principal:
    """The one password check behind both the API token and the console's login form, throttled
    per username and client address, every failure audited. Blocking on purpose (argon2): call
    it off the event loop."""
    throttle = throttle_of(svc)
    wait = throttle.retry_after(username, address)
    if wait:
        _audit(svc, "login_throttled", username, address, retry_after=wait)
        raise Throttled(wait)
    try:
        with svc.sessions() as s:
            who = authenticate(s, username, password)
    except Unauthorized:
        lock = throttle.failed(username, address)
        _audit(svc, "login_failed", username, address, lockout_seconds=lock)
        raise
    throttle.succeeded(username, address)
    return who


@router.post("/token", responses=error_responses(401, 415, 422, 429))
async def login(
    request: Request, svc: ServicesDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> dict[str, object]:
    """Throttled per username and per client address; every failure is audited."""
    address = request.client.host if request.client else "unknown"

    def check() -> dict[str, object]:
        who = sign_in(svc, form.username, form.password, address)
        return {
            "access_token": svc.signer.issue(who),
            "token_type": "bearer",
            "role": who.role.value,
            "expires_in": svc.settings.token_minutes * 60,
        }

    return await run_in_threadpool(check)  # argon2 is deliberately slow: keep it off the loop


@router.get("/me", responses=error_responses(401))
def me(who: PrincipalDep) -> dict[str, object]:
    return {"username": who.username, "role": who.role.value, "member_id": who.member_id}
