"""The 18:00 digest (每日服务小结): a few lines into each support circle, the circles that need
attention first, sent once per support circle per day.

Runs from the periodic scan (escalation/jobs.py): from 18:00 Asia/Shanghai until midnight,
each support circle without a digest for the day gets one (no message when all its circles
were quiet). A `digest_sends` row with a unique key is written in the same transaction as the
queued message, so two schedulers, a retried tick or a restart send it once. The same run
stores the day summaries it read (provisional) and completes yesterday's.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from escalation.notify import display_name, queue
from escalation.summary_facts import local_day
from escalation.summary_store import attention, day_summary
from storage.db import transaction
from storage.enums import CircleKind, CircleStatus
from storage.formats import SHANGHAI
from storage.formats import day as day_label
from storage.models import Circle, DigestSend, ServiceSummary
from storage.scripts import Rendered, ScriptLibrary

log = logging.getLogger(__name__)

DIGEST_HOUR = 18  # Asia/Shanghai
MAX_LINES = 5  # circles named one by one; the rest are counted


def due_day(now: datetime) -> date | None:
    """The day whose digest is due at `now`: today from 18:00 on, else none."""
    local = now.astimezone(SHANGHAI)
    return local.date() if local.hour >= DIGEST_HOUR else None


def next_time(now: datetime) -> datetime:
    """The next 18:00 in Shanghai strictly after `now`: the scan wakes for it."""
    local = now.astimezone(SHANGHAI)
    at = local.replace(hour=DIGEST_HOUR, minute=0, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at


def digest_key(support_id: int, day: date) -> str:
    return f"digest:{support_id}:{day.isoformat()}"


def run(sessions: sessionmaker[Session], scripts: ScriptLibrary, *, now: datetime) -> list[int]:
    """Send every digest due at `now`; returns the support circles that got one in this call."""
    day = due_day(now)
    if day is None:
        return []
    with transaction(sessions) as s:
        done = select(DigestSend.circle_id).where(DigestSend.day == day)
        pending = list(s.scalars(
            select(Circle.id).where(
                Circle.kind == CircleKind.SUPPORT, Circle.status == CircleStatus.ACTIVE,
                Circle.agent_id.is_not(None), Circle.id.not_in(done),
            ).order_by(Circle.id)
        ))
    if not pending:
        return []
    _complete_yesterday(sessions, scripts, day, now=now)
    sent: list[int] = []
    for support_id in pending:
        with transaction(sessions) as s:
            support = s.get(Circle, support_id)
            if support is not None and send(s, scripts, support, day, now=now):
                sent.append(support_id)
    if sent:
        log.info("daily digest for %s sent to %d support circles", day, len(sent))
    return sent


def send(
    session: Session, scripts: ScriptLibrary, support: Circle, day: date, *, now: datetime
) -> bool:
    """Queue the digest unless it is already on record; False when someone else sent it, or
    when none of the agent's circles had anything to report (the day is on record all the
    same, with no message: a quiet day is not worth a message to a busy team)."""
    try:
        with session.begin_nested():
            record = DigestSend(dedupe_key=digest_key(support.id, day), circle_id=support.id,
                                day=day, created_at=now)
            session.add(record)
    except IntegrityError:
        return False
    text = compose(session, scripts, support, day, now=now)
    if text is None:
        return False
    script = Rendered(text, "digest.head", scripts.scripts["digest.head"].version)
    record.message_id = queue(session, support, text, now=now, script=script).id
    return True


def compose(
    session: Session, scripts: ScriptLibrary, support: Circle, day: date, *, now: datetime
) -> str | None:
    """A few lines: the circles needing attention first, then the others' activity; None when
    every circle was quiet."""
    circles = list(session.scalars(
        select(Circle).where(Circle.kind == CircleKind.CORE, Circle.status == CircleStatus.ACTIVE,
                             Circle.agent_id == support.agent_id).order_by(Circle.id)
    ))
    rows = [(c, day_summary(session, scripts, c, day, now=now)) for c in circles]
    urgent = sorted((r for r in rows if attention(r[1].figures) > 0),
                    key=lambda r: -attention(r[1].figures))
    active = [r for r in rows if attention(r[1].figures) == 0 and not r[1].figures.get("quiet")]
    quiet = len(rows) - len(urgent) - len(active)

    def say(script_id: str, **variables: object) -> str:
        return scripts.render(script_id, variables).text

    lines = [say("digest.head", date_label=day_label(day), count=len(circles),
                 agent_name=display_name(session, support.agent_id,
                                         scripts.default("agent_name")))]
    named = urgent + active
    flagged = {circle.id for circle, _ in urgent}
    for circle, summary in named[:MAX_LINES]:
        if circle.id in flagged:
            lines.append(say("digest.attention", circle_name=circle.name,
                             items=_issues(scripts, summary)))
        else:
            f = summary.figures
            lines.append(say("digest.activity", circle_name=circle.name, count=f.get("asks", 0),
                             settled=f.get("bot_settled", 0),
                             handoffs=len(f.get("handoffs") or [])))
    if not named:
        return None
    if len(named) > MAX_LINES:
        lines.append(say("digest.more", count=len(named) - MAX_LINES))
    if quiet:
        lines.append(say("digest.quiet_rest", count=quiet))
    return "\n".join(lines)


def _issues(scripts: ScriptLibrary, summary: ServiceSummary) -> str:
    f = summary.figures
    items: list[str] = []
    if f.get("sla_breaches"):
        items.append(scripts.render("digest.issue.breach", {"count": f["sla_breaches"]}).text)
    if f.get("promises_overdue"):
        items.append(scripts.render("digest.issue.promise", {"count": f["promises_overdue"]}).text)
    if (f.get("mood") or {}).get("complaint_risk"):
        items.append(scripts.render("digest.issue.complaint", {}).text)
    if f.get("unanswered"):
        items.append(scripts.render("digest.issue.unanswered", {"count": f["unanswered"]}).text)
    return scripts.label("summary_joiners", "list").join(items)


def _complete_yesterday(
    sessions: sessionmaker[Session], scripts: ScriptLibrary, today: date, *, now: datetime
) -> None:
    """Yesterday's day summaries, written whole now that the day is over (the daily job)."""
    yesterday = today - timedelta(days=1)
    with transaction(sessions) as s:
        for circle in s.scalars(select(Circle).where(Circle.kind == CircleKind.CORE)
                                .order_by(Circle.id)):
            if local_day(circle.created_at) <= yesterday:
                day_summary(s, scripts, circle, yesterday, now=now)
