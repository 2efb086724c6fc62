"""Proactive care over the database: the book loaded in bulk for a plan, the daily run into the
follow-up outbox, opt-outs, and the agent's drafts.

The daily run (from the scan, escalation/jobs.py) plans the local day once it is past
`RUN_HOUR` and turns every item into a follow-up (kind MESSAGE) whose dedupe key is
`care:<kind>:<subject>:<date>`: two schedulers, a retried tick or a restart create each row
once, and the follow-up outbox sends it once (window and quota limits are the outbox's). A
`care_runs` row, written when the run finished, spares later ticks the planning.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from circles import care
from escalation import followups
from escalation.access import visible_circles
from storage import wakeups
from storage.db import transaction
from storage.enums import CircleKind, CircleStatus, FollowUpKind, FollowUpStatus, UserRole
from storage.errors import BadRequest, Conflict, Forbidden, NotFound
from storage.formats import moment
from storage.models import (
    CareDraft,
    CareOptOut,
    CareRun,
    Circle,
    Customer,
    FollowUp,
    Member,
    Policy,
)
from storage.pii import mask
from storage.scripts import Rendered, ScriptLibrary

log = logging.getLogger(__name__)

RUN_HOUR = 6  # local: the day's care is planned from 06:00 on, well before the send time
CHUNK = 500  # plan items written per transaction
CREATED_BY = "care"
MAX_DRAFT_CHARS = 1000
MAX_PAGE_DRAFTS = 200  # pending drafts one console page lists


# -- loading the book -------------------------------------------------------------------------
def families(
    session: Session, day: date, settings: care.CareSettings, *,
    circles: ColumnElement[bool] | None = None,
) -> Iterator[care.Family]:
    """Every family served in an active core circle (filtered by `circles`, a WHERE over
    Circle), with what the plan needs: a fixed handful of queries, whatever the book's size."""
    where = [Circle.kind == CircleKind.CORE, Circle.status == CircleStatus.ACTIVE,
             Circle.customer_id.is_not(None), circles if circles is not None else true()]
    seats = session.execute(
        select(Circle.id, Circle.chat_id, Circle.name, Circle.customer_id, Circle.agent_id,
               Circle.care_route).where(*where).order_by(Circle.id)).all()
    by_customer: dict[int, tuple[int, str, str, str | None, str | None]] = {}
    for cid, chat_id, name, customer_id, agent_id, route in seats:
        by_customer.setdefault(int(customer_id or 0), (cid, chat_id, name, agent_id, route))
    if not by_customer:
        return
    ids = select(Circle.customer_id).where(*where)
    agents = {a for _, _, _, a, _ in by_customer.values() if a}
    names = dict(session.execute(select(Member.id, Member.display_name)
                                 .where(Member.id.in_(agents))).all()) if agents else {}
    supports: dict[str, tuple[int, str]] = {}
    for sid, agent_id, chat_id in session.execute(
            select(Circle.id, Circle.agent_id, Circle.chat_id).where(
                Circle.kind == CircleKind.SUPPORT, Circle.status == CircleStatus.ACTIVE)
            .order_by(Circle.id)):
        if agent_id:
            supports.setdefault(agent_id, (sid, chat_id))
    holders = dict(session.execute(
        select(Member.customer_id, Member.id).where(Member.customer_id.in_(ids))
        .order_by(Member.id)).all())
    kin: dict[int, list[care.Person]] = defaultdict(list)
    for mid, name, relation, born, of in session.execute(
            select(Member.id, Member.display_name, Member.relation, Member.birth_date,
                   Member.family_of_id).where(Member.family_of_id.in_(ids)).order_by(Member.id)):
        kin[int(of or 0)].append(care.Person(mid, name, born, relation or "other"))
    policies: dict[int, list[care.PolicyFacts]] = defaultdict(list)
    for row in session.execute(
            select(Policy.holder_id, Policy.policy_no, Policy.product, Policy.status,
                   Policy.premium, Policy.next_due_date, Policy.effective_date,
                   Policy.insured_name, Policy.survival_benefit_date,
                   Policy.survival_benefit_amount, Policy.premium_frequency)
            .where(Policy.holder_id.in_(ids)).order_by(Policy.id)):
        policies[int(row[0])].append(care.PolicyFacts(
            policy_no=row[1], product=row[2], status=str(row[3]), premium=row[4],
            next_due_date=row[5], effective_date=row[6], insured_name=row[7],
            survival_benefit_date=row[8], survival_benefit_amount=row[9],
            single_premium=row[10] == "single"))
    opted: dict[int, set[str]] = defaultdict(set)
    for customer_id, category in session.execute(
            select(CareOptOut.customer_id, CareOptOut.category).where(
                CareOptOut.revoked_at.is_(None), CareOptOut.customer_id.in_(ids))):
        opted[int(customer_id)].add(category)
    week = sent_this_week(session, day, settings)
    for cust in session.execute(
            select(Customer.id, Customer.customer_no, Customer.name, Customer.honorific,
                   Customer.birth_date).where(Customer.id.in_(ids)).order_by(Customer.id)):
        cid, chat_id, name, agent_id, route = by_customer[cust.id]
        support = supports.get(agent_id or "")
        yield care.Family(
            customer_id=cust.id, customer_no=cust.customer_no or str(cust.id),
            honorific=cust.honorific,
            holder=care.Person(holders.get(cust.id), cust.name, cust.birth_date),
            family=tuple(kin.get(cust.id, ())), policies=tuple(policies.get(cust.id, ())),
            circle_id=cid, chat_id=chat_id, circle_name=name,
            agent_name=names.get(agent_id or "", ""),
            support_chat_id=support[1] if support else None,
            support_circle_id=support[0] if support else None,
            route=route or settings.default_route, opted_out=frozenset(opted.get(cust.id, ())),
            sent_this_week=week.get(cid, 0),
        )


