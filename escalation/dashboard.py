"""The supervisor's dashboard: each figure defined once, for the page and GET /api/v1/dashboard.

Open tickets, SLA at risk and breached, and each agent's load are counted now; the rest over
tickets (or messages, or promises) created or due in [start, end).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from escalation.access import visible, visible_circles
from escalation.queue import Sla, TicketFilter, is_complaint_alert, query
from storage.enums import (
    CircleKind,
    Delivery,
    Direction,
    FollowUpKind,
    FollowUpStatus,
    Priority,
    Role,
    UserRole,
)
from storage.models import Circle, CircleMember, FollowUp, Member, Message, Ticket

MISSED = (FollowUpStatus.SENT, FollowUpStatus.STALE, FollowUpStatus.FAILED,
          FollowUpStatus.UNKNOWN, FollowUpStatus.WINDOW_CLOSED)


@dataclass(frozen=True)
class AgentLoad:
    member_id: str | None  # None: the team pool (unassigned)
    name: str  # "" for the pool
    open: int
    breached: int


@dataclass(frozen=True)
class Dashboard:
    start: datetime
    end: datetime
    open_by_priority: dict[str, int]
    open_total: int
    sla_at_risk: int
    sla_breached: int
    agent_load: list[AgentLoad]
    tickets_created: int
    median_first_response_minutes: float | None
    median_resolution_minutes: float | None
    questions: int  # customer messages the bot took on (answered, or handed to a human)
    contained: int  # ... of which settled without a human
    containment_rate: float | None
    promises_due: int
    promises_kept: int
    promises_kept_rate: float | None
    complaint_alerts: int
    csat_count: int
    csat_average: float | None
    csat_satisfied_rate: float | None  # ratings of 4 or 5
    created_per_day: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        data["created_per_day"] = [{"day": d, "count": n} for d, n in self.created_per_day]
        return data


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _minutes(values: list[timedelta]) -> float | None:
    return round(median(v.total_seconds() for v in values) / 60, 1) if values else None


def team(session: Session, role: UserRole, member_id: str | None) -> list[Member]:
    """The agents a login works with: a supervisor's team, an agent's teammates, admin all."""
    q = select(Member).where(Member.is_bot.is_(False), Member.customer_id.is_(None))
    if role == UserRole.SUPERVISOR:
        q = q.where(Member.supervisor_id == member_id)
    elif role == UserRole.AGENT:
        mine = select(Member.supervisor_id).where(Member.id == member_id).scalar_subquery()
        q = q.where(Member.supervisor_id == mine)
    else:
        q = q.where(Member.supervisor_id.is_not(None))
    return list(session.scalars(q.order_by(Member.id)))


def _count(session: Session, role: UserRole, member_id: str | None, f: TicketFilter,
           now: datetime) -> int:
    inner = query(role, member_id, f, now).with_only_columns(Ticket.id).subquery()
    return session.scalar(select(func.count()).select_from(inner)) or 0


def dashboard(
    session: Session, role: UserRole, member_id: str | None, *, start: datetime,
    end: datetime, now: datetime, day_starts: list[datetime] | None = None,
) -> Dashboard:
    """Every figure over the tickets and circles this login may see."""
    scope = visible(role, member_id)
    open_f = TicketFilter(open_only=True, limit=0)
    by_priority = dict.fromkeys((p.value for p in Priority), 0)
    rows = session.execute(
        query(role, member_id, open_f, now)
        .with_only_columns(Ticket.priority, func.count())
        .group_by(Ticket.priority)
    ).all()
    for priority, n in rows:
        by_priority[Priority(priority).value] = n
    at_risk = _count(session, role, member_id,
                     TicketFilter(open_only=True, sla=Sla.AT_RISK), now)
    breached = _count(session, role, member_id,
                      TicketFilter(open_only=True, sla=Sla.BREACHED), now)
    load = [
        AgentLoad(
            m.id, m.display_name,
            _count(session, role, member_id, TicketFilter(open_only=True, assignee=m.id), now),
            _count(session, role, member_id,
                   TicketFilter(open_only=True, assignee=m.id, sla=Sla.BREACHED), now),
        )
        for m in team(session, role, member_id)
    ]
    pool = _count(session, role, member_id, TicketFilter(open_only=True, assignee="none"), now)
    load.append(AgentLoad(None, "", pool, _count(
        session, role, member_id,
        TicketFilter(open_only=True, assignee="none", sla=Sla.BREACHED), now)))

    in_range = list(session.scalars(
        select(Ticket).join(Circle, Circle.id == Ticket.circle_id)
        .where(scope, Ticket.created_at >= start, Ticket.created_at < end)
    ))
    first = [t.first_response_at - t.created_at for t in in_range if t.first_response_at]
    resolution = [t.resolved_at - t.created_at for t in in_range if t.resolved_at]
    ratings = [t.rating for t in in_range if t.rating is not None]
    complaints = sum(1 for t in in_range if is_complaint_alert(t))

    questions, contained = _containment(session, role, member_id, start, end)
    kept, due = _promises(session, role, member_id, start, end)
    per_day: list[tuple[str, int]] = []
    for i, day_start in enumerate(day_starts or []):
        day_end = day_starts[i + 1] if day_starts and i + 1 < len(day_starts) else end
        n = sum(1 for t in in_range if day_start <= t.created_at < day_end)
        per_day.append((day_start.strftime("%m-%d"), n))
    return Dashboard(
        start=start, end=end, open_by_priority=by_priority,
        open_total=sum(by_priority.values()), sla_at_risk=at_risk, sla_breached=breached,
        agent_load=load, tickets_created=len(in_range),
        median_first_response_minutes=_minutes(first),
        median_resolution_minutes=_minutes(resolution),
        questions=questions, contained=contained, containment_rate=_rate(contained, questions),
        promises_due=due, promises_kept=kept, promises_kept_rate=_rate(kept, due),
        complaint_alerts=complaints, csat_count=len(ratings),
        csat_average=round(sum(ratings) / len(ratings), 2) if ratings else None,
        csat_satisfied_rate=_rate(sum(1 for r in ratings if r >= 4), len(ratings)),
        created_per_day=per_day,
    )


def _containment(session: Session, role: UserRole, member_id: str | None, start: datetime,
                 end: datetime) -> tuple[int, int]:
    """Customer-side messages in core circles the bot took on: answered (a bot reply that was
    not cancelled) or handed to a human (a ticket); contained: answered with no ticket."""
    reply = aliased(Message)
    answered = exists().where(
        reply.reply_to_id == Message.id, reply.direction == Direction.OUT,
        reply.sender_id.is_(None), reply.status != Delivery.CANCELLED,
        reply.circle_id == Message.circle_id,
    )
    ticketed = exists().where(Ticket.source_message_id == Message.id)
    customer_side = exists().where(
        CircleMember.circle_id == Message.circle_id, CircleMember.member_id == Message.sender_id,
        CircleMember.role.in_((Role.CUSTOMER, Role.FAMILY)),
    )
    base = (
        select(func.count()).select_from(Message).join(Circle, Circle.id == Message.circle_id)
        .where(visible_circles(session, role, member_id), Circle.kind == CircleKind.CORE,
               Message.direction == Direction.IN, customer_side,
               Message.created_at >= start, Message.created_at < end)
    )
    questions = session.scalar(base.where(answered | ticketed)) or 0
    contained = session.scalar(base.where(answered, ~ticketed)) or 0
    return questions, contained


def _promises(session: Session, role: UserRole, member_id: str | None, start: datetime,
              end: datetime) -> tuple[int, int]:
    """Promises that came due in the range: kept (the agent answered first) of all settled."""
    rows = session.execute(
        select(FollowUp.status, func.count())
        .join(Circle, Circle.id == FollowUp.circle_id)
        .where(visible_circles(session, role, member_id), FollowUp.kind == FollowUpKind.PROMISE,
               and_(FollowUp.due_at >= start, FollowUp.due_at < end),
               FollowUp.status.in_((FollowUpStatus.KEPT, *MISSED)))
        .group_by(FollowUp.status)
    ).all()
    counts = {FollowUpStatus(s): n for s, n in rows}
    return counts.get(FollowUpStatus.KEPT, 0), sum(counts.values())
