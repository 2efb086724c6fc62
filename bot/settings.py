"""Settings, read from the environment once by the app factory (never at import)."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from circles.care import CareSettings
from escalation.policy import DEFAULT_FIRST_RESPONSE, DEFAULT_RESOLVE, EscalationPolicy
from storage.enums import Priority


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
    # -- personal numbers at rest (storage/crypto.py) -------------------------------------------
    data_key: str | None = Field(
        default=None,
        description="`kid:base64(32 bytes)` sealing phone and ID numbers (AES-GCM); generated "
        "into the data dir if unset. To rotate: set a new key id here, list the old one in "
        "data_old_keys, run `corecircle keys reseal`",
    )
    data_old_keys: list[str] = Field(
        default_factory=list, description="retired data keys, still used to read old values"
    )
    data_hash_key: str | None = Field(
        default=None,
        description="`kid:base64(32 bytes)` for the keyed hashes that match numbers; "
        "generated into the data dir if unset; keep it stable",
    )
    bot_member_id: str = "bot"
    bot_name: str = "小助手"
    timezone: str = "Asia/Shanghai"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="request body cap")
    import_max_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1024, description="body cap of POST /api/v1/admin/import"
    )
    max_text_chars: int = Field(default=4000, ge=1, description="longest message text accepted")
    webhook_secret: str | None = Field(
        default=None,
        description="shared with the bridge: /api/v1/messages needs its timestamped HMAC "
        "signature; required outside demo mode unless insecure_webhook",
    )
    webhook_ts_window: int = Field(
        default=300, ge=30, le=3600, description="accepted clock skew of a signed webhook, s"
    )
    insecure_webhook: bool = Field(
        default=False,
        description="allow an unsigned /api/v1/messages outside demo mode (anyone who can reach "
        "it can speak as any member); logged as a warning at every start",
    )
    action_token: str | None = Field(
        default=None,
        description="if set, the Rasa action server (/webhook, /actions) needs ?token=<it>, "
        "as Rasa's action_endpoint sends it",
    )
    ops_token: str | None = Field(
        default=None,
        description="if set, /metrics and /readyz details need `Authorization: Bearer <it>`",
    )
    login_free_failures: int = Field(
        default=5, ge=1, description="failed logins per username or address before throttling"
    )
    login_lockout_seconds: int = Field(
        default=30, ge=1, description="first lockout; doubles with every further failure"
    )
    login_lockout_max_seconds: int = Field(default=3600, ge=1, description="longest lockout")
    principal_cache_seconds: float = Field(
        default=10.0, ge=0, description="how long a token's user check is cached"
    )
    log_json: bool = Field(default=False, description="JSON log lines with a request id")
    redis_timeout: float = Field(default=0.3, gt=0, description="Redis socket timeout, seconds")
    dialog_ttl_seconds: int = Field(
        default=30 * 60, description="how long a pending question lives"
    )
    human_grace_seconds: int = Field(
        default=60, description="wait for a human before answering an unaddressed question"
    )
    # 0.6: 2.2% wrong answers, 3.8% handoffs in 5-fold CV (benchmarks/nlu.py)
    confidence_threshold: float = Field(default=0.6, description="below: clarify or hand off")
    log_level: str = "INFO"
    # -- escalation: working hours, SLAs, handoff, the periodic scan ----------------------------
    work_start: time = Field(default=time(9), description="agents' working day starts (local)")
    work_end: time = Field(default=time(18), description="agents' working day ends (local)")
    holiday_file: Path | None = Field(
        default=None,
        description="extra holidays (ISO date a line; `YYYY-MM-DD workday` for make-up days); "
        "used beyond the years chinesecalendar knows",
    )
    sla_first_response_minutes: dict[Priority, int] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE),
        description="first-response SLA per priority (business minutes; urgent: wall clock)",
    )
    sla_resolve_minutes: dict[Priority, int] = Field(
        default_factory=lambda: dict(DEFAULT_RESOLVE), description="resolution SLA per priority"
    )
    agent_capacity: int = Field(default=20, ge=1, description="open tickets before the pool")
    human_silence_minutes: int = Field(
        default=30, ge=1, description="the bot resumes after a human is silent this long"
    )
    scheduler_enabled: bool = Field(default=True, description="run the SLA/follow-up scan")
    scheduler_interval_seconds: int = Field(default=15, ge=1, description="scan period")
    followup_lease_seconds: int = Field(default=60, ge=5, description="claim lease of a sender")
    # -- WeChat / WeCom gateway and outbound (bot/channels, bot/outbound) ------------------
    wechat_apps: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='OA apps as JSON: {"name": {"token", "aes_key", "appid", "secret", "mode"}}',
    )
    wecom_apps: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='WeCom apps as JSON: {"name": {"token", "aes_key", "corp_id", "secret", '
        '"agent_id"}}; with agent_id (a self-built app) replies for a corp member bound as '
        '"wecom-user" go to them as app messages',
    )
    wechat_default_app: str | None = Field(
        default=None, description="the OA app that owns identities bound as channel 'wechat'"
    )
    wechat_api_base: str = "https://api.weixin.qq.com"
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wechat_reply_deadline: float = Field(
        default=4.0, gt=0, le=4.5, description="seconds to wait for a passive reply (WeChat: 5)"
    )
    wechat_ts_window: int = Field(default=300, ge=30, description="accepted clock skew, seconds")
    outbound_routes: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='delivery per chat_id: {"chat": {"kind", "url"}}; kind "robot" (WeCom group '
        'robot) and "webhook" post to the whole group, "bridge" is a webhook bridge that also '
        'delivers a message with "to" to that member alone (e.g. the web chat private panel)',
    )
    outbound_dispatch: bool | None = Field(
        default=None, description="run the outbox dispatcher; default: when anything is configured"
    )
    outbound_interval: float = Field(default=1.0, gt=0, description="outbox poll, seconds")
    outbound_timeout: float = Field(default=5.0, gt=0, le=5.0, description="HTTP timeout")
    outbound_lease_seconds: float = Field(default=30.0, gt=0, description="claim lease")
    outbound_max_attempts: int = Field(default=6, ge=1)
    outbound_give_up_minutes: float = Field(
        default=60, gt=0,
        description="a message still undelivered this long after it was queued (robot 45009, "
        "no route, retries) is marked failed and handed to a person; nothing retries forever",
    )
    robot_per_minute: int = Field(default=20, ge=1, description="WeCom group robot limit")
    # -- follow-up lateness and the scan's batch (escalation/followups.py, bot/scheduler.py) -----
    followup_stale_hours: float = Field(
        default=24, gt=0,
        description="a follow-up found later than this is marked stale (not sent); agent and "
        "supervisor are alerted",
    )
    followup_batch_size: int = Field(
        default=100, ge=1, le=10_000, description="due follow-ups claimed per tick, oldest first"
    )

    # -- proactive care (circles/care.py, README "Proactive care") -------------------------------
    care_enabled: bool = Field(default=True, description="the daily care run in the scan")
    care_send_time: time = Field(default=time(9, 30), description="local send time of care")
    care_quiet_start: time = Field(default=time(22), description="quiet hours start (local)")
    care_quiet_end: time = Field(default=time(8), description="quiet hours end (local)")
    care_weekly_cap: int = Field(default=3, ge=0, description="care messages a family a week")
    care_grace_days: int = Field(default=60, ge=1, description="grace period after a due date")
    care_cooling_off_days: int = Field(default=15, ge=1, description="犹豫期 after effective date")
    care_route: Literal["direct", "agent_first"] = Field(
        default="direct", description="a circle's care route unless the circle sets its own")
    care_draft_timeout_minutes: int = Field(
        default=120, ge=1, description="agent first: an untouched draft is sent this much later")

    def care_settings(self) -> CareSettings:
        return CareSettings(
            timezone=self.timezone, send_time=self.care_send_time,
            quiet_start=self.care_quiet_start, quiet_end=self.care_quiet_end,
            weekly_cap=self.care_weekly_cap, grace_days=self.care_grace_days,
            cooling_off_days=self.care_cooling_off_days, default_route=self.care_route,
            draft_timeout_minutes=self.care_draft_timeout_minutes,
        )

    def escalation_policy(self) -> EscalationPolicy:
        return EscalationPolicy(
            timezone=self.timezone,
            work_start=self.work_start,
            work_end=self.work_end,
            holiday_file=self.holiday_file,
            first_response_minutes={**DEFAULT_FIRST_RESPONSE, **self.sla_first_response_minutes},
            resolve_minutes={**DEFAULT_RESOLVE, **self.sla_resolve_minutes},
            agent_capacity=self.agent_capacity,
            human_silence_minutes=self.human_silence_minutes,
            followup_lease_seconds=self.followup_lease_seconds,
        )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'corecircle.db').resolve()}"
