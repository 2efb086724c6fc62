"""The composition root: create_app() builds everything in its lifespan, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import logmask
from bot.channels.config import load_apps
from bot.demo import seed_demo
from bot.http import install_error_handlers, install_openapi
from bot.limits import BodySizeLimit, JsonOnly
from bot.nlu.engine import IntentEngine
from bot.requestid import RequestId
from bot.routes import (
    admin,
    auth,
    circles,
    followups,
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

log = logging.getLogger(__name__)


class InsecureConfig(ValueError):
    """A setting that would leave the service open to anyone who can reach it."""


def check_webhook_auth(settings: Settings) -> None:
    """Outside demo mode the generic webhook must be signed, unless explicitly waived."""
    if settings.webhook_secret or settings.demo or settings.insecure_webhook:
        return
    raise InsecureConfig(
        "CORECIRCLE_WEBHOOK_SECRET is not set: anyone who can reach POST /api/v1/messages could "
        "speak as any member. Set the secret shared with the bridge, or start with "
        "--insecure-webhook (CORECIRCLE_INSECURE_WEBHOOK=true) to accept unsigned messages."
    )


def warn_if_open(settings: Settings) -> None:
    if settings.webhook_secret:
        return
    if settings.insecure_webhook:
        log.warning("INSECURE WEBHOOK: POST /api/v1/messages accepts unsigned messages; anyone "
                    "who can reach it can speak as any member (set CORECIRCLE_WEBHOOK_SECRET)")
    else:
        log.warning("demo mode without CORECIRCLE_WEBHOOK_SECRET: POST /api/v1/messages is "
                    "unsigned; keep this server on loopback")


def create_app(
    settings: Settings | None = None, *, nlu_engine: IntentEngine | None = None
) -> FastAPI:
    settings = settings or Settings()
    load_apps(settings)  # a bad EncodingAESKey or empty token refuses to start
    check_webhook_auth(settings)
    logmask.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_if_open(settings)
        svc = build_services(settings, nlu=nlu_engine)
        if settings.demo:
            with transaction(svc.sessions) as s:
                seed_demo(s, settings)
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
    install_openapi(app)
    for module in (health, messages, auth, circles, nlu, admin, wechat, wecom, tickets, followups,
                   summaries, rasa_actions):
        app.include_router(module.router)
    app.add_middleware(JsonOnly)  # inside the cap: it reads only bodies the cap let through
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestId)  # outermost: even a refused body is logged under its id
    return app
