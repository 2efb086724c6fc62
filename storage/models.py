"""SQLAlchemy 2.0 models: the durable record of circles, messages, tickets and follow-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from storage.enums import (
    CircleKind,
    CircleStatus,
    ClaimStatus,
    Direction,
    FollowUpKind,
    FollowUpStatus,
    PolicyStatus,
    Priority,
    Role,
    TicketStatus,
    UserRole,
)
from storage.pii import mask


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: times must carry a zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


def _enum(kind: type[StrEnum]) -> SAEnum:
    """Stored as plain strings (no native enum: adding a status needs no DDL), read as enums."""
    return SAEnum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=max(len(v) for v in kind) + 8,
        values_callable=lambda e: [m.value for m in e],
    )


class Customer(Base):
    """A policy holder in the book of business.

    Phone and ID numbers are stored three ways: sealed (storage/crypto.py: key id + AES-GCM),
    a keyed hash for matching, and a masked form for display. The plain number is never stored.
    """

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_no: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    honorific: Mapped[str] = mapped_column(String(32))  # 王先生
    gender: Mapped[str | None] = mapped_column(String(8))  # male | female
    birth_date: Mapped[date | None] = mapped_column(Date)
    phone_sealed: Mapped[str | None] = mapped_column(Text)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    id_number_sealed: Mapped[str | None] = mapped_column(Text)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    # The agent's member id (no foreign key: members already point at customers)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # A keyed digest of the imported row: an unchanged row is recognised without decrypting
    import_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Member(Base):
    """A person (or the bot) who can speak in circles; `id` is our stable member key."""

    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    supervisor_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A family member of a customer (family.csv); `customer_id` is for the holder in person
    family_of_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    relation: Mapped[str | None] = mapped_column(String(16))  # spouse|child|parent|other
    gender: Mapped[str | None] = mapped_column(String(8))
    birth_date: Mapped[date | None] = mapped_column(Date)
    phone_sealed: Mapped[str | None] = mapped_column(Text)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    import_digest: Mapped[str | None] = mapped_column(String(64))

    customer: Mapped[Customer | None] = relationship(foreign_keys=[customer_id])


class MemberIdentity(Base):
    """Binds a channel's user id (OpenID, WeCom external id) to a member."""

    __tablename__ = "member_identities"
    __table_args__ = (UniqueConstraint("channel", "channel_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    channel_user_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))


class Circle(Base):
    __tablename__ = "circles"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[CircleKind] = mapped_column(_enum(CircleKind))
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[CircleStatus] = mapped_column(_enum(CircleStatus), default=CircleStatus.ACTIVE)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("circles.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    channel: Mapped[str] = mapped_column(String(32), default="webhook")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dissolved_at: Mapped[datetime | None]
    import_digest: Mapped[str | None] = mapped_column(String(64))
    # Proactive care: "direct" or "agent_first" (drafts for the agent); None: the setting
    care_route: Mapped[str | None] = mapped_column(String(16))

    customer: Mapped[Customer | None] = relationship()
    members: Mapped[list[CircleMember]] = relationship(back_populates="circle")


class CircleMember(Base):
    __tablename__ = "circle_members"
    __table_args__ = (UniqueConstraint("circle_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    role: Mapped[Role] = mapped_column(_enum(Role))
    # May this member see the circle customer's policy data (holder's consent on record)?
    authorized: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    circle: Mapped[Circle] = relationship(back_populates="members")
    member: Mapped[Member] = relationship()


class Policy(Base):
    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_no: Mapped[str] = mapped_column(String(40), unique=True)
    product: Mapped[str] = mapped_column(String(128))
    holder_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    insured_name: Mapped[str] = mapped_column(String(64))
    sum_assured: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    premium: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    premium_frequency: Mapped[str] = mapped_column(String(16), default="annual")
    next_due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[PolicyStatus] = mapped_column(_enum(PolicyStatus), default=PolicyStatus.ACTIVE)
    cash_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    cash_value_date: Mapped[date | None] = mapped_column(Date)
    beneficiaries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The insured: the holder or another customer, or one of the holder's family members
    insured_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    insured_member_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    effective_date: Mapped[date | None] = mapped_column(Date)
    payment_years: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str | None] = mapped_column(String(24))  # storage.enums.ProductKind
    survival_benefit_date: Mapped[date | None] = mapped_column(Date)
    survival_benefit_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    import_digest: Mapped[str | None] = mapped_column(String(64))


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_no: Mapped[str] = mapped_column(String(40), unique=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), index=True)
    status: Mapped[ClaimStatus] = mapped_column(_enum(ClaimStatus))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    import_digest: Mapped[str | None] = mapped_column(String(64))

    policy: Mapped[Policy] = relationship()


class Message(Base):
    """Every message in and out; text is stored masked. A channel message id is stored once."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "channel_msg_id"),
        Index("ix_messages_circle_created", "circle_id", "created_at"),
        Index("ix_messages_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    circle_id: Mapped[int | None] = mapped_column(ForeignKey("circles.id"))
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    channel: Mapped[str] = mapped_column(String(32))
    channel_msg_id: Mapped[str | None] = mapped_column(String(128))
    sender_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    sender_name: Mapped[str | None] = mapped_column(String(64))
    recipient_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))  # None: the group
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None]
    script_id: Mapped[str | None] = mapped_column(String(96))
    script_version: Mapped[int | None] = mapped_column(Integer)
    # inbound: received; outbound: returned (in the HTTP/passive reply), queued, sent, failed
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(256))
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A console login (agent, supervisor, admin), linked to the member who speaks in circles."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # None: imported staff who cannot log in until a password is set
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole))
    member_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    name: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    import_digest: Mapped[str | None] = mapped_column(String(64))


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status_priority", "status", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"), index=True)
    member_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    source_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    intent: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.OPEN)
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.NORMAL)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    summary: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_response_due: Mapped[datetime | None]
    resolve_due: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # SLA ladder: the half-time reminders, computed in business time when the ticket opens
    first_response_remind_at: Mapped[datetime | None]
    resolve_remind_at: Mapped[datetime | None]
    # Handoff: the last time a human spoke in the circle while this ticket was open
    human_active_at: Mapped[datetime | None]
    human_active_by: Mapped[str | None] = mapped_column(String(64))
    # After resolution: the customer's 1-5 rating
    rating_asked_at: Mapped[datetime | None]
    rating: Mapped[int | None] = mapped_column(Integer)
    rated_at: Mapped[datetime | None]


class TicketEvent(Base):
    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_dedupe_key", "dedupe_key", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set on events that must happen once (an SLA rung): the unique index makes them idempotent
    dedupe_key: Mapped[str | None] = mapped_column(String(160))


class Matter(Base):
    """A matter circle's case file: which ticket it serves, and its record once dissolved."""

    __tablename__ = "matters"

    id: Mapped[int] = mapped_column(primary_key=True)
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"), unique=True)
    parent_circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dissolved_at: Mapped[datetime | None]


class FollowUp(Base):
    """The outbox of promised messages: one row per promise, never sent twice."""

    __tablename__ = "followups"
    __table_args__ = (Index("ix_followups_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[FollowUpKind] = mapped_column(_enum(FollowUpKind))
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    recipient_id: Mapped[str | None] = mapped_column(ForeignKey("members.id"))
    text: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime]
    status: Mapped[FollowUpStatus] = mapped_column(
        _enum(FollowUpStatus), default=FollowUpStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(256))
    created_by: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Privacy-relevant events: refused disclosures, reveals of masked data, consent changes."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(48), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    circle_id: Mapped[int | None] = mapped_column(ForeignKey("circles.id"))
    subject: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Consent(Base):
    """The holder lets a family member see some of their data (scopes) until a date.

    Never deleted: a revoked or replaced grant keeps its row, and every change writes an
    AuditEvent (consent_granted / consent_revoked).
    """

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_member_holder", "member_id", "holder_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"))
    scopes: Mapped[str] = mapped_column(String(64))  # comma-separated ConsentScope values
    until: Mapped[date | None] = mapped_column(Date)  # None: until revoked
    source: Mapped[str] = mapped_column(String(16))  # ConsentSource
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    recorded_by: Mapped[str | None] = mapped_column(String(64))


class ChannelCursor(Base):
    """Durable per-channel positions (e.g. the WeCom kf sync_msg cursor)."""

    __tablename__ = "channel_cursors"
    __table_args__ = (UniqueConstraint("channel", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceSummary(Base):
    """A service summary (服务小结): one per resolved ticket, one per core circle per day.

    `key` is `ticket:<id>` or `day:<circle id>:<YYYY-MM-DD>` (the Asia/Shanghai day), so a
    summary is upserted, never duplicated. `text` is the prose a supervisor reads (masked);
    `figures` the numbers and facts behind it. `complete` is false for a day still running.
    """

    __tablename__ = "service_summaries"
    __table_args__ = (Index("ix_service_summaries_day_circle", "day", "circle_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # ticket | day
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text, default="")
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    as_of: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DigestSend(Base):
    """The 18:00 digest of one support circle on one day: the unique key makes it once only."""

    __tablename__ = "digest_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(96), unique=True)
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"))
    day: Mapped[date] = mapped_column(Date)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareOptOut(Base):
    """A family asked us to stop one category of care messages ("别再提醒我交费了").

    Never deleted: "恢复提醒" sets `revoked_at`, so the record shows who asked for what, when."""

    __tablename__ = "care_opt_outs"
    __table_args__ = (Index("ix_care_opt_outs_customer", "customer_id", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    category: Mapped[str] = mapped_column(String(16))  # circles.care.CATEGORIES
    member_id: Mapped[str | None] = mapped_column(String(64))  # who asked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class CareDraft(Base):
    """Agent first: a care message shown to the agent before it goes out.

    The message itself is a pending follow-up due at `auto_send_at` (sent as is unless the
    agent acts); approving brings it forward, editing changes its words, skipping cancels it."""

    __tablename__ = "care_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    circle_id: Mapped[int] = mapped_column(ForeignKey("circles.id"), index=True)
    followup_id: Mapped[int] = mapped_column(ForeignKey("followups.id"))
    kind: Mapped[str] = mapped_column(String(24))
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # approved|edited|skipped
    auto_send_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareRun(Base):
    """The daily care run of one day, written when it finished (the scan skips a done day)."""

    __tablename__ = "care_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    planned: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- masked on every write, whoever writes ---------------------------------------------------
# Names and ids people type (a matter's name, a specialist's display name, the username of a
# failed login) and follow-up texts are free text: an ID-card, phone or card number in them is
# masked as the attribute is set, so no code path can store it readable.
def _masked_on_set(_target: object, value: Any, _old: Any, _initiator: Any) -> Any:
    return mask(value) if isinstance(value, str) else value


for _attr in (Member.display_name, Circle.name, FollowUp.text, Message.sender_name,
              AuditEvent.actor_id, AuditEvent.subject, TicketEvent.actor_id):
    event.listen(_attr, "set", _masked_on_set, retval=True)
