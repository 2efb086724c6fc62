"""Statuses and kinds shared by the whole domain, stored as their string values."""

from enum import StrEnum


class CircleKind(StrEnum):
    CORE = "core"
    SUPPORT = "support"
    MATTER = "matter"


class CircleStatus(StrEnum):
    ACTIVE = "active"
    DISSOLVED = "dissolved"  # a matter circle whose case is closed
    ARCHIVED = "archived"  # a core circle whose group was dismissed


class Role(StrEnum):
    """A member's role inside one circle."""

    CUSTOMER = "customer"
    FAMILY = "family"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    SPECIALIST = "specialist"
    BOT = "bot"
    GUEST = "guest"  # joined the group but is not in the customer's family: no policy data


class UserRole(StrEnum):
    """A console login's role."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class PolicyStatus(StrEnum):
    ACTIVE = "active"
    GRACE = "grace"
    LAPSED = "lapsed"
    TERMINATED = "terminated"


class ClaimStatus(StrEnum):
    SUBMITTED = "submitted"
    REVIEWING = "reviewing"
    NEED_DOCUMENTS = "need_documents"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"


class TicketStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class FollowUpKind(StrEnum):
    MESSAGE = "message"  # a scheduled message, sent as written
    PROMISE = "promise"  # a commitment to come back; kept if the agent answers first


class FollowUpStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    KEPT = "kept"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNKNOWN = "unknown"  # crashed between send and commit: handed to a human
    WINDOW_CLOSED = "window_closed"
    STALE = "stale"  # found due far past its time (outage, backlog): not sent, humans alerted


class Delivery(StrEnum):
    """A message row's delivery state (stored in messages.status)."""

    RECEIVED = "received"  # inbound
    RETURNED = "returned"  # carried by the caller's own HTTP or passive reply
    HELD = "held"  # a bot answer waiting out the human grace window; cancelled if a human speaks
    QUEUED = "queued"  # the outbox dispatcher sends it
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    WINDOW_CLOSED = "window_closed"
    NEEDS_HUMAN = "needs_human"
    # addressed to one member and no route reaches them alone: never sent to the group; the
    # member is told the agent will contact them, and the agent gets a ticket
    PRIVATE_HELD = "private_held"
    UNKNOWN = "unknown"


class ConsentScope(StrEnum):
    """What a holder lets a family member see."""

    POLICY = "policy"
    CLAIM = "claim"
    HEALTH = "health"


class ConsentSource(StrEnum):
    """How the holder's consent reached us."""

    PAPER = "paper"  # a signed form, recorded by the agency (and by the importer)
    CHAT = "chat"  # the holder said so to the bot, privately
    AGENT = "agent"  # the agent recorded it on the holder's word


class ProductKind(StrEnum):
    """What a policy covers, for the family coverage view (保单检视)."""

    LIFE = "life"
    CRITICAL_ILLNESS = "critical_illness"
    MEDICAL = "medical"
    ACCIDENT = "accident"
    ANNUITY = "annuity"
    EDUCATION = "education"
