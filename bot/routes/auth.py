"""Console login: POST /api/v1/auth/token (OAuth2 password form) -> bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from bot.auth import Principal, authenticate
from bot.http import PrincipalDep, ServicesDep
from bot.services import Services

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def sign_in(svc: Services, username: str, password: str, address: str) -> Principal:
    """The one password check behind both the API token and the console's login form
    (bot/routes/console.py), so whatever guards it (throttling per username and address,
    auditing failures) guards both. Blocking on purpose (argon2): call it off the event loop."""
    del address  # the client's address, for a throttle keyed on it
    with svc.sessions() as s:
        return authenticate(s, username, password)


@router.post("/token")
async def login(
    request: Request, svc: ServicesDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> dict[str, object]:
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


@router.get("/me")
def me(who: PrincipalDep) -> dict[str, object]:
    return {"username": who.username, "role": who.role.value, "member_id": who.member_id}
