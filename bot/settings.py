"""Settings, read from the environment once by the app factory (never at import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORECIRCLE_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CORECIRCLE_DATABASE_URL"),
        description="SQLAlchemy URL; default: SQLite file in the data dir",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "CORECIRCLE_REDIS_URL"),
        description="Redis URL; default: an in-memory state store (one process only)",
    )
    port: int = Field(default=8000, validation_alias=AliasChoices("PORT", "CORECIRCLE_PORT"))
    data_dir: Path = Field(default=Path(".data"), description="SQLite file and local data")
    demo: bool = Field(default=False, description="seed the demo circle and demo logins")
    secret_key: str | None = Field(
        default=None, description="signs console tokens; generated into the data dir if unset"
    )
    token_minutes: int = Field(default=480, ge=5, description="console token lifetime")
    bot_member_id: str = "bot"
    bot_name: str = "小助手"
    timezone: str = "Asia/Shanghai"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="request body cap")
    max_text_chars: int = Field(default=4000, ge=1, description="longest message text accepted")
    webhook_secret: str | None = Field(
        default=None, description="if set, /api/v1/messages needs an HMAC-SHA256 signature"
    )
    redis_timeout: float = Field(default=0.3, gt=0, description="Redis socket timeout, seconds")
    dialog_ttl_seconds: int = Field(
        default=30 * 60, description="how long a pending question lives"
    )
    human_grace_seconds: int = Field(
        default=60, description="wait for a human before answering an unaddressed question"
    )
    confidence_threshold: float = Field(default=0.5, description="below: clarify or hand off")
    log_level: str = "INFO"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'corecircle.db').resolve()}"
