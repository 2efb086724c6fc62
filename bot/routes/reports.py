"""Reports behind the dashboard: GET /api/v1/reports?from=&to=&by=agent|team|day.

Definitions: docs/reports.md. An agent sees their own circles, a supervisor their team's, an
admin everything.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from bot.http import ServicesDep, StaffDep
from escalation.access import visible_circles
from escalation.reports import parse_by, report

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("")
def get_report(
    svc: ServicesDep, who: StaffDep,
    start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD (inclusive)")],
    by: Annotated[str, Query(description="agent | team | day")] = "day",
) -> dict[str, Any]:
    """Containment, first-response and resolution times, promises kept, CSAT and complaint
    alerts over Asia/Shanghai days, one row per agent, team or day, and a total."""
    grouping = parse_by(by)
    with svc.sessions() as s:
        scope = visible_circles(s, who.role, who.member_id)
        return report(s, scope, start, end, by=grouping, now=_now())
