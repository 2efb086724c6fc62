"""The book of business for admins: POST /api/v1/admin/import, and staff logins."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bot import accounts
from bot.auth import Principal
from bot.book import naming, run_import
from bot.http import ServicesDep, error_body, require_roles
from storage.db import transaction
from storage.enums import UserRole
from storage.errors import BadRequest

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

AdminDep = Annotated[Principal, Depends(require_roles(UserRole.ADMIN))]
MAX_FILES = 12


@router.post("/import", response_model=None)
async def import_book(
    svc: ServicesDep,
    who: AdminDep,
    files: list[UploadFile],
    dry_run: Annotated[bool, Form()] = False,
) -> dict[str, Any] | JSONResponse:
    """Multipart `files` named staff.csv, customers.csv, family.csv, policies.csv, claims.csv,
    circles.csv (or .xlsx); the same checks and report as `corecircle import`. Any problem:
    422 with the report, and nothing written."""
    if not files or len(files) > MAX_FILES:
        raise BadRequest(f"send 1 to {MAX_FILES} files as multipart field `files`",
                         code="IMPORT_NO_FILES")
    with tempfile.TemporaryDirectory(prefix="corecircle-import-") as tmp:
        paths: list[Path] = []
        for f in files:
            name = Path(f.filename or "").name
            if not name or name.startswith("."):
                raise BadRequest("every file needs its book name (e.g. policies.csv)",
                                 code="IMPORT_FILE_NAME")
            target = Path(tmp) / name
            with target.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, f.file, out)
            paths.append(target)
        report = await run_in_threadpool(
            run_import, svc.sessions, paths, keyring=svc.keyring, scripts=svc.scripts,
            settings=svc.settings, dry_run=dry_run,
        )
    body = report.as_dict()
    body["imported_by"] = who.username
    if not report.ok:
        return JSONResponse(error_body(
            "IMPORT_INVALID", f"{report.problem_count} problem(s) found; nothing was written",
            report=body), status_code=422)
    return body


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    role: UserRole
    name: str | None = Field(default=None, max_length=64)
    password: str | None = Field(default=None, max_length=256)


class NewPassword(BaseModel):
    password: str = Field(max_length=256)


@router.get("/users")
def list_users(svc: ServicesDep, _: AdminDep) -> list[dict[str, Any]]:
    with svc.sessions() as s:
        return [vars(a) for a in accounts.list_accounts(session=s)]


@router.post("/users", status_code=201)
def add_user(body: NewUser, svc: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Without a password the login exists but cannot be used until one is set."""
    with transaction(svc.sessions) as s:
        account = accounts.add_user(
            session=s, username=body.username, role=body.role, name=body.name,
            password=body.password, naming=naming(svc.scripts, svc.settings),
            now=datetime.now(UTC),
        )
    return vars(account)


@router.post("/users/{username}/password")
def set_password(username: str, body: NewPassword, svc: ServicesDep, _: AdminDep
                 ) -> dict[str, Any]:
    with transaction(svc.sessions) as s:
        return vars(accounts.set_password(session=s, username=username, password=body.password))


@router.post("/users/{username}/deactivate")
def deactivate(username: str, svc: ServicesDep, _: AdminDep) -> dict[str, Any]:
    with transaction(svc.sessions) as s:
        return vars(accounts.deactivate(session=s, username=username))
