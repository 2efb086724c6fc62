"""Stored service summaries (服务小结): one per resolved ticket, one per core circle per day.

The domain functions the API and the console call. A past day's summary is computed once and
kept (`complete`); today's is computed as of now and kept as provisional until the day is over.
A ticket's summary is written when it is resolved, and again when the customer rates it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from escalation.summary_facts import (
    AskOutcome,
    Facts,
    PromiseState,
    day_span,
    gather,
    local_day,
    ticket_facts,
)
from escalation.summary_text import Prose, day_prose, ticket_prose
from storage.enums import CircleKind
from storage.errors import BadRequest, NotFound
from storage.models import Circle, Member, ServiceSummary, Ticket
from storage.scripts import ScriptLibrary

DAY, TICKET = "day", "ticket"
MAX_RANGE_DAYS = 92  # a team view or an export covers at most a quarter


def day_key(circle_id: int, day: date) -> str:
    return f"day:{circle_id}:{day.isoformat()}"


def ticket_key(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


# -- computing and storing ---------------------------------------------------------------------
def day_summary(
    session: Session, scripts: ScriptLibrary, circle: Circle, day: date, *, now: datetime
) -> ServiceSummary:
    """The circle's summary of `day`: the stored one when the day is over and it was computed
    after it ended; otherwise computed now (and stored, provisional while the day runs)."""
    start, end = day_span(day)
    if start > now:
        raise BadRequest(f"{day.isoformat()} has not begun yet; ask for today or a past day",
                         code="SUMMARY_DATE_FUTURE")
    key = day_key(circle.id, day)
    stored = session.scalar(select(ServiceSummary).where(ServiceSummary.key == key))
    if stored is not None and stored.complete:
        return stored
    as_of = min(end, now)
    facts = gather(session, circle, start, as_of)
    prose = day_prose(facts, scripts, _names(session, facts), day)
    return _upsert(session, key=key, kind=DAY, circle_id=circle.id,
                   ticket_id=None, day=day, prose=prose, figures=day_figures(facts),
                   complete=end <= now, as_of=as_of)


def ticket_summary(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, *, now: datetime,
    store: bool = True,
) -> ServiceSummary:
    """The ticket's summary as of now; stored when `store` (resolution and rating do)."""
    circle = session.get(Circle, ticket.circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"circle of ticket {ticket.id} is gone", code="CIRCLE_UNKNOWN")
    as_of = now + timedelta(microseconds=1)  # what happened at `now` (the resolution) counts
    facts = ticket_facts(ticket, as_of)
    start = ticket.created_at
    circle_facts = gather(session, circle, start, as_of)
    promises = [p for p in circle_facts.promises if p.ticket_id == ticket.id]
    names = _names(session, circle_facts, extra=(ticket.member_id, ticket.assignee_id))
    prose = ticket_prose(facts, promises, circle_name=circle.name, scripts=scripts, names=names)
    figures = {
        "ticket": _ticket_figures(facts),
        "promises": [_promise_figures(p) for p in promises],
        "sentences": list(prose.sentences),
        "suggestions": list(prose.suggestions),
    }
    day = local_day(ticket.resolved_at or now)
    if not store:
        return ServiceSummary(key=ticket_key(ticket.id), kind=TICKET, circle_id=circle.id,
                              ticket_id=ticket.id, day=day, text=prose.text, figures=figures,
                              complete=False, as_of=now)
    return _upsert(session, key=ticket_key(ticket.id), kind=TICKET, circle_id=circle.id,
                   ticket_id=ticket.id, day=day, prose=prose, figures=figures,
                   complete=ticket.resolved_at is not None, as_of=now)


def on_resolved(session: Session, scripts: ScriptLibrary, ticket: Ticket, *, now: datetime) -> None:
    """Called by escalation.tickets.resolve, inside its transaction."""
    ticket_summary(session, scripts, ticket, now=now)


