"""Admin operations: reload the preset scripts and retrain the intent engine without a restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from bot.auth import Principal
from bot.http import ServicesDep, require_roles
from bot.services import train_engine
from storage.enums import UserRole
from storage.errors import AppError
from storage.scripts import ScriptError, ScriptLibrary

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

AdminDep = Annotated[Principal, Depends(require_roles(UserRole.ADMIN))]


@router.post("/scripts/reload")
async def reload_scripts(svc: ServicesDep, who: AdminDep) -> dict[str, object]:
    """Load scripts_zh/ afresh; if it lints clean, retrain and swap both in at once."""

    def load() -> dict[str, object]:
        try:
            library = ScriptLibrary(svc.scripts.root)
        except (ScriptError, ValueError) as exc:
            raise AppError(f"scripts_zh cannot be loaded: {exc}", code="SCRIPTS_INVALID",
                           status=422) from exc
        problems = library.lint()
        if problems:
            raise AppError("; ".join(problems[:20]), code="SCRIPTS_INVALID", status=422)
        engine = train_engine(library)
        # Swap the pair together: a half-swapped pipeline could name intents it cannot answer.
        svc.scripts, svc.nlu = library, engine
        svc.pipeline.scripts, svc.pipeline.engine = library, engine
        return {"intents": len(library.intents), "scripts": len(library.scripts),
                "examples": len(library.examples()), "reloaded_by": who.username}

    return await run_in_threadpool(load)
