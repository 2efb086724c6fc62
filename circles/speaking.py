"""When the bot speaks in a group: addressed, a pending question, or an urgent matter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Why(StrEnum):
    OWN_ECHO = "own_echo"  # our own (or another bot's) message coming back: never answer
    STAFF = "staff"  # an agent or supervisor is talking: humans don't need the bot
    HUMAN_ACTIVE = "human_active"  # a human holds this member's case: the bot keeps out
    PRIVATE = "private"
    ADDRESSED = "addressed"
    PENDING = "pending"
    URGENT = "urgent"
    NOT_ADDRESSED = "not_addressed"
    GRACE = "grace"  # a customer's unaddressed question: answered unless a human does first


@dataclass(frozen=True)
class Decision:
    speak: bool
    why: Why


def decide(
    *,
    is_bot: bool,
    is_staff: bool,
    private_chat: bool,
    addressed: bool,
    pending_question: bool,
    urgent: bool,
) -> Decision:
    """Family chatter gets silence; the bot speaks only when someone needs it to."""
    if is_bot:
        return Decision(False, Why.OWN_ECHO)
    if is_staff:
        return Decision(False, Why.STAFF)
    if private_chat:
        return Decision(True, Why.PRIVATE)
    if addressed:
        return Decision(True, Why.ADDRESSED)
    if pending_question:
        return Decision(True, Why.PENDING)
    if urgent:
        return Decision(True, Why.URGENT)
    return Decision(False, Why.NOT_ADDRESSED)
