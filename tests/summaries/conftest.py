"""Summary fixtures: the escalation app (a second team, no background scan) on a fake clock
that drives the webhook, the console routes and the scan alike."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from escalation.jobs import tick
from escalation.policy import EscalationPolicy
from tests.conftest import Chat, login
from tests.escalation.conftest import SH, Clock, app, sessions_of  # noqa: F401 - fixture

DAY = date(2026, 3, 3)  # a Tuesday: on duty from 09:00


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SH)


class Day:
    """A day in the family circle, told in order: `day.at(9, 5).say("demo-wife", "...")`."""

    def __init__(self, client: TestClient, clock: Clock) -> None:
        self.app, self.clock, self.chat = client, clock, Chat(client)
        self.svc = client.app.state.services  # type: ignore[attr-defined]

    def at(self, hour: int, minute: int = 0, day: date = DAY) -> Day:
        self.clock.now = at(hour, minute, day)
        return self

    def later(self, **delta: float) -> Day:
        self.clock.now += timedelta(**delta)
        return self

    def say(self, sender: str, text: str, **kw: Any) -> dict[str, Any]:
        return self.chat.say(sender, text, ts=self.clock.now.isoformat(), **kw)

    def resolve(self, ticket_id: int, who: str = "demo-agent") -> None:
        r = self.app.post(f"/api/v1/tickets/{ticket_id}/resolve", json={"note": "已处理"},
                          headers=login(self.app, who))
        assert r.status_code == 200, r.text

    def tick(self) -> None:
        tick(self.svc.sessions, self.svc.scripts, EscalationPolicy(), now=self.clock.now,
             owner="test")

    def get(self, url: str, who: str = "demo-supervisor", **params: Any) -> Any:
        return self.app.get(url, params=params, headers=login(self.app, who))


@pytest.fixture
def day(app: TestClient, monkeypatch: pytest.MonkeyPatch) -> Day:  # noqa: F811
    clock = Clock(at(8))
    services = app.app.state.services  # type: ignore[attr-defined]
    monkeypatch.setattr(services.pipeline, "clock", clock)
    monkeypatch.setattr("bot.routes.tickets._now", clock)
    monkeypatch.setattr("bot.routes.summaries._now", clock)
    return Day(app, clock)


__all__ = ["DAY", "Day", "at", "sessions_of"]
