"""Reports behind the dashboard: containment, first-response and resolution times, promises
kept, CSAT and complaint alerts, by agent, team or day. Each figure is defined in
docs/reports.md in terms of the tables, and computed here from the same facts the summaries
use (escalation/summary_facts.py), so a report and a summary never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from statistics import mean, median
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from escalation.summary_facts import (
    AskOutcome,
    Facts,
    PromiseState,
    TicketFacts,
    day_span,
    gather,
    is_complaint,
    local_day,
)
from escalation.summary_store import check_range, core_circles
from storage.errors import BadRequest
from storage.models import Member

SATISFIED = 4  # a rating of 4 or 5 counts as satisfied


class By(StrEnum):
    AGENT = "agent"
    TEAM = "team"
    DAY = "day"


@dataclass
class _Bucket:
    asks: int = 0
    contained: int = 0
    tickets_opened: int = 0
    first_response: list[float] = field(default_factory=list)
    first_response_breached: int = 0
    resolved: int = 0
    resolution: list[float] = field(default_factory=list)
    resolve_breached: int = 0
    promises_due: int = 0
    promises_on_time: int = 0
    promises_late: int = 0
    promises_overdue: int = 0
    ratings: list[int] = field(default_factory=list)
    complaint_alerts: int = 0

    def row(self) -> dict[str, Any]:
        def ratio(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        def stat(values: list[float], how: Callable[[list[float]], float]) -> float | None:
            return round(how(values), 1) if values else None

        satisfied = sum(1 for r in self.ratings if r >= SATISFIED)
        return {
            "asks": self.asks, "contained": self.contained,
            "containment_rate": ratio(self.contained, self.asks),
            "tickets_opened": self.tickets_opened,
            "first_response_median_minutes": stat(self.first_response, median),
            "first_response_average_minutes": stat(self.first_response, mean),
            "first_response_breached": self.first_response_breached,
            "tickets_resolved": self.resolved,
            "resolution_median_minutes": stat(self.resolution, median),
            "resolution_average_minutes": stat(self.resolution, mean),
            "resolve_breached": self.resolve_breached,
            "promises_due": self.promises_due, "promises_on_time": self.promises_on_time,
            "promises_late": self.promises_late, "promises_overdue": self.promises_overdue,
            "promises_kept_rate": ratio(self.promises_on_time, self.promises_due),
            "ratings": len(self.ratings),
            "csat_average": round(mean(self.ratings), 2) if self.ratings else None,
            "csat_satisfied_rate": ratio(satisfied, len(self.ratings)),
            "complaint_alerts": self.complaint_alerts,
        }


def parse_by(value: str) -> By:
    try:
        return By(value)
    except ValueError:
        raise BadRequest("`by` must be agent, team or day", code="REPORT_BY_UNKNOWN") from None


def report(
    session: Session, visible: ColumnElement[bool], start: date, end: date, *, by: By,
    now: datetime,
) -> dict[str, Any]:
    """The figures of every visible core circle over the days [start, end], grouped."""
    check_range(start, end)
    span_start, span_end = day_span(start)[0], min(day_span(end)[1], now)
    if span_start > now:
        raise BadRequest("the range has not begun yet", code="REPORT_RANGE_FUTURE")
    supervisors = dict(session.execute(select(Member.id, Member.supervisor_id)).all())
    names = dict(session.execute(select(Member.id, Member.display_name)).all())
    buckets: dict[str, _Bucket] = defaultdict(_Bucket)
    total = _Bucket()
    for circle in core_circles(session, visible):
        facts = gather(session, circle, span_start, span_end)
        owner = circle.agent_id or ""

        def key(moment: datetime, owner: str = owner) -> str:
            if by == By.AGENT:
                return owner
            if by == By.TEAM:
                return supervisors.get(owner) or ""
            return local_day(moment).isoformat()

        _count(facts, key, buckets, total)
    rows = [{"key": k or None, "label": names.get(k, k) if by != By.DAY else k, **b.row()}
            for k, b in sorted(buckets.items())]
    return {"from": start.isoformat(), "to": end.isoformat(), "by": by.value,
            "as_of": span_end.isoformat(), "rows": rows, "total": total.row()}


def _count(
    facts: Facts, key: Callable[[datetime], str], buckets: dict[str, _Bucket], total: _Bucket
) -> None:
    start, end = facts.start, facts.end

    def into(moment: datetime) -> list[_Bucket]:
        return [buckets[key(moment)], total]

    def inside(moment: datetime | None) -> bool:
        return moment is not None and start <= moment < end

    for ask in facts.asks:
        for b in into(ask.at):
            b.asks += 1
            b.contained += ask.outcome in (AskOutcome.SETTLED, AskOutcome.DECLINED)
    for t in facts.tickets:
        _ticket(t, into, inside)
    for p in facts.promises:
        if not inside(p.due_at) or p.state == PromiseState.OPEN:
            continue
        for b in into(p.due_at):
            b.promises_due += 1
            b.promises_on_time += p.state == PromiseState.ON_TIME
            b.promises_late += p.state == PromiseState.LATE
            b.promises_overdue += p.state == PromiseState.OVERDUE


def _ticket(
    t: TicketFacts, into: Callable[[datetime], list[_Bucket]],
    inside: Callable[[datetime | None], bool],
) -> None:
    if inside(t.created_at):
        for b in into(t.created_at):
            b.tickets_opened += 1
            if t.first_response_minutes is not None:
                b.first_response.append(t.first_response_minutes)
            b.first_response_breached += t.first_response_breached
            b.complaint_alerts += is_complaint(t)
    if t.resolved_at is not None and inside(t.resolved_at):
        for b in into(t.resolved_at):
            b.resolved += 1
            if t.resolution_minutes is not None:
                b.resolution.append(t.resolution_minutes)
            b.resolve_breached += t.resolve_breached
    if t.rating is not None and t.rated_at is not None and inside(t.rated_at):
        for b in into(t.rated_at):
            b.ratings.append(t.rating)
