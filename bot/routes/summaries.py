"""Service summaries (服务小结): per circle and day, per ticket, a team view, the CSV export.

Visibility: an agent reads their own circles, a supervisor their agents' circles, an admin all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from bot.http import IdPath, ServicesDep, StaffDep
from escalation.access import require_ticket, visible_circles
from escalation.summary_facts import local_day
from escalation.summary_store import export_csv, for_date, for_ticket, team_view
from storage.db import transaction

router = APIRouter(prefix="/api/v1/summaries", tags=["summaries"])

DateQuery = Annotated[date | None, Query(description="YYYY-MM-DD, an Asia/Shanghai day")]
FromQuery = Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")]
ToQuery = Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD (inclusive)")]


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("")
def list_summaries(
    svc: ServicesDep, who: StaffDep,
    circle: Annotated[str | None, Query(description="a core circle's chat id")] = None,
    date: DateQuery = None,
    chat_id: Annotated[str | None, Query(description="the same as `circle`")] = None,
) -> list[dict[str, Any]]:
    """The day summary of each visible core circle (or the one named), with the summaries of
    its tickets resolved that day; `text` is the prose, `figures` the numbers behind it.
    Without `date`: today so far."""
    now = _now()
    with transaction(svc.sessions) as s:
        scope = visible_circles(s, who.role, who.member_id)
        return for_date(s, svc.scripts, scope, date or local_day(now), now=now,
                        chat_id=circle or chat_id)


@router.get("/team")
def team(
    svc: ServicesDep, who: StaffDep, start: FromQuery, end: ToQuery
) -> list[dict[str, Any]]:
    """Day summaries of every visible circle over a range (at most 92 days), newest day first,
    the circles that need attention first within each day."""
    now = _now()
    with transaction(svc.sessions) as s:
        scope = visible_circles(s, who.role, who.member_id)
        return team_view(s, svc.scripts, scope, start, end, now=now)


@router.get("/tickets/{ticket_id}")
def ticket(ticket_id: IdPath, svc: ServicesDep, who: StaffDep) -> dict[str, Any]:
    """A resolved ticket's stored summary; an open ticket's summary so far (not stored)."""
    now = _now()
    with transaction(svc.sessions) as s:
        found = require_ticket(s, ticket_id, who.role, who.member_id)
        return for_ticket(s, svc.scripts, found, now=now)


@router.get("/export.csv", response_class=Response)
def export(svc: ServicesDep, who: StaffDep, start: FromQuery, end: ToQuery) -> Response:
    """One row per visible core circle per day; UTF-8 with BOM (opens in Excel). Columns:
    docs/reports.md."""
    now = _now()
    with transaction(svc.sessions) as s:
        scope = visible_circles(s, who.role, who.member_id)
        body = export_csv(s, svc.scripts, scope, start, end, now=now)
    filename = f"summaries-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        content=body.encode("utf-8"), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
