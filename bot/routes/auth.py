"""Console login: POST /api/v1/auth/token (OAuth2 password form) -> bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from bot.auth import authenticate
from bot.http import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token")
async def login(
    svc: ServicesDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> dict[str, object]:
    def check() -> dict[str, object]:
        with svc.sessions() as s:
            who = authenticate(s, form.username, form.password)
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