def _fresh(
    session: Session, scripts: ScriptLibrary, row: ServiceSummary, *, now: datetime
) -> ServiceSummary:
    """A stored ticket summary whose ticket was rated (or reopened) since is written again."""
    ticket = session.get(Ticket, row.ticket_id) if row.ticket_id else None
    if ticket is None or ticket.resolved_at is None:
        return row
    if (row.figures.get("ticket") or {}).get("rating") == ticket.rating \
            and row.as_of >= ticket.resolved_at:
        return row
    return ticket_summary(session, scripts, ticket, now=max(now, ticket.rated_at or now))


def _upsert(
    session: Session, *, key: str, kind: str, circle_id: int, ticket_id: int | None, day: date,
    prose: Prose, figures: dict[str, Any], complete: bool, as_of: datetime,
) -> ServiceSummary:
    figures = {**figures, "sentences": list(prose.sentences),
               "suggestions": list(prose.suggestions)}
    values = {"kind": kind, "circle_id": circle_id, "ticket_id": ticket_id, "day": day,
              "text": prose.text, "figures": figures, "complete": complete, "as_of": as_of}
    row = session.scalar(select(ServiceSummary).where(ServiceSummary.key == key))
    if row is None:
        try:
            with session.begin_nested():
                row = ServiceSummary(key=key, created_at=as_of, **values)
                session.add(row)
            return row
        except IntegrityError:  # another scheduler or request stored it first: update theirs
            row = session.scalar(select(ServiceSummary).where(ServiceSummary.key == key))
            if row is None:  # pragma: no cover - the unique key said it exists
                raise
    for name, value in values.items():
        setattr(row, name, value)
    return row


def _names(session: Session, facts: Facts, extra: Iterable[str | None] = ()) -> dict[str, str]:
    ids = {p.made_by for p in facts.promises} | {t.assignee_id for t in facts.tickets}
    ids |= {t.member_id for t in facts.tickets} | set(extra) | {facts.agent_id}
    wanted = [i for i in ids if i]
    return dict(session.execute(
        select(Member.id, Member.display_name).where(Member.id.in_(wanted))
    ).all())


# -- figures -----------------------------------------------------------------------------------
def day_figures(facts: Facts) -> dict[str, Any]:
    opened = facts.tickets_opened()
    first = [t.first_response_minutes for t in opened if t.first_response_minutes is not None]
    resolved = [t.resolution_minutes for t in facts.tickets
                if t.resolution_minutes is not None and t.resolved_at
                and facts.start <= t.resolved_at < facts.end]
    rated = [t for t in facts.tickets if t.rated_at and facts.start <= t.rated_at < facts.end]
    ratings = [t.rating for t in rated if t.rating is not None]
    by_intent: dict[str, int] = {}
    for a in facts.asks:
        by_intent[a.intent] = by_intent.get(a.intent, 0) + 1
    mood = facts.mood
    return {
        "quiet": facts.quiet,
        "asks": len(facts.asks),
        "asks_by_intent": by_intent,
        "asked": [{"message_id": a.message_id, "speaker": a.speaker_name, "intent": a.intent,
                   "quote": a.quote, "outcome": a.outcome.value} for a in facts.asks],
        "bot_settled": len(facts.asks_by(AskOutcome.SETTLED)),
        "declined": len(facts.asks_by(AskOutcome.DECLINED)),
        "escalated": len(facts.asks_by(AskOutcome.ESCALATED)),
        "clarified": len(facts.asks_by(AskOutcome.CLARIFIED)),
        "human_answered": len(facts.asks_by(AskOutcome.HUMAN)),
        "unanswered": len(facts.asks_by(AskOutcome.UNANSWERED)),
        "handoffs": [_ticket_figures(t) for t in opened],
        "first_response_median_minutes": median(first) if first else None,
        "resolution_median_minutes": median(resolved) if resolved else None,
        "sla_breaches": sum(1 for t in facts.tickets
                            if t.breached and (t.open or facts.start <= t.created_at)),
        "promises": [_promise_figures(p) for p in facts.promises],
        **{f"promises_{state.value}": len(facts.promises_in(state)) for state in PromiseState},
        "mood": {
            "complaint_risk": mood.complaint_risk, "complaint_words": list(mood.complaint_words),
            "complaint_tickets": mood.complaint_tickets,
            "exclamation_messages": mood.exclamation_messages,
            "most_unanswered": mood.most_unanswered,
            "negative_words": list(mood.negative_words), "positive": mood.positive,
        },
        "ratings": [{"ticket_id": t.id, "rating": t.rating} for t in rated],
        "rating_average": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "open_tickets": [t.id for t in facts.open_tickets()],
        "open_promises": [p.id for p in facts.promises
                          if p.state in (PromiseState.OPEN, PromiseState.OVERDUE)],
        "repeats": [{"intent": i, "times": n} for i, n in facts.repeats],
    }


