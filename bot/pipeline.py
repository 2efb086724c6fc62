"""The pipeline: one inbound message, end to end, in the order of the flow in
docs/architecture.md.

Everything a message causes (its row, the replies, a ticket, notices to other circles) is
written in one transaction that commits before anyone is answered; the database's unique key
on (channel, channel message id) makes a retry answer from the first result.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from time import perf_counter
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot import actions, consent_chat, forms, handoff, queries
from bot.messages import InboundMessage, Outcome, Reply
from bot.metrics import Metrics
from bot.nlu.engine import OUT_OF_SCOPE, IntentEngine, Parse
from bot.settings import Settings
from bot.turn import Turn
from circles import care_store, speaking
from circles.membership import Speaker, find_circle, resolve_speaker
from escalation.notify import display_name, queue_notice
from escalation.risk import Risk
from escalation.tickets import handoff_notices, open_ticket
from storage import wakeups
from storage.db import transaction
from storage.enums import Delivery, Direction, Role
from storage.models import Circle, Member, Message, Ticket
from storage.pii import find_pii, mask
from storage.scripts import Action, ScriptLibrary
from storage.state import LocalLocks, LockNotAcquired, StateStore, StateUnavailable
from storage.text import strip_controls

log = logging.getLogger(__name__)
_SHANGHAI = ZoneInfo("Asia/Shanghai")  # consent ends at the end of its last day there

# Renewed while its holder lives, so a worker killed mid-message frees the member within 3 s,
# inside WeChat's 5 s retry window; a waiter gives up (and says so) after 3.5 s.
CONVERSATION_LOCK_TTL = 3.0
CONVERSATION_LOCK_WAIT = 3.5
DIALOG_BREAKOUT = 0.85  # a confident, different intent interrupts a pending form
PII_WARN_KINDS = ("id_card", "bank_card")
RESUMES_AFTER = frozenset({Action.ANSWER, Action.QUERY, Action.SILENT})  # then back to the form


class Pipeline:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        state: StateStore,
        scripts: ScriptLibrary,
        engine: IntentEngine,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions, self.state, self.scripts = sessions, state, scripts
        self.engine, self.settings, self.metrics, self.clock = engine, settings, metrics, clock
        self._process_locks = LocalLocks()  # orders a member within this worker if Redis is down
        self._recent = _RecentIds()

    def handle(self, msg: InboundMessage, *, deliver: Deliver | None = None) -> Outcome:
        """`deliver(reply)` says, just before commit, who delivers each reply: "returned" (the
        caller's own response carries it) or "queued" (the outbox sends it). Deciding inside the
        transaction leaves no moment where a committed reply belongs to nobody."""
        started = perf_counter()
        self.metrics.messages.labels(msg.channel, "in").inc()
        lock = "held"
        try:
            with self._conversation_lock(msg) as lock:
                outcome = self._replay_recent(msg) or self._handle_once(msg, deliver or _returned)
                self._recent.add(msg)
        except IntegrityError:
            # A concurrent delivery of the same message id committed first: answer from it.
            outcome = self._replay_by_id(msg)
        except _BotFailure as failure:
            outcome = self._hand_off_failure(msg, failure, deliver or _returned)
        if outcome.duplicate:
            self.metrics.duplicates.labels(msg.channel).inc()
        if lock != outcome.lock:
            outcome = replace(outcome, lock=lock)
        self.metrics.latency.labels(msg.channel).observe(perf_counter() - started)
        return outcome

    def _handle_once(self, msg: InboundMessage, deliver: Deliver) -> Outcome:
        # 4. understand: normalise, tokenise, classify, extract entities. Pure CPU, so done
        # first, outside the transaction: SQLite's write lock stays short, and the intent goes
        # into the INSERT instead of a later UPDATE. (1, dedupe, is the unique key: see 3.)
        try:
            parse = self.engine.parse(msg.text, msg.ts)
        except Exception as exc:  # any bug must become a handoff, never a lost message
            raise _BotFailure(exc) from exc
        with transaction(self.sessions) as s:
            # 2. circle and speaker: which circle, who is speaking, what they may see
            # 3. persist the inbound message, masked, before anything answers it; the unique
            # (channel, message id) key answers a retry (IntegrityError -> `_replay_by_id`)
            circle, speaker, row = _receive(s, msg, self.clock(), parse)
            try:
                turn = Turn(s, self.settings, self.scripts, self.state, msg, row, circle,
                            speaker, parse, self.clock())
                # 5. should the bot speak? 6. answer / query / dialog / escalate / silent
                decision, result = self._respond(turn)
                # 6a. a matter circle relays every member's words to the others
                result.notices.extend((circle, r) for r in handoff.relay(turn))
            except SQLAlchemyError:
                raise
            except Exception as exc:  # any bug must become a handoff, never a lost message
                raise _BotFailure(exc) from exc
            # 7. persist every reply and notice with the script that produced it; a private
            # message is answered privately, always to its sender
            replies = _answer_privately(msg, speaker, result.replies)
            if result.held_until is not None:
                for reply in replies:
                    _persist_outbound(s, row, circle, reply, self.clock(), status=Delivery.HELD,
                                      due=result.held_until)
                replies = ()  # nothing is said now
            _persist_replies(s, row, circle, replies, self.clock(), deliver=deliver)
            for other, notice in result.notices:
                _persist_outbound(s, row, other, notice, self.clock(), status="queued")
            if result.ticket is not None:
                self.metrics.tickets.labels(result.ticket.reason).inc()
            self._count(replies)
            return Outcome(
                message_id=row.id,
                replies=replies,
                intent=parse.intent,
                confidence=parse.confidence,
                ticket_id=result.ticket.id if result.ticket else None,
                spoke_because=decision.why.value,
                notices=tuple((c.chat_id, r) for c, r in result.notices),
            )

    def _respond(self, turn: Turn) -> tuple[speaking.Decision, actions.Result]:
        parse, spec = turn.parse, self.scripts.intents.get(turn.parse.intent)
        is_bot = turn.speaker.is_bot or turn.inbound.sender_id == self.settings.bot_member_id
        if turn.speaker.is_staff:
            # 5a. a human spoke: they hold the case now, and their promise goes on the ledger
            handoff.human_spoke(turn)
            _cancel_held_replies(turn.session, turn.circle)
        elif not is_bot:
            # 5b. the answer to "please rate us", then: while a human holds it, the bot keeps out
            thanks = handoff.take_rating(turn)
            if thanks is not None:
                return speaking.Decision(True, speaking.Why.PENDING), actions.Result([thanks])
            # 5c. consent the holder controls, said to the bot: decided by rules, not the model
            if turn.inbound.private or self._addressed(turn.inbound):
                said = consent_chat.respond(turn)
                if said is not None:
                    why = speaking.Why.PRIVATE if turn.inbound.private else speaking.Why.ADDRESSED
                    return speaking.Decision(True, why), said
            if handoff.held_by_human(turn) is not None:
                return speaking.Decision(False, speaking.Why.HUMAN_ACTIVE), actions.Result()
        if not is_bot and not turn.speaker.is_staff and (
                turn.inbound.private or self._addressed(turn.inbound)):
            # 5b2. "别再提醒我交费了" / "恢复提醒": proactive care's opt-out, kept and confirmed
            confirmed = care_store.command_reply(
                turn.session, self.scripts, turn.circle, member_id=turn.speaker.member_id,
                is_holder=turn.speaker.is_holder,
                speaker_name=turn.address_of(turn.speaker.member_id),
                text=turn.inbound.text, now=turn.now)
            if confirmed is not None:
                return speaking.Decision(True, speaking.Why.ADDRESSED), actions.Result(
                    [Reply(confirmed.text, None, confirmed.script_id, confirmed.version)])
        risk = handoff.complaint_risk(turn)
        pending = actions.pending(turn) if turn.speaker.member_id else None
        decision = speaking.decide(
            is_bot=is_bot,
            is_staff=turn.speaker.is_staff,
            private_chat=turn.inbound.private,
            addressed=self._addressed(turn.inbound),
            pending_question=pending is not None,
            urgent=bool(spec and spec.urgent and parse.confidence >= self._threshold)
            or risk.urgent,
        )
        if (decision.why == speaking.Why.PENDING and parse.intent == OUT_OF_SCOPE
                and pending is not None and pending.get("kind") != "dialog"):
            # The member moved on to family chatter: drop our question, stay quiet. (A form
            # judges its own answers: "上门吧" is out of scope to the engine, not to the form.)
            actions.forget(turn)
            return speaking.Decision(False, speaking.Why.NOT_ADDRESSED), actions.Result()
        if not decision.speak:
            if not self._answer_unless_a_human_does(turn, decision):
                return decision, actions.Result()
            # 5c. an unaddressed customer question: answer it after the grace window, unless
            # a human in the circle answers first (their message cancels the held reply)
            result = self._act(turn, pending, risk)
            result.held_until = turn.now + timedelta(seconds=self.settings.human_grace_seconds)
            return speaking.Decision(False, speaking.Why.GRACE), result
        result = self._act(turn, pending, risk)
        if not turn.inbound.private:
            result.replies.extend(self._pii_warning(turn))
        return decision, result

    def _act(self, turn: Turn, pending: dict[str, str] | None, risk: Risk) -> actions.Result:
        parse = turn.parse
        spec = self.scripts.intents.get(parse.intent)
        if risk.urgent and (spec is None or spec.action != Action.ESCALATE):
            # 源头介入: a threat or mounting anger goes to a human at once, whatever the intent
            actions.forget(turn)
            return actions.escalate(turn, reason="complaint_risk", holding="complaint.holding",
                                    risk=risk)
        if pending and pending.get("kind") == "dialog" and not self._leaves_form(turn, pending):
            return forms.continue_dialog(turn, pending)
        if spec is None or (parse.confidence < self._threshold and parse.intent != OUT_OF_SCOPE):
            return self._clarify_or_hand_off(turn, pending)
        # an off-form question is answered, then the form it interrupted goes on (its state
        # is kept); a new form goes first and the old one waits under it; a handoff ends it
        interrupted = forms.resumable(pending) if spec.action in RESUMES_AFTER else None
        if pending and spec.action == Action.DIALOG and forms.resumable(pending):
            return forms.dialog_over(turn, pending)
        if pending and interrupted is None:
            actions.forget(turn)
        result = self._perform(turn, spec.action, risk)
        if interrupted is not None:
            result.replies.append(forms.resume(turn, interrupted))
        return result

    @staticmethod
    def _perform(turn: Turn, action: Action, risk: Risk) -> actions.Result:
        match action:
            case Action.ANSWER:
                return actions.answer(turn)
            case Action.QUERY:
                return queries.query(turn)
            case Action.DIALOG:
                return forms.dialog(turn)
            case Action.ESCALATE:
                return actions.escalate(turn, risk=risk)
            case Action.SILENT:
                return actions.silent_but_addressed(turn)

    def _leaves_form(self, turn: Turn, pending: dict[str, str]) -> bool:
        """A confident, different request interrupts a form; 取消 / 算了 goes to the form."""
        spec = self.scripts.intents.get(turn.parse.intent)
        return (
            turn.parse.confidence >= DIALOG_BREAKOUT
            and spec is not None
            and spec.action != Action.SILENT
            and turn.parse.intent != pending["intent"]
            and not forms.cancels_form(turn)
            and not forms.answers_form(turn, pending)
        )

    def _answer_unless_a_human_does(self, turn: Turn, decision: speaking.Decision) -> bool:
        """Only routine questions from the customer side, understood with confidence."""
        spec = self.scripts.intents.get(turn.parse.intent)
        return (
            decision.why == speaking.Why.NOT_ADDRESSED
            and self.settings.human_grace_seconds > 0
            and turn.speaker.role in (Role.CUSTOMER, Role.FAMILY)
            and spec is not None
            and spec.action in (Action.ANSWER, Action.QUERY)
            and turn.parse.confidence >= self._threshold
        )

    def _clarify_or_hand_off(self, turn: Turn, pending: dict[str, str] | None) -> actions.Result:
        """A wrong answer is worse than a handoff: ask once, then bring in the agent."""
        if pending and pending.get("kind") == "clarify":
            actions.forget(turn)
            return actions.escalate(turn, reason="low_confidence", holding="fallback.handoff")
        options = [  # in the customer's words ("问保费可以怎么交"), never internal labels
            self.scripts.intents[name].customer_words
            for name, _ in turn.parse.ranking
            if name in self.scripts.intents and name != OUT_OF_SCOPE
        ][:2]
        actions.remember(turn, {"kind": "clarify"})
        return actions.Result(
            [turn.say("fallback.clarify", options=turn.label("joiners", "or").join(options))]
        )

    def _pii_warning(self, turn: Turn) -> list[Reply]:
        """The one place that advises withdrawing an ID or bank number posted in a group."""
        kinds = sorted({m.kind for m in find_pii(turn.inbound.text) if m.kind in PII_WARN_KINDS})
        if not kinds:
            return []
        labels = turn.label("joiners", "and").join(turn.label("pii_kind", k) for k in kinds)
        return [turn.say("privacy.pii_withdraw", to=turn.speaker.member_id, pii_kinds=labels)]

    @property
    def _threshold(self) -> float:
        return self.settings.confidence_threshold

    def _addressed(self, msg: InboundMessage) -> bool:
        names = {self.settings.bot_name, self.settings.bot_member_id}
        return bool(names & set(msg.mentions)) or f"@{self.settings.bot_name}" in msg.text

    @contextmanager
    def _conversation_lock(self, msg: InboundMessage) -> Iterator[str]:
        """One member's messages in one circle are handled in arrival order, across workers.

        Yields how: "held"; "process" when the state store is down (ordered within this
        worker only); "skipped" when the member's lock stayed busy past the wait. Anything but
        "held" is counted, logged and told to the caller (`Outcome.lock`), never silent."""
        key = f"conv:{msg.chat_id}:{msg.sender_id}"
        stack = ExitStack()
        try:
            stack.enter_context(self.state.lock(
                key, ttl=CONVERSATION_LOCK_TTL, wait=CONVERSATION_LOCK_WAIT, renew=True))
            how = "held"
        except StateUnavailable:
            try:
                stack.enter_context(self._process_locks.hold(
                    key, CONVERSATION_LOCK_TTL, CONVERSATION_LOCK_WAIT, renew=True))
                how = "process"
            except LockNotAcquired:
                how = "skipped"
        except LockNotAcquired:
            how = "skipped"
        if how != "held":
            self.metrics.lock_degraded.labels(how).inc()
            log.warning(
                "conversation lock %s: chat=%s msg=%s is handled %s", how, msg.chat_id,
                msg.msg_id, "in order within this worker only" if how == "process"
                else f"without ordering (busy for {CONVERSATION_LOCK_WAIT} s)",
            )
        with stack:
            yield how

    def _replay_recent(self, msg: InboundMessage) -> Outcome | None:
        """A retry of a message this worker committed lately (WeChat retries at 5 s and 10 s)
        is answered from the database without classifying it again or failing an INSERT."""
        if msg not in self._recent:
            return None
        with transaction(self.sessions) as s:
            prior = _find_inbound(s, msg)
            return None if prior is None else _replay(s, prior)

    def _replay_by_id(self, msg: InboundMessage) -> Outcome:
        with transaction(self.sessions) as s:
            prior = _find_inbound(s, msg)
            if prior is None:  # pragma: no cover - the unique key said it exists
                raise RuntimeError("duplicate reported but no first message found")
            return _replay(s, prior)

    def _hand_off_failure(
        self, msg: InboundMessage, failure: _BotFailure, deliver: Deliver
    ) -> Outcome:
        """The bot broke on this message: keep it, say we're on it, and open a ticket."""
        trace = uuid.uuid4().hex[:12]
        self.metrics.errors.inc()
        log.error("pipeline failed trace=%s chat=%s", trace, msg.chat_id, exc_info=failure.cause)
        with transaction(self.sessions) as s:
            prior = _find_inbound(s, msg)
            if prior is not None:
                return _replay(s, prior)
            now = self.clock()
            circle, speaker, row = _receive(s, msg, now)
            ticket = open_ticket(
                session=s, circle=circle, member_id=speaker.member_id,
                source_message_id=row.id, intent=None, reason="bot_error",
                summary=row.text[:200], now=now, context={"trace": trace},
                policy=self.settings.escalation_policy(), scripts=self.scripts,
            )
            for notice in handoff_notices(s, self.scripts, ticket, circle):
                queue_notice(s, notice, now=now)
            rendered = self.scripts.render(
                "error.holding",
                {"agent_name": display_name(s, circle.agent_id, self.scripts.default("agent_name")),
                 "bot_name": self.settings.bot_name},
            )
            replies = _answer_privately(
                msg, speaker, [Reply(rendered.text, None, rendered.script_id, rendered.version)])
            _persist_replies(s, row, circle, replies, now, deliver=deliver)
            self.metrics.tickets.labels("bot_error").inc()
            return Outcome(row.id, replies, None, None, ticket.id, spoke_because="error")

    def _count(self, replies: tuple[Reply, ...]) -> None:
        for r in replies:
            self.metrics.replies.labels("private" if r.to else "group").inc()


Deliver = Callable[[Reply], str]


def _returned(_: Reply) -> str:
    return "returned"


class _RecentIds:
    """The (channel, message id) of the last few thousand messages this worker committed."""

    def __init__(self, size: int = 4096) -> None:
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._size, self._mutex = size, threading.Lock()

    def add(self, msg: InboundMessage) -> None:
        with self._mutex:
            self._ids[(msg.channel, msg.msg_id)] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)

    def __contains__(self, msg: object) -> bool:
        assert isinstance(msg, InboundMessage)
        with self._mutex:
            return (msg.channel, msg.msg_id) in self._ids


