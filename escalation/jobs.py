"""The periodic scan (an APScheduler interval job): SLA ladder, then due follow-ups.

Jobs take ids and open their own sessions; every run is a scan of the database, so a missed or
coalesced run loses nothing and a second scheduler cannot double anything. One tick claims at
most `batch_size` due follow-ups, oldest first: a backlog after an outage drains in order, a
bounded batch per tick; rows later than `stale_after` are marked stale instead of sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

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
) -> TickReport:
    report = TickReport()
    with transaction(sessions) as s:
        report.sla_rungs = sla.scan(s, scripts, now=now)
    for fid in followups.claim_due(sessions, owner=owner, now=now, limit=batch_size,
                                   lease_seconds=policy.followup_lease_seconds):
        report.followups[fid] = followups.deliver(sessions, scripts, fid, owner=owner, now=now,
                                                  stale_after=stale_after)
    if report.sla_rungs or report.followups:
        log.info("escalation tick: %d SLA rungs, follow-ups %s", len(report.sla_rungs),
                 report.followups)
    # -- the 18:00 digest into each support circle (once per circle per day; digest.py) ----
    digest.run(sessions, scripts, now=now)
    return report
