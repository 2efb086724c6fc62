"""The composition root: create_app() builds everything in its lifespan, nothing at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import logmask
from bot.channels.config import load_apps
from bot.demo import seed_demo
from bot.http import install_error_handlers
from bot.limits import BodySizeLimit
from bot.nlu.engine import IntentEngine
from bot.routes import (
    admin,
    auth,
    book,
    circles,
    customers,
    followups,
    group_events,
    health,
    messages,
    nlu,
    rasa_actions,
    summaries,
    tickets,
    wechat,
    wecom,
)
from bot.scheduler import start_scheduler, stop_scheduler
from bot.services import build_services
from bot.settings import Settings
from storage.db import transaction


def create_app(
    settings: Settings | None = None, *, nlu_engine: IntentEngine | None = None
) -> FastAPI:
    settings = settings or Settings()
    load_apps(settings)  # a bad EncodingAESKey or empty token refuses to start
    logmask.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings, nlu=nlu_engine)
        if settings.demo:
            with transaction(svc.sessions) as s:
                seed_demo(s, settings, keyring=svc.keyring, scripts=svc.scripts)
        app.state.services = svc
        svc.channels.start()
        scheduler = start_scheduler(svc)
        try:
            yield
        finally:
            stop_scheduler(scheduler)
            svc.close()

    app = FastAPI(
        title="corecircle",
        summary="A customer-service bot for life-insurance agents in group chats",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, messages, auth, circles, nlu, admin, wechat, wecom, tickets, followups,
                   summaries, rasa_actions, book, customers, group_events):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes,
                       overrides={"/api/v1/admin/import": settings.import_max_bytes})
    return app
