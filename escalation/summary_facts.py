"""What happened in one circle over a span of time, read from the stored transcript: the facts
every summary sentence is made of (questions, who settled them, tickets, promises, mood).

Nothing here is worded for people; escalation/summary_text.py turns these facts into Chinese.
Texts are stored masked already and are masked again before they leave this module.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalation.risk import LEXICON, UNANSWERED, assess
from storage.enums import Delivery, Direction, FollowUpKind, FollowUpStatus, Role, TicketStatus
from storage.errors import BadRequest
from storage.formats import SHANGHAI
from storage.models import Circle, CircleMember, FollowUp, Member, Message, Ticket
from storage.pii import mask

QUOTE_CHARS = 30
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # days a summary may be asked for
# Intents that are not a question to settle: greetings, thanks, family chatter.
NOT_ASKS = frozenset({"out_of_scope", "chitchat.greet", "chitchat.thanks"})
CUSTOMER_SIDE = (Role.CUSTOMER, Role.FAMILY)
STAFF = (Role.AGENT, Role.SUPERVISOR, Role.SPECIALIST)
REPEAT_WINDOW = timedelta(days=2)
REPEAT_ASKS = 3  # the same question this often within REPEAT_WINDOW: tell them before they ask
# Mood words (detection data, not said to anyone): thanks, and worry or displeasure.
POSITIVE_WORDS = ("谢谢", "感谢", "辛苦了", "满意", "太好了", "点赞")
NEGATIVE_WORDS = ("着急", "急死", "失望", "不满", "生气", "太慢", "怎么还没", "还没好", "到底",
                  "敷衍", "没人管", "没人理")  # fmt: skip
HOLDER_PROMPT = "privacy.holder_authorize_prompt"
_MENTION_RE = re.compile(r"^(?:@\S+\s+)+")  # leading "@小助手 ": an address, not the words
_SCRIPT_NOT_AN_ANSWER = ("fallback.", "error.", "rating.", "privacy.pii_withdraw", "form.")


class AskOutcome(StrEnum):
    SETTLED = "settled"  # the bot answered it from a script
    DECLINED = "declined"  # policy data asked by a member the holder has not authorized
    ESCALATED = "escalated"  # it opened a ticket
    CLARIFIED = "clarified"  # the bot asked what was meant, and no more
    HUMAN = "human"  # no bot answer, but a staff member spoke in the circle afterwards
    UNANSWERED = "unanswered"  # nobody answered within the span


class PromiseState(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    OVERDUE = "overdue"
    OPEN = "open"


@dataclass(frozen=True)
class Ask:
    message_id: int
    at: datetime
    speaker_id: str
    speaker_name: str
    intent: str
    quote: str
    outcome: AskOutcome
    holder_asked: str | None = None  # declined: the holder the bot privately asked to authorize


@dataclass(frozen=True)
class TicketFacts:
    id: int
    intent: str | None
    reason: str
    member_id: str | None
    assignee_id: str | None
    quote: str
    created_at: datetime
    status: str
    first_response_minutes: float | None
    first_response_breached: bool
    resolution_minutes: float | None
    resolve_breached: bool
    rating: int | None
    rated_at: datetime | None
    risk: tuple[str, ...]
    resolved_at: datetime | None

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    @property
    def breached(self) -> bool:
        return self.first_response_breached or self.resolve_breached


@dataclass(frozen=True)
class PromiseFacts:
    id: int
    ticket_id: int | None
    made_by: str | None
    quote: str
    created_at: datetime
    due_at: datetime
    state: PromiseState
    kept_at: datetime | None


@dataclass(frozen=True)
class Mood:
    complaint_words: tuple[str, ...] = ()  # risk lexicon words the customer side used
    exclamation_messages: int = 0
    most_unanswered: int = 0  # the longest run of customer messages nobody answered
    negative_words: tuple[str, ...] = ()
    positive: bool = False
    complaint_tickets: int = 0

    @property
    def complaint_risk(self) -> bool:
        return bool(self.complaint_words) or self.complaint_tickets > 0

    @property
    def tense(self) -> bool:
        return (self.complaint_risk or self.exclamation_messages > 0
                or self.most_unanswered >= UNANSWERED or bool(self.negative_words))


@dataclass(frozen=True)
class Facts:
    circle_id: int
    chat_id: str
    circle_name: str
    agent_id: str | None
    start: datetime
    end: datetime  # the span is [start, end); `end` is "now" for a day still running
    asks: tuple[Ask, ...] = ()
    tickets: tuple[TicketFacts, ...] = ()  # opened in the span, or still open at its end
    promises: tuple[PromiseFacts, ...] = ()  # made in the span, due in it, or still open
    mood: Mood = field(default_factory=Mood)
    repeats: tuple[tuple[str, int], ...] = ()  # (intent, times asked within REPEAT_WINDOW)

    def tickets_opened(self) -> list[TicketFacts]:
        return [t for t in self.tickets if self.start <= t.created_at < self.end]

    def open_tickets(self) -> list[TicketFacts]:
        return [t for t in self.tickets if t.open]

    def asks_by(self, outcome: AskOutcome) -> list[Ask]:
        return [a for a in self.asks if a.outcome == outcome]

    def promises_in(self, state: PromiseState) -> list[PromiseFacts]:
        return [p for p in self.promises if p.state == state]

    @property
    def quiet(self) -> bool:
        return not (self.asks or self.tickets or self.promises or self.mood.tense)


def is_complaint(t: TicketFacts) -> bool:
    """A complaint alert: opened for complaint risk, as a complaint, or with a threat word."""
    return (t.reason == "complaint_risk" or t.intent == "complaint"
            or any(r.startswith("lexicon:") for r in t.risk))


def day_span(day: date) -> tuple[datetime, datetime]:
    """The Asia/Shanghai day as a [start, end) pair of aware datetimes."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequest(f"{day.isoformat()} is out of range ({FIRST_DAY} to {LAST_DAY})",
                         code="DATE_OUT_OF_RANGE")
    start = datetime.combine(day, time(0), tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def local_day(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """A short masked quote without the @mention; cut with an ellipsis."""
    masked = mask(text)
    cleaned = " ".join((_MENTION_RE.sub("", masked) or masked).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def minutes_between(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds() / 60, 1)


# -- gathering ---------------------------------------------------------------------------------
def gather(session: Session, circle: Circle, start: datetime, end: datetime) -> Facts:
    """Everything a summary of `circle` over [start, end) may say, and nothing more."""
    roles = dict(session.execute(
        select(CircleMember.member_id, CircleMember.role)
        .where(CircleMember.circle_id == circle.id)
    ).all())
    names = dict(session.execute(
        select(Member.id, Member.display_name).where(Member.id.in_(list(roles)))
    ).all())
    inbound = list(session.scalars(
        select(Message).where(
            Message.circle_id == circle.id, Message.direction == Direction.IN,
            Message.created_at >= start, Message.created_at < end,
        ).order_by(Message.created_at, Message.id)
    ))
    staff_times = [m.created_at for m in inbound if roles.get(m.sender_id or "") in STAFF]
    customer_msgs = [m for m in inbound if roles.get(m.sender_id or "") in CUSTOMER_SIDE]
    asks = _asks(session, customer_msgs, staff_times, names)
    tickets = _tickets(session, circle, start, end)
    promises = _promises(session, circle, start, end, tickets=tickets)
    mood = _mood(session, circle, customer_msgs, tickets=tickets, start=start, end=end)
    repeats = _repeats(session, circle, roles, end)
    return Facts(circle.id, circle.chat_id, circle.name, circle.agent_id, start, end,
                 tuple(asks), tuple(tickets), tuple(promises), mood, tuple(repeats))


def _asks(
    session: Session, msgs: list[Message], staff_times: list[datetime], names: dict[str, str]
) -> list[Ask]:
    if not msgs:
        return []
    ids = [m.id for m in msgs]
    replies: dict[int, list[str]] = defaultdict(list)
    holder_asked: dict[int, str] = {}
    for reply_to, script_id, recipient in session.execute(
        select(Message.reply_to_id, Message.script_id, Message.recipient_id).where(
            Message.reply_to_id.in_(ids), Message.direction == Direction.OUT,
            Message.status != Delivery.CANCELLED,
        )
    ):
        if reply_to is not None:
            replies[reply_to].append(script_id or "")
            if script_id == HOLDER_PROMPT and recipient:
                holder_asked[reply_to] = recipient
    ticketed = set(session.scalars(select(Ticket.source_message_id)
                                   .where(Ticket.source_message_id.in_(ids))))
    asks: list[Ask] = []
    for m in msgs:
        scripts = replies.get(m.id, [])
        if any(s.startswith("rating.") for s in scripts) or _continues_a_form(scripts):
            continue  # a rating or the answer to a form's question, not a new question
        intent = m.intent or "out_of_scope"
        if intent in NOT_ASKS and m.id not in ticketed:
            continue
        if m.id in ticketed:
            outcome = AskOutcome.ESCALATED
        elif any(s.endswith(".not_authorized") for s in scripts):
            outcome = AskOutcome.DECLINED
        elif any(_answers(s) for s in scripts):
            outcome = AskOutcome.SETTLED
        elif scripts:
            outcome = AskOutcome.CLARIFIED
        elif any(t > m.created_at for t in staff_times):
            outcome = AskOutcome.HUMAN
        else:
            outcome = AskOutcome.UNANSWERED
        speaker = m.sender_id or ""
        asks.append(Ask(m.id, m.created_at, speaker, names.get(speaker, m.sender_name or ""),
                        intent, quote(m.text), outcome, holder_asked.get(m.id)))
    return asks


def _answers(script_id: str) -> bool:
    return bool(script_id) and not script_id.startswith(_SCRIPT_NOT_AN_ANSWER) \
        and not script_id.endswith(".holding")


def _continues_a_form(scripts: list[str]) -> bool:
    """Every reply is a form's next question or its closing: the message answered the form."""
    keys = [s.rpartition(".")[2] for s in scripts]
    return bool(keys) and all(k.startswith("ask_") or k in ("done", "cancelled") for k in keys)


def _tickets(session: Session, circle: Circle, start: datetime, end: datetime) -> list[TicketFacts]:
    rows = session.scalars(
        select(Ticket).where(
            Ticket.circle_id == circle.id, Ticket.created_at < end,
            (Ticket.created_at >= start) | Ticket.resolved_at.is_(None)
            | (Ticket.resolved_at >= start) | (Ticket.rated_at >= start),
        ).order_by(Ticket.id)
    )
    return [ticket_facts(t, end) for t in rows]


def ticket_facts(t: Ticket, as_of: datetime) -> TicketFacts:
    """One ticket as of a moment: what was known then (a resolution after it is not yet)."""
    first = t.first_response_at if t.first_response_at and t.first_response_at < as_of else None
    done = t.resolved_at if t.resolved_at and t.resolved_at < as_of else None
    rated = t.rating if t.rated_at and t.rated_at < as_of else None
    return TicketFacts(
        id=t.id, intent=t.intent, reason=t.reason, member_id=t.member_id,
        assignee_id=t.assignee_id, quote=quote(t.summary), created_at=t.created_at,
        status=(TicketStatus.RESOLVED if done else t.status).value,
        first_response_minutes=minutes_between(t.created_at, first),
        first_response_breached=bool(
            t.first_response_due and (first or done or as_of) > t.first_response_due
        ),
        resolution_minutes=minutes_between(t.created_at, done),
        resolve_breached=bool(t.resolve_due and (done or as_of) > t.resolve_due),
        rating=rated, rated_at=t.rated_at if rated else None,
        risk=tuple(str(r) for r in (t.context or {}).get("risk", [])), resolved_at=done,
    )


def _promises(
    session: Session, circle: Circle, start: datetime, end: datetime, *,
    tickets: list[TicketFacts],
) -> list[PromiseFacts]:
    rows = list(session.scalars(
        select(FollowUp).where(
            FollowUp.circle_id == circle.id, FollowUp.kind == FollowUpKind.PROMISE,
            FollowUp.status != FollowUpStatus.CANCELLED, FollowUp.created_at < end,
        ).order_by(FollowUp.due_at, FollowUp.id)
    ))
    if not rows:
        return []
    # A promise is kept by the next word of a human in the circle, or by resolving its ticket.
    later_staff = sorted(session.scalars(
        select(Message.created_at).where(
            Message.circle_id == circle.id, Message.direction == Direction.IN,
            Message.sender_id.in_(select(CircleMember.member_id).where(
                CircleMember.circle_id == circle.id, CircleMember.role.in_(STAFF))),
            Message.created_at < end,
        )
    ))
    resolved = {t.id: t.resolved_at for t in tickets}
    wanted = {f.ticket_id for f in rows if f.ticket_id is not None} - set(resolved)
    if wanted:  # a promise's ticket resolved before the span began
        resolved |= {tid: at if at is not None and at < end else None
                     for tid, at in session.execute(
                         select(Ticket.id, Ticket.resolved_at).where(Ticket.id.in_(wanted)))}
    out: list[PromiseFacts] = []
    for f in rows:
        kept_at = _kept_at(f, later_staff, resolved)
        state = _state(f, kept_at, end)
        relevant = (start <= f.created_at or start <= f.due_at < end
                    or (kept_at is not None and start <= kept_at < end)
                    or state in (PromiseState.OPEN, PromiseState.OVERDUE))
        if relevant:
            out.append(PromiseFacts(f.id, f.ticket_id, f.created_by, quote(f.text, 30),
                                    f.created_at, f.due_at, state, kept_at))
    return out


def _kept_at(
    f: FollowUp, staff_times: list[datetime], resolved: dict[int, datetime | None]
) -> datetime | None:
    spoke = next((t for t in staff_times if t > f.created_at), None)
    done = resolved.get(f.ticket_id) if f.ticket_id is not None else None
    candidates = [t for t in (spoke, done) if t is not None]
    return min(candidates) if candidates else None


def _state(f: FollowUp, kept_at: datetime | None, as_of: datetime) -> PromiseState:
    if kept_at is not None and kept_at <= f.due_at:
        return PromiseState.ON_TIME
    if kept_at is not None:
        return PromiseState.LATE
    return PromiseState.OVERDUE if f.due_at <= as_of else PromiseState.OPEN


def _mood(
    session: Session, circle: Circle, msgs: list[Message], *, tickets: list[TicketFacts],
    start: datetime, end: datetime,
) -> Mood:
    words: list[str] = []
    negative: list[str] = []
    bangs = 0
    positive = False
    run = longest = 0
    answered = _answer_times(session, circle, start, end)
    last = start
    for m in msgs:
        risk = assess(m.text)
        words += [r.split(":", 1)[1] for r in risk.reasons if r.startswith("lexicon:")]
        bangs += any(r.startswith("exclamations:") for r in risk.reasons)
        negative += [w for w in NEGATIVE_WORDS if w in m.text]
        positive = positive or any(w in m.text for w in POSITIVE_WORDS)
        run = 1 if any(last < t <= m.created_at for t in answered) else run + 1
        longest, last = max(longest, run), m.created_at
    complaint = sum(1 for t in tickets if start <= t.created_at < end and is_complaint(t))
    return Mood(tuple(dict.fromkeys(w for w in words if w in LEXICON)), bangs, longest,
                tuple(dict.fromkeys(negative)), positive, complaint)


def _answer_times(
    session: Session, circle: Circle, start: datetime, end: datetime
) -> list[datetime]:
    """When the bot or a human said something in the circle (to the group or anyone)."""
    staff = select(CircleMember.member_id).where(CircleMember.circle_id == circle.id,
                                                 CircleMember.role.in_(STAFF))
    return list(session.scalars(
        select(Message.created_at).where(
            Message.circle_id == circle.id, Message.created_at >= start,
            Message.created_at < end,
            ((Message.direction == Direction.OUT) & (Message.status != Delivery.CANCELLED))
            | ((Message.direction == Direction.IN) & Message.sender_id.in_(staff)),
        ).order_by(Message.created_at)
    ))


def _repeats(
    session: Session, circle: Circle, roles: dict[str, Role], end: datetime
) -> list[tuple[str, int]]:
    """Questions the customer side asked REPEAT_ASKS times or more in the two days to `end`."""
    customers = [mid for mid, role in roles.items() if role in CUSTOMER_SIDE]
    counts: dict[str, int] = defaultdict(int)
    for intent in session.scalars(
        select(Message.intent).where(
            Message.circle_id == circle.id, Message.direction == Direction.IN,
            Message.sender_id.in_(customers), Message.created_at >= end - REPEAT_WINDOW,
            Message.created_at < end, Message.intent.is_not(None),
        )
    ):
        if intent and intent not in NOT_ASKS:
            counts[intent] += 1
    return sorted(((i, n) for i, n in counts.items() if n >= REPEAT_ASKS),
                  key=lambda x: (-x[1], x[0]))
