"""Reports by day, agent and team over two days of transcript; each figure as docs/reports.md
defines it, and two of them recomputed straight from the tables with the documented SQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from tests.summaries.conftest import DAY, Day, sessions_of
from tests.summaries.test_day_summary import PROMISE, _a_good_day

DAY2 = DAY + timedelta(days=1)
RANGE = {"from": DAY.isoformat(), "to": DAY2.isoformat()}


def _a_bad_day(day: Day) -> None:
    """A promise broken, the same question three times, then a threat to complain."""
    day.at(9, 10, DAY2).say("demo-customer", "转人工，问下理赔", at_bot=True)
    day.at(9, 30, DAY2).say("demo-agent", PROMISE)
    day.at(15, 5, DAY2).tick()
    for minute in (10, 20, 30):
        day.at(16, minute, DAY2).say("demo-customer", "理赔进度到底怎么样了", at_bot=True)
    day.at(17, 0, DAY2).say("demo-customer", "再不给答复我就去12378投诉")


def test_reports_by_day_agent_and_team(day: Day) -> None:
    _a_good_day(day)
    _a_bad_day(day)
    day.at(8, 0, DAY2 + timedelta(days=1))
    r = day.get("/api/v1/reports", by="day", **RANGE)
    assert r.status_code == 200, r.text
    first, second = r.json()["rows"]
    assert first["key"] == "2026-03-03"
    assert {k: first[k] for k in (
        "asks", "contained", "containment_rate", "tickets_opened",
        "first_response_median_minutes", "first_response_breached", "tickets_resolved",
        "resolution_median_minutes", "promises_due", "promises_on_time", "promises_kept_rate",
        "ratings", "csat_average", "csat_satisfied_rate", "complaint_alerts")} == {
        "asks": 3, "contained": 2, "containment_rate": 0.6667, "tickets_opened": 1,
        "first_response_median_minutes": 20.0, "first_response_breached": 0,
        "tickets_resolved": 1, "resolution_median_minutes": 300.0, "promises_due": 1,
        "promises_on_time": 1, "promises_kept_rate": 1.0, "ratings": 1, "csat_average": 5.0,
        "csat_satisfied_rate": 1.0, "complaint_alerts": 0,
    }
    assert second["key"] == "2026-03-04"
    assert {k: second[k] for k in (
        "asks", "contained", "tickets_opened", "first_response_median_minutes",
        "first_response_breached", "tickets_resolved", "promises_due", "promises_overdue",
        "promises_kept_rate", "ratings", "complaint_alerts")} == {
        "asks": 5, "contained": 3, "tickets_opened": 2, "first_response_median_minutes": 20.0,
        "first_response_breached": 1, "tickets_resolved": 0, "promises_due": 1,
        "promises_overdue": 1, "promises_kept_rate": 0.0, "ratings": 0, "complaint_alerts": 1,
    }
    total = r.json()["total"]
    assert (total["asks"], total["contained"], total["promises_kept_rate"]) == (8, 5, 0.5)
    by_agent = day.get("/api/v1/reports", "admin", by="agent", **RANGE).json()
    assert [(row["key"], row["label"], row["asks"]) for row in by_agent["rows"]] == [
        ("demo-agent", "李娜", 8)]
    by_team = day.get("/api/v1/reports", "admin", by="team", **RANGE).json()
    assert [(row["key"], row["label"]) for row in by_team["rows"]] == [
        ("demo-supervisor", "张伟")]
    other_team = day.get("/api/v1/reports", "sup-b", by="team", **RANGE).json()
    assert other_team["rows"] == []
    assert other_team["total"]["asks"] == 0
    # reproducible from the tables (docs/reports.md): the CSAT of 2026-03-03
    with sessions_of(day.app)() as s:
        csat = s.execute(text(
            "SELECT AVG(rating), COUNT(*) FROM tickets WHERE rating IS NOT NULL"
            " AND rated_at >= :start AND rated_at < :end"),
            {"start": "2026-03-02 16:00:00", "end": "2026-03-03 16:00:00"}).one()
        assert (float(csat[0]), csat[1]) == (first["csat_average"], first["ratings"])


def test_reports_refuse_bad_parameters(day: Day) -> None:
    bad_by = day.get("/api/v1/reports", by="region", **RANGE)
    assert (bad_by.status_code, bad_by.json()["error"]["code"]) == (400, "REPORT_BY_UNKNOWN")
    assert day.get("/api/v1/reports", by="day", to="2026-03-03").status_code == 422
    long = day.get("/api/v1/reports", **{"from": "2025-01-01", "to": "2026-03-03"})
    assert long.json()["error"]["code"] == "RANGE_TOO_LONG"
    assert day.app.get("/api/v1/reports", params=RANGE).status_code == 401
