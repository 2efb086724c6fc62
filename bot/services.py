"""The composition root's parts: everything built once per app from the settings."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.auth import TokenSigner, UserCheck
from bot.channels.runtime import ChannelRuntime, build_channels
from bot.keys import build_keyring, generated
from bot.metrics import Metrics
from bot.nlu.engine import IntentEngine
from bot.pipeline import Pipeline
from bot.settings import Settings
from storage.crypto import Keyring
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.scripts import ScriptLibrary
from storage.state import MemoryStateStore, RedisStateStore, StateStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Engine
    sessions: sessionmaker[Session]
    state: StateStore
    scripts: ScriptLibrary
    nlu: IntentEngine
    metrics: Metrics
    signer: TokenSigner
    pipeline: Pipeline
    channels: ChannelRuntime
    keyring: Keyring
    users: UserCheck = field(default_factory=UserCheck)

    def database_ok(self) -> bool:
        try:
            with self.db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - readiness reports any failure as "not ready"
            return False
        return True

    def close(self) -> None:
        self.channels.close()
        if isinstance(self.state, RedisStateStore):
            self.state.close()
        self.db.dispose()


def build_state(settings: Settings) -> StateStore:
    if settings.redis_url:
        return RedisStateStore(settings.redis_url, timeout=settings.redis_timeout)
    return MemoryStateStore()


def train_engine(scripts: ScriptLibrary) -> IntentEngine:
    return IntentEngine(scripts.examples(), scripts.root / "dict" / "insurance.txt")


def secret_key(settings: Settings) -> str:
    """The configured key, or one generated once into the data dir (kept across restarts)."""
    if settings.secret_key:
        return settings.secret_key
    return generated(settings, "secret_key", lambda: secrets.token_urlsafe(48))


def build_services(
    settings: Settings, *, nlu: IntentEngine | None = None, scripts: ScriptLibrary | None = None
) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = make_engine(settings.resolved_database_url())
    upgrade(db)
    sessions = make_sessionmaker(db)
    state = build_state(settings)
    if isinstance(state, RedisStateStore) and not state.ping():
        # Documented choice (docs/measured-facts.md, "Redis"): start degraded; /readyz reports it
        # and requests still work.
        log.warning("Redis at %s is not answering: starting degraded", settings.redis_url)
    scripts = scripts or ScriptLibrary()
    nlu = nlu or train_engine(scripts)
    metrics = Metrics()
    pipeline = Pipeline(
        sessions=sessions, state=state, scripts=scripts, engine=nlu, settings=settings,
        metrics=metrics,
    )
    signer = TokenSigner(secret_key(settings), settings.token_minutes)
    channels = build_channels(settings, sessions=sessions, state=state, scripts=scripts,
                              pipeline=pipeline)
    return Services(
        settings, db, sessions, state, scripts, nlu, metrics, signer, pipeline, channels,
        build_keyring(settings),
    )
