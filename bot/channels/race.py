"""Race the pipeline against WeChat's reply window; a late result goes to the outbox instead."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import suppress
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.channels.inbound import QUEUED, RETURNED, queue_replies
from bot.messages import InboundMessage, Outcome, Reply
from storage.db import transaction
from storage.state import StateStore, StateUnavailable

log = logging.getLogger(__name__)

LATE_TTL = 3600.0


def late_key(msg: InboundMessage) -> str:
    return f"wx:late:{msg.channel}:{msg.msg_id}"


class _Race:
    """Who won, decided once under a lock: the worker finishing or the deadline passing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.late = False


def _retrieve(fut: asyncio.Future[Outcome]) -> None:
    """Nobody awaits a late run's result; read its exception so asyncio does not warn."""
    if not fut.cancelled():
        fut.exception()


async def handle_within(
    *,
    handle: Callable[..., Outcome],
    msg: InboundMessage,
    passive_to: str,
    deadline: float,
    executor: Executor,
    sessions: sessionmaker[Session],
    state: StateStore,
) -> Outcome | None:
    """The outcome if the pipeline finishes within `deadline`, else None (answer "success").

    When late, the worker marks this message's replies `queued` as soon as it finishes, so the
    outbox dispatcher delivers them through the customer-service API exactly once.
    """
    race = _Race()

    def deliver(reply: Reply) -> str:
        """Asked inside the pipeline's transaction: once it says "returned", we are committed
        to answering passively, even a few milliseconds past the deadline."""
        with race.lock:
            if race.late:
                return QUEUED
            race.done = True
        return RETURNED if reply.to in (None, passive_to) else QUEUED

    def work() -> Outcome:
        try:
            outcome = handle(msg, deliver=deliver)
        except Exception:
            with race.lock:
                race.done = True
                if race.late:  # nobody is waiting: this log line is the only trace
                    log.exception("late pipeline run failed for %s", msg.msg_id)
            raise
        with race.lock:
            race.done = True
            late = race.late
        if late and not outcome.duplicate:
            with transaction(sessions) as s:
                queue_replies(s, outcome.message_id, datetime.now(UTC))
        return outcome

    running = asyncio.wrap_future(executor.submit(work))
    running.add_done_callback(_retrieve)
    try:
        # shield: the deadline must not cancel a run that has not started yet
        return await asyncio.wait_for(asyncio.shield(running), deadline)
    except TimeoutError:
        with race.lock:
            if not race.done:
                race.late = True
        if not race.late:
            return await running  # finished right at the deadline: still ours to answer
        with suppress(StateUnavailable):
            state.set_json(late_key(msg), 1, ttl=LATE_TTL)
        log.info("pipeline late for %s %s: answering later via the outbox",
                 msg.channel, msg.msg_id)
        return None