def sent_this_week(session: Session, day: date, settings: care.CareSettings) -> dict[int, int]:
    """Care messages per family circle due this week (Monday on) before `day`: the cap's
    count. Skipped drafts do not count; the days' own rows never count, so a day's plan is the
    same however often it is made."""
    start = datetime.combine(care.week_start(day), datetime.min.time(), tzinfo=settings.zone)
    end = datetime.combine(day, datetime.min.time(), tzinfo=settings.zone)
    if start >= end:
        return {}
    rows = session.execute(
        select(FollowUp.circle_id, func.count()).where(
            FollowUp.dedupe_key.like("care:%"), FollowUp.due_at >= start, FollowUp.due_at < end,
            FollowUp.status != FollowUpStatus.CANCELLED)
        .group_by(FollowUp.circle_id)).all()
    return {int(c): int(n) for c, n in rows}


def plan_day(
    session: Session, scripts: ScriptLibrary, settings: care.CareSettings, day: date, *,
    bot_name: str, circles: ColumnElement[bool] | None = None,
    not_before: datetime | None = None,
) -> Iterator[care.PlanItem]:
    return care.plan(families(session, day, settings, circles=circles), day, scripts, settings,
                     bot_name=bot_name, not_before=not_before)


# -- the daily run ----------------------------------------------------------------------------
def due_day(now: datetime, settings: care.CareSettings) -> date | None:
    local = now.astimezone(settings.zone)
    return local.date() if local.hour >= RUN_HOUR else None


