"""The composition root: create_app() builds everything in its lifespan, nothing at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import logmask
from bot.demo import seed_demo
from bot.http import install_error_handlers
from bot.limits import BodySizeLimit
from bot.nlu.engine import IntentEngine
from bot.routes import auth, circles, health, messages, nlu
from bot.services import build_services
from bot.settings import Settings
from storage.db import transaction


def create_app(
    settings: Settings | None = None, *, nlu_engine: IntentEngine | None = None
) -> FastAPI:
    settings = settings or Settings()
    logmask.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings, nlu=nlu_engine)
        if settings.demo:
            with transaction(svc.sessions) as s:
                seed_demo(s, settings)
        app.state.services = svc
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(
        title="corecircle",
        summary="A customer-service bot for life-insurance agents in group chats",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, messages, auth, circles, nlu):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app
