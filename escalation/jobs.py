"""The scan (one APScheduler job, pulled in to the next due row): SLA ladder, then follow-ups.

Jobs take ids and open their own sessions; every run is a scan of the database, so a missed or
coalesced run loses nothing and a second scheduler cannot double anything. One tick claims at
most `batch_size` due follow-ups, oldest first: a backlog after an outage drains in order, a
bounded batch per tick; rows later than `stale_after` are marked stale instead of sent.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from circles import care_store
from circles.care import CareSettings
from escalation import digest, followups, sla
from escalation.policy import EscalationPolicy
from storage.db import transaction
from storage.scripts import ScriptLibrary

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    sla_rungs: list[tuple[int, str]] = field(default_factory=list)
    followups: dict[int, str] = field(default_factory=dict)


def tick(
    sessions: sessionmaker[Session],
    scripts: ScriptLibrary,
    policy: EscalationPolicy,
    *,
    now: datetime,
    owner: str,
    stale_after: timedelta = followups.STALE_AFTER,
    batch_size: int = followups.BATCH_SIZE,
    care: CareSettings | None = None,
    bot_name: str = "小助手",
) -> TickReport:
    report = TickReport()
    with transaction(sessions) as s:
        report.sla_rungs = sla.scan(s, scripts, now=now)
    claimed = followups.claim_due(sessions, owner=owner, now=now, limit=batch_size,
                                  lease_seconds=policy.followup_lease_seconds)
    try:
        report.followups = followups.deliver_batch(sessions, scripts, claimed, owner=owner,
                                                   now=now, stale_after=stale_after)
        claimed = []
    except Exception:  # something in the batch failed: it rolled back; now one by one
        log.exception("follow-up batch failed; delivering its %d rows one by one", len(claimed))
    for fid in claimed:
        try:
            report.followups[fid] = followups.deliver(sessions, scripts, fid, owner=owner,
                                                      now=now, stale_after=stale_after)
        except Exception:  # one bad row must not hold up the batch; its lease brings it back
            log.exception("follow-up %s could not be delivered; retried after its lease", fid)
            report.followups[fid] = "error"
    if report.sla_rungs or report.followups:
        log.info("escalation tick: %d SLA rungs, follow-ups %s", len(report.sla_rungs),
                 dict(Counter(report.followups.values())))
    # -- the 18:00 digest into each support circle (once per circle per day; digest.py) ----
    digest.run(sessions, scripts, now=now)
    # -- the day's proactive care into the outbox (once per day; circles/care_store.py) -----
    if care is not None:
        care_store.run(sessions, scripts, care, now=now, bot_name=bot_name)
    return report


def next_due(
    sessions: sessionmaker[Session], *, now: datetime, care: CareSettings | None = None
) -> datetime | None:
    """The earliest moment the scan has something to do after `now`'s scan: a follow-up or a
    lease running out, or an SLA rung (the rungs at or before `now` were fired by that scan)."""
    with sessions() as s:
        times = [followups.next_due(s, now=now), sla.next_rung(s, after=now)]
    times.append(digest.next_time(now))
    if care is not None:
        times.append(care_store.next_time(now, care))
    found = [t for t in times if t is not None]
    return min(found) if found else None