def _ticket_figures(t: Any) -> dict[str, Any]:
    return {
        "ticket_id": t.id, "intent": t.intent, "reason": t.reason, "status": t.status,
        "first_response_minutes": t.first_response_minutes,
        "first_response_breached": t.first_response_breached,
        "resolution_minutes": t.resolution_minutes, "resolve_breached": t.resolve_breached,
        "rating": t.rating, "risk": list(t.risk),
    }


def _promise_figures(p: Any) -> dict[str, Any]:
    return {
        "followup_id": p.id, "ticket_id": p.ticket_id, "made_by": p.made_by, "quote": p.quote,
        "due_at": p.due_at.isoformat(), "state": p.state.value,
        "kept_at": p.kept_at.isoformat() if p.kept_at else None,
    }


# -- reading -----------------------------------------------------------------------------------
def view(row: ServiceSummary, circle: Circle) -> dict[str, Any]:
    """The API's and the console's shape of one summary: prose as `text` beside the figures."""
    return {
        "kind": row.kind, "circle": circle.chat_id, "circle_name": circle.name,
        "agent_id": circle.agent_id, "date": row.day.isoformat(), "ticket_id": row.ticket_id,
        "text": row.text, "figures": row.figures, "complete": row.complete,
        "as_of": row.as_of.isoformat(),
    }


def core_circles(
    session: Session, visible: ColumnElement[bool], chat_id: str | None = None
) -> list[Circle]:
    q = select(Circle).where(Circle.kind == CircleKind.CORE, visible).order_by(Circle.id)
    if chat_id is not None:
        q = q.where(Circle.chat_id == chat_id)
    return list(session.scalars(q))


def for_date(
    session: Session, scripts: ScriptLibrary, visible: ColumnElement[bool], day: date, *,
    now: datetime, chat_id: str | None = None,
) -> list[dict[str, Any]]:
    """Each visible core circle's day summary, then the summaries of its tickets resolved that
    day. An unknown or invisible circle is a 404 (never a hint that it exists)."""
    circles = core_circles(session, visible, chat_id)
    if chat_id is not None and not circles:
        raise NotFound(f"no circle {chat_id!r} among yours", code="CIRCLE_NOT_FOUND")
    out: list[dict[str, Any]] = []
    for circle in circles:
        out.append(view(day_summary(session, scripts, circle, day, now=now), circle))
        tickets = session.scalars(select(ServiceSummary).where(
            ServiceSummary.kind == TICKET, ServiceSummary.circle_id == circle.id,
            ServiceSummary.day == day).order_by(ServiceSummary.ticket_id))
        out += [view(_fresh(session, scripts, t, now=now), circle) for t in tickets]
    return out


def for_ticket(
    session: Session, scripts: ScriptLibrary, ticket: Ticket, *, now: datetime
) -> dict[str, Any]:
    """The stored summary of a resolved ticket; an open one is summarised as of now, unstored."""
    circle = session.get(Circle, ticket.circle_id)
    if circle is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound(f"circle of ticket {ticket.id} is gone", code="CIRCLE_UNKNOWN")
    row = session.scalar(select(ServiceSummary).where(ServiceSummary.key == ticket_key(ticket.id)))
    if row is None or ticket.resolved_at is None:
        row = ticket_summary(session, scripts, ticket, now=now, store=False)
    else:
        row = _fresh(session, scripts, row, now=now)
    return view(row, circle)


