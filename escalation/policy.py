"""The escalation rules as data: working hours, SLA minutes, capacity, silence, leases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

from storage.enums import Priority

DEFAULT_FIRST_RESPONSE = {
    Priority.URGENT: 30, Priority.HIGH: 120, Priority.NORMAL: 240, Priority.LOW: 480,
}  # fmt: skip
DEFAULT_RESOLVE = {
    Priority.URGENT: 240, Priority.HIGH: 960, Priority.NORMAL: 1440, Priority.LOW: 2880,
}  # fmt: skip


@dataclass(frozen=True)
class EscalationPolicy:
    """Built by the app from its settings; the escalation package never reads the environment."""

    timezone: str = "Asia/Shanghai"
    work_start: time = time(9)
    work_end: time = time(18)
    holiday_file: Path | None = None
    first_response_minutes: Mapping[Priority, int] = field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE)
    )
    resolve_minutes: Mapping[Priority, int] = field(default_factory=lambda: dict(DEFAULT_RESOLVE))
    # Priorities whose clock runs around the clock (a complaint at 22:00 cannot wait for 9:00)
    round_the_clock: frozenset[Priority] = frozenset({Priority.URGENT})
    agent_capacity: int = 20
    human_silence_minutes: int = 30
    transcript_messages: int = 10
    followup_lease_seconds: int = 60
    rating_window_hours: int = 72

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
