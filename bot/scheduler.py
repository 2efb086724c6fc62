"""The in-process scheduler: one APScheduler interval job that scans the database.

Never one APScheduler job per follow-up (APScheduler 3 drops missed date jobs): the outbox and
the tickets' deadlines are the record, and each tick reads what is due from them.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from bot.services import Services
from escalation.jobs import tick

log = logging.getLogger(__name__)

JOB_ID = "escalation-tick"


def start_scheduler(svc: Services) -> BackgroundScheduler | None:
    settings = svc.settings
    if not settings.scheduler_enabled:
        return None
    policy = settings.escalation_policy()
    owner = f"{socket.gethostname()}:{os.getpid()}"

    def run() -> None:
        tick(svc.sessions, svc.scripts, policy, now=datetime.now(UTC), owner=owner)

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        run, "interval", seconds=settings.scheduler_interval_seconds, id=JOB_ID,
        coalesce=True, max_instances=1,
        # A late run (a busy or suspended process) still runs; it scans, so nothing doubles.
        misfire_grace_time=max(60, 4 * settings.scheduler_interval_seconds),
    )
    scheduler.start()
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler | None) -> None:
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=True)  # let a running scan commit before the engine closes
