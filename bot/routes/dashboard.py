"""The supervisor's dashboard: the page and GET /api/v1/dashboard, both from
escalation.dashboard, so the page shows exactly the numbers the API gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from bot.auth import Principal
from bot.http import ServicesDep, require_roles
from bot.services import Services
from bot.web.charts import bars, columns
from bot.web.pages import SupervisorPage, render
from escalation.dashboard import Dashboard, dashboard
from storage.enums import UserRole
from storage.errors import BadRequest

router = APIRouter(tags=["dashboard"])

SupervisorDep = Annotated[
    Principal, Depends(require_roles(UserRole.SUPERVISOR, UserRole.ADMIN))
]
DEFAULT_DAYS, MAX_DAYS = 7, 366


def date_range(start: date | None, end: date | None, tz: ZoneInfo,
               today: date) -> tuple[date, date]:
    """Inclusive local dates; default the last seven days up to today."""
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadRequest("`from` is after `to`", code="RANGE_INVALID")
    if (end - start).days >= MAX_DAYS:
        raise BadRequest(f"the range is longer than {MAX_DAYS} days", code="RANGE_TOO_LONG")
    return start, end


def figures(svc: Services, who: Principal, start: date, end: date) -> Dashboard:
    tz = ZoneInfo(svc.settings.timezone)
    days = [datetime.combine(start + timedelta(days=i), time(), tz)
            for i in range((end - start).days + 1)]
    with svc.sessions() as s:
        return dashboard(s, who.role, who.member_id, start=days[0],
                         end=days[-1] + timedelta(days=1), now=datetime.now(UTC),
                         day_starts=days)


def _today(svc: Services) -> date:
    return datetime.now(ZoneInfo(svc.settings.timezone)).date()


@router.get("/api/v1/dashboard")
def dashboard_api(
    svc: ServicesDep, who: SupervisorDep,
    from_: Annotated[date | None, Query(alias="from", description="first day, local")] = None,
    to: Annotated[date | None, Query(description="last day (inclusive), local")] = None,
) -> dict[str, Any]:
    """The team's figures: open tickets now, and the range's response times, containment,
    promises kept, complaint alerts and CSAT (the same numbers as /console/dashboard)."""
    start, end = date_range(from_, to, ZoneInfo(svc.settings.timezone), _today(svc))
    return figures(svc, who, start, end).as_dict()


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/console/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request, svc: ServicesDep, who: SupervisorPage) -> Response:
    q = request.query_params
    try:
        start, end = date_range(_day(q.get("from")), _day(q.get("to")),
                                ZoneInfo(svc.settings.timezone), _today(svc))
    except BadRequest:
        start, end = date_range(None, None, ZoneInfo(svc.settings.timezone), _today(svc))
    d = figures(svc, who, start, end)
    priority_zh = {p: svc.scripts.label("priority", p) for p in d.open_by_priority}
    rng = f"from={start.isoformat()}&to={end.isoformat()}"
    priority_chart = bars([(priority_zh[p], n, f"/console/?priority={p}")
                           for p, n in d.open_by_priority.items()])
    load_chart = bars([(a.name, a.open, "/console/?assignee=" + (a.member_id or "none"))
                       for a in d.agent_load])
    day_chart = columns(d.created_per_day)
    return render(request, "dashboard.html", d=d, start=start, end=end, rng=rng,
                  priority_zh=priority_zh, priority_chart=priority_chart,
                  load_chart=load_chart, day_chart=day_chart)
