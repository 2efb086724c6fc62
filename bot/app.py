"""The composition root: create_app() builds everything in its lifespan, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

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
    book,
    care,
    chat,
    circles,
    console,
    customers,
    dashboard,
    docs,
    followups,
    group_events,
    health,
    messages,
    nlu,
    rasa_actions,
    reports,
    summaries,
    tickets,
    wechat,
    wecom,
)
from bot.scheduler import start_scheduler, stop_scheduler
from bot.services import build_services
from bot.settings import Settings
from bot.web.pages import WEB, LoginRequired, login_redirect
from storage.db import startup_lock, transaction, worker_threads


def create_served_app() -> FastAPI:
    """What `corecircle serve` runs in each worker: settings from the environment (uvicorn
    applies the masked logging configuration the command passed it)."""
    return create_app(Settings())


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
        # Request threads sized for the database (SQLite has one writer; PostgreSQL one
        # pooled connection per thread), instead of anyio's 40 for everything.
        to_thread.current_default_thread_limiter().total_tokens = worker_threads(
            settings.resolved_database_url())
        if settings.demo:
            with startup_lock(svc.db), transaction(svc.sessions) as s:
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
        docs_url=None,  # served by bot/routes/docs.py with vendored assets
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    for module in (health, messages, auth, circles, nlu, admin, wechat, wecom, tickets, followups,
                   summaries, reports, rasa_actions, console, dashboard, chat, docs, book,
                   customers, group_events, care):
        app.include_router(module.router)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    app.add_middleware(JsonOnly)  # inside the cap: it reads only bodies the cap let through
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes,
                       overrides={"/api/v1/admin/import": settings.import_max_bytes})
    app.add_middleware(RequestId)  # outermost: even a refused body is logged under its id
    return app