def check_range(start: date, end: date) -> None:
    day_span(start)  # each day within the supported years
    day_span(end)
    if end < start:
        raise BadRequest("`to` is before `from`", code="RANGE_INVERTED")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise BadRequest(f"at most {MAX_RANGE_DAYS} days at a time", code="RANGE_TOO_LONG")


def team_view(
    session: Session, scripts: ScriptLibrary, visible: ColumnElement[bool], start: date,
    end: date, *, now: datetime,
) -> list[dict[str, Any]]:
    """Every visible core circle's day summaries over [start, end] (days not begun are left
    out), newest day first, circles needing attention first within a day."""
    check_range(start, end)
    last = min(end, local_day(now))
    out: list[dict[str, Any]] = []
    day = last
    circles = core_circles(session, visible)
    while day >= start:
        rows = [(day_summary(session, scripts, c, day, now=now), c) for c in circles]
        rows.sort(key=lambda rc: (-attention(rc[0].figures), rc[1].id))
        out += [view(r, c) for r, c in rows]
        day -= timedelta(days=1)
    return out


def attention(figures: dict[str, Any]) -> int:
    """How much a day summary needs a supervisor: breaches, broken promises, complaint risk and
    unanswered questions, weighted in that order of urgency (0: nothing to look at)."""
    mood = figures.get("mood") or {}
    return (4 * int(figures.get("promises_overdue", 0)) + 3 * int(bool(mood.get("complaint_risk")))
            + 2 * int(figures.get("sla_breaches", 0)) + int(figures.get("unanswered", 0)))


# -- the CSV export (docs/reports.md lists the columns) ----------------------------------------
CSV_COLUMNS = (
    "date", "circle", "circle_name", "agent", "asks", "bot_settled", "handoffs",
    "first_response_median_minutes", "resolution_median_minutes", "sla_breaches", "promises",
    "promises_on_time", "promises_late", "promises_overdue", "promises_open", "complaint_risk",
    "unanswered", "open_items", "rating_average", "text",
)


def export_csv(
    session: Session, scripts: ScriptLibrary, visible: ColumnElement[bool], start: date,
    end: date, *, now: datetime,
) -> str:
    """One row per visible core circle per day, oldest first; UTF-8 with a BOM so that Excel
    opens the Chinese as Chinese. Headers are the labels of `summary_csv` in scripts_zh."""
    check_range(start, end)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([scripts.label("summary_csv", c) for c in CSV_COLUMNS])
    circles = core_circles(session, visible)
    names = dict(session.execute(select(Member.id, Member.display_name)).all())
    day, last = start, min(end, local_day(now))
    while day <= last:
        for circle in circles:
            row = day_summary(session, scripts, circle, day, now=now)
            writer.writerow(_csv_row(row, circle, names.get(circle.agent_id or "", "")))
        day += timedelta(days=1)
    return "\ufeff" + buffer.getvalue()


def _csv_row(row: ServiceSummary, circle: Circle, agent: str) -> list[Any]:
    f = row.figures
    promises = f.get("promises") or []
    values: dict[str, Any] = {
        "date": row.day.isoformat(), "circle": circle.chat_id, "circle_name": circle.name,
        "agent": agent, "asks": f.get("asks", 0), "bot_settled": f.get("bot_settled", 0),
        "handoffs": len(f.get("handoffs") or []),
        "first_response_median_minutes": _blank(f.get("first_response_median_minutes")),
        "resolution_median_minutes": _blank(f.get("resolution_median_minutes")),
        "sla_breaches": f.get("sla_breaches", 0), "promises": len(promises),
        **{f"promises_{s.value}": f.get(f"promises_{s.value}", 0) for s in PromiseState},
        "complaint_risk": int(bool((f.get("mood") or {}).get("complaint_risk"))),
        "unanswered": f.get("unanswered", 0),
        "open_items": len(f.get("open_tickets") or []) + len(f.get("open_promises") or []),
        "rating_average": _blank(f.get("rating_average")), "text": row.text,
    }
    return [values[c] for c in CSV_COLUMNS]


def _blank(value: Any) -> Any:
    return "" if value is None else value
