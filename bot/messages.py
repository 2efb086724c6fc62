"""Neutral message types: every channel turns its request into these and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class InboundMessage:
    channel: str  # webhook | wechat | wecom | web
    chat_id: str
    sender_id: str
    sender_name: str
    text: str
    msg_id: str
    ts: datetime
    mentions: tuple[str, ...] = ()
    private: bool = False  # a 1:1 chat with the bot


@dataclass(frozen=True)
class Reply:
    text: str
    to: str | None = None  # None: the whole group; a member id: a private message
    script_id: str | None = None
    script_version: int | None = None


@dataclass(frozen=True)
class Outcome:
    message_id: int
    replies: tuple[Reply, ...] = ()
    intent: str | None = None
    confidence: float | None = None
    ticket_id: int | None = None
    duplicate: bool = False
    spoke_because: str = ""
    notices: tuple[tuple[str, Reply], ...] = field(default=())  # (chat_id, reply) elsewhere
    # The member's messages are ordered by the conversation lock: "held" (across workers),
    # "process" (the state store is down: ordered within this worker only), "skipped" (it
    # stayed busy past the wait: handled unordered, and said so in metrics, logs and answer).
    lock: str = "held"