class _BotFailure(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _find_inbound(s: Session, msg: InboundMessage) -> Message | None:
    return s.scalar(
        select(Message).where(
            Message.channel == msg.channel,
            Message.channel_msg_id == msg.msg_id,
            Message.direction == Direction.IN,
        )
    )


def _replay(s: Session, prior: Message) -> Outcome:
    """The first answer again, as the caller delivered it: only replies the first response
    carried (`returned`). Held replies (the grace window) and whatever the outbox owns are
    delivered by the outbox once, so a retry must not carry them too."""
    rows = s.scalars(
        select(Message)
        .where(Message.reply_to_id == prior.id, Message.circle_id == prior.circle_id,
               Message.status == Delivery.RETURNED)
        .order_by(Message.id)
    )
    ticket_id = s.scalar(select(Ticket.id).where(Ticket.source_message_id == prior.id).limit(1))
    replies = tuple(Reply(r.text, r.recipient_id, r.script_id, r.script_version) for r in rows)
    return Outcome(prior.id, replies, prior.intent, prior.confidence, ticket_id, duplicate=True)


def _answer_privately(
    msg: InboundMessage, speaker: Speaker, replies: Iterable[Reply]
) -> tuple[Reply, ...]:
    """A message sent privately is answered privately: whatever would have gone to the whole
    group goes to its sender instead. Replies already addressed to someone (the holder's
    authorization prompt) keep their recipient."""
    if not msg.private:
        return tuple(replies)
    to = speaker.member_id or msg.sender_id
    return tuple(r if r.to is not None else replace(r, to=to) for r in replies)


def _receive(
    s: Session, msg: InboundMessage, now: datetime, parse: Parse | None = None
) -> tuple[Circle, Speaker, Message]:
    circle = find_circle(s, msg.chat_id)
    speaker = resolve_speaker(s, circle, msg.sender_id, msg.sender_name,
                              today=now.astimezone(_SHANGHAI).date())
    return circle, speaker, _persist_inbound(s, msg, circle, speaker, now, parse=parse)


def _persist_inbound(
    s: Session, msg: InboundMessage, circle: Circle, speaker: Speaker, now: datetime,
    *, parse: Parse | None = None,
) -> Message:
    row = Message(
        intent=parse.intent if parse else None,
        confidence=round(parse.confidence, 4) if parse else None,
        circle_id=circle.id,
        direction=Direction.IN,
        channel=msg.channel,
        channel_msg_id=msg.msg_id,
        sender_id=speaker.member_id,
        sender_name=_storable(msg.sender_name)[:64],
        text=_storable(msg.text),
        status="received",
        created_at=now,
    )
    s.add(row)
    s.flush()  # the unique (channel, channel_msg_id) key speaks here
    return row


def _persist_replies(
    s: Session,
    row: Message,
    circle: Circle,
    replies: tuple[Reply, ...],
    now: datetime,
    *,
    deliver: Deliver,
) -> None:
    for reply in replies:
        _persist_outbound(s, row, circle, reply, now, status=deliver(reply))


def _cancel_held_replies(s: Session, circle: Circle) -> None:
    """A human spoke in the circle: the bot's held answers there are no longer wanted."""
    s.execute(
        update(Message)
        .where(Message.circle_id == circle.id, Message.status == Delivery.HELD)
        .values(status=Delivery.CANCELLED)
    )


def _persist_outbound(
    s: Session,
    row: Message,
    circle: Circle,
    reply: Reply,
    now: datetime,
    *,
    status: str,
    due: datetime | None = None,
) -> None:
    if reply.to is not None and s.get(Member, reply.to) is None:
        # A private answer to a sender we hold no member for (a stranger writing privately):
        # only the caller's own response carries it. It is not stored, since a row without
        # its recipient would read as said to the group (a retry then gets no replies).
        log.info("private reply to non-member sender not stored (script %s)", reply.script_id)
        return
    s.add(
        Message(
            circle_id=circle.id,
            direction=Direction.OUT,
            channel=circle.channel if circle.id != row.circle_id else row.channel,
            sender_id=None,
            sender_name="bot",
            recipient_id=reply.to,
            reply_to_id=row.id,
            text=_storable(reply.text),
            script_id=reply.script_id,
            script_version=reply.script_version,
            status=status,
            next_attempt_at=due,
            created_at=now,
        )
    )
    if status in (Delivery.QUEUED, Delivery.HELD):
        wakeups.announce(s, due or now)  # the dispatcher wakes for it after the commit


def _storable(text: str) -> str:
    """What may be written: masked, without control characters."""
    return mask(strip_controls(text))