def next_time(now: datetime, settings: care.CareSettings) -> datetime:
    """The next run time after `now` (the scan wakes for it)."""
    local = now.astimezone(settings.zone)
    at = local.replace(hour=RUN_HOUR, minute=0, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at


@dataclass
class RunReport:
    day: date
    planned: int = 0
    created: int = 0


def run(
    sessions: sessionmaker[Session], scripts: ScriptLibrary, settings: care.CareSettings, *,
    now: datetime, bot_name: str,
) -> RunReport | None:
    """The day's care into the outbox, once; None when not due or already done."""
    day = due_day(now, settings)
    if day is None:
        return None
    with sessions() as s:
        if s.scalar(select(CareRun.id).where(CareRun.day == day)) is not None:
            return None
        items = list(plan_day(s, scripts, settings, day, bot_name=bot_name, not_before=now))
    report = RunReport(day, planned=len(items))
    for start in range(0, len(items), CHUNK):
        with transaction(sessions) as s:
            for item in items[start:start + CHUNK]:
                report.created += enqueue(s, scripts, settings, item, now=now)
    try:
        with transaction(sessions) as s, s.begin_nested():
            s.add(CareRun(day=day, planned=report.planned, created=report.created,
                          finished_at=now))
    except IntegrityError:
        pass  # another scheduler finished the same day first: the same rows, created once
    log.info("care for %s: %d planned, %d new follow-ups", day, report.planned, report.created)
    return report


def enqueue(
    session: Session, scripts: ScriptLibrary, settings: care.CareSettings, item: care.PlanItem,
    *, now: datetime,
) -> int:
    """One plan item into the outbox (direct) or to the agent first; 1 if this call created it."""
    if item.route != "agent_first":
        _, created = followups.create(
            session, circle_id=item.circle_id, ticket_id=None, recipient_id=item.recipient,
            kind=FollowUpKind.MESSAGE, text=item.text, due_at=item.send_at, now=now,
            created_by=CREATED_BY, dedupe_key=item.dedupe_key)
        return int(created)
    family = session.get(Circle, item.circle_id)
    support = session.get(Circle, _support_of(session, family.agent_id if family else None))
    auto = care.out_of_quiet(item.send_at + timedelta(minutes=settings.draft_timeout_minutes),
                             settings)
    row, created = followups.create(
        session, circle_id=item.circle_id, ticket_id=None, recipient_id=item.recipient,
        kind=FollowUpKind.MESSAGE, text=item.text, due_at=auto if support else item.send_at,
        now=now, created_by=CREATED_BY, dedupe_key=item.dedupe_key)
    if not created or support is None or family is None:
        return int(created)  # no support circle: nobody to ask, so it goes as planned
    draft = CareDraft(dedupe_key=f"draft:{item.dedupe_key}"[:160], circle_id=family.id,
                      followup_id=row.id, kind=item.kind, recipient_id=item.recipient,
                      text=item.text, status="pending", auto_send_at=auto, created_at=now)
    session.add(draft)
    session.flush()
    notice = scripts.render("care.draft", {
        "draft_id": draft.id, "circle_name": family.name, "text": item.text,
        "recipient_label": scripts.label("care_recipient",
                                         "private" if item.recipient else "group"),
        "auto_send_time": moment(auto)})
    followups.create(session, circle_id=support.id, ticket_id=None, recipient_id=None,
                     kind=FollowUpKind.MESSAGE, text=notice.text, due_at=item.send_at, now=now,
                     created_by=CREATED_BY, dedupe_key=f"care-draft:{draft.id}")
    return 1


def _support_of(session: Session, agent_id: str | None) -> int:
    if agent_id is None:
        return 0
    found = session.scalar(select(Circle.id).where(
        Circle.kind == CircleKind.SUPPORT, Circle.status == CircleStatus.ACTIVE,
        Circle.agent_id == agent_id).order_by(Circle.id).limit(1))
    return int(found or 0)


# -- the agent's drafts -----------------------------------------------------------------------
def drafts_of(
    session: Session, role: UserRole, member_id: str | None, *, status: str | None = None,
    limit: int = 100,
) -> list[tuple[CareDraft, Circle]]:
    """Drafts of the circles this login may see (the agent's own, a supervisor's team's, an
    admin all), newest first: what GET /api/v1/care/drafts and the console's care page list."""
    q = (select(CareDraft, Circle).join(Circle, Circle.id == CareDraft.circle_id)
         .where(visible_circles(session, role, member_id))
         .order_by(CareDraft.id.desc()).limit(limit))
    if status is not None:
        q = q.where(CareDraft.status == status)
    return [(d, c) for d, c in session.execute(q)]


def pending_count(session: Session, role: UserRole, member_id: str | None) -> int:
    """How many of those drafts still wait for a decision."""
    return int(session.scalar(
        select(func.count()).select_from(CareDraft).join(Circle, Circle.id == CareDraft.circle_id)
        .where(visible_circles(session, role, member_id), CareDraft.status == "pending")) or 0)


def decide_as(
    session: Session, scripts: ScriptLibrary, settings: care.CareSettings, draft_id: int,
    action: str, *, role: UserRole, member_id: str | None, actor: str, now: datetime,
    text: str | None = None,
) -> tuple[CareDraft, Circle]:
    """One login's decision on a draft: only the circle's agent (or an admin) decides."""
    draft = session.get(CareDraft, draft_id)
    if draft is None:
        raise NotFound(f"no care draft {draft_id}", code="CARE_DRAFT_NOT_FOUND")
    circle = session.get(Circle, draft.circle_id)
    if circle is None:  # pragma: no cover - the foreign key keeps it
        raise NotFound(f"no care draft {draft_id}", code="CARE_DRAFT_NOT_FOUND")
    if role != UserRole.ADMIN and (member_id is None or circle.agent_id != member_id):
        raise Forbidden("only the circle's agent decides its care drafts",
                        code="CARE_DRAFT_FORBIDDEN")
    decide(session, scripts, settings, draft, action, actor=actor, now=now, text=text)
    return draft, circle


def decide(
    session: Session, scripts: ScriptLibrary, settings: care.CareSettings, draft: CareDraft,
    action: str, *, actor: str, now: datetime, text: str | None = None,
) -> CareDraft:
    """approve (send now), edit (send these words now) or skip (never send); "now" waits for
    the end of quiet hours."""
    if draft.status != "pending":
        raise Conflict(f"draft {draft.id} was already {draft.status}", code="CARE_DRAFT_DECIDED")
    row = session.get(FollowUp, draft.followup_id)
    if row is None or row.status != FollowUpStatus.PENDING:
        raise Conflict(f"draft {draft.id} has already been sent", code="CARE_DRAFT_SENT")
    if action == "edit":
        words = (text or "").strip()
        if not words or len(words) > MAX_DRAFT_CHARS:
            raise BadRequest(f"text must be 1 to {MAX_DRAFT_CHARS} characters",
                             code="CARE_DRAFT_TEXT")
        banned = [p for p in scripts.forbidden if p.lower() in words.lower()]
        if banned:
            raise BadRequest(f"the text makes a promise an insurer may not make: {banned[0]}",
                             code="CARE_DRAFT_FORBIDDEN")
        row.text = draft.text = mask(words)
    if action == "skip":
        row.status = FollowUpStatus.CANCELLED
        draft.status = "skipped"
    else:
        row.due_at = care.out_of_quiet(now, settings)
        draft.status = "approved" if action == "approve" else "edited"
        wakeups.announce(session, row.due_at)
    draft.decided_by, draft.decided_at = actor, now
    return draft


# -- opt-out and opt-in ---------------------------------------------------------------------
def command_reply(
    session: Session, scripts: ScriptLibrary, circle: Circle, *, member_id: str | None,
    is_holder: bool, speaker_name: str, text: str, now: datetime,
) -> Rendered | None:
    """"别再提醒我交费了" / "生日就别发了" / "恢复提醒" from a member of a family circle:
    recorded and confirmed; None when the message is not such a request."""
    if circle.kind != CircleKind.CORE or circle.customer_id is None or member_id is None:
        return None
    command = care.read_command(text, scripts.labels.get("care_words") or {})
    if command is None:
        return None
    asked = command.categories or care.CATEGORIES
    if not is_holder:  # the holder's own reminders are theirs to switch
        private = [c for c in asked if c in care.PRIVATE_CATEGORIES]
        if command.categories and private:
            customer = session.get(Customer, circle.customer_id)
            return scripts.render("care.holder_only", {
                "speaker_name": speaker_name, "categories": _labels(scripts, private),
                "customer_name": customer.name if customer else ""})
        asked = tuple(c for c in asked if c not in care.PRIVATE_CATEGORIES)
    label = _labels(scripts, () if asked == care.CATEGORIES else asked)
    set_opt_out(session, circle.customer_id, asked, opt_in=command.opt_in, member_id=member_id,
                now=now)
    if not command.opt_in:
        cancel_pending(session, circle.id, asked, actor=member_id, now=now)
    if command.opt_in:
        return scripts.render("care.opt_in_done", {"categories": label})
    done = scripts.render("care.opt_out_done", {"categories": label})
    if "premium" in asked:
        note = scripts.render("care.opt_out_grace_note", {})
        return Rendered(done.text + note.text, done.script_id, done.version)
    return done


def cancel_pending(
    session: Session, circle_id: int, categories: Iterable[str], *, actor: str | None,
    now: datetime,
) -> int:
    """Today's messages of the categories just switched off, not yet sent, are not sent."""
    wanted = set(categories)
    kinds = [k for k, c in care.OPT_OUT_CATEGORY.items() if c in wanted]
    if not kinds:
        return 0
    rows = list(session.scalars(select(FollowUp).where(
        FollowUp.circle_id == circle_id, FollowUp.status == FollowUpStatus.PENDING,
        or_(*(FollowUp.dedupe_key.like(f"care:{k}:%") for k in kinds)))))
    for row in rows:
        row.status = FollowUpStatus.CANCELLED
    if rows:
        session.execute(
            update(CareDraft).where(CareDraft.followup_id.in_([r.id for r in rows]),
                                    CareDraft.status == "pending")
            .values(status="skipped", decided_by=actor, decided_at=now)
            .execution_options(synchronize_session=False))
    return len(rows)


def _labels(scripts: ScriptLibrary, categories: Iterable[str]) -> str:
    found = list(categories)
    if not found:
        return scripts.label("care_category", "all")
    return scripts.label("joiners", "and").join(scripts.label("care_category", c) for c in found)


def set_opt_out(
    session: Session, customer_id: int, categories: Iterable[str], *, opt_in: bool,
    member_id: str | None, now: datetime,
) -> None:
    """Opting out twice keeps one row; opting in revokes the live rows (kept for the record)."""
    wanted = list(categories)
    live = set(session.scalars(select(CareOptOut.category).where(
        CareOptOut.customer_id == customer_id, CareOptOut.revoked_at.is_(None),
        CareOptOut.category.in_(wanted))))
    if opt_in:
        session.execute(
            update(CareOptOut).where(CareOptOut.customer_id == customer_id,
                                     CareOptOut.revoked_at.is_(None),
                                     CareOptOut.category.in_(wanted))
            .values(revoked_at=now, revoked_by=member_id)
            .execution_options(synchronize_session=False))
        return
    session.add_all(CareOptOut(customer_id=customer_id, category=c, member_id=member_id,
                               created_at=now) for c in wanted if c not in live)
    session.flush()
