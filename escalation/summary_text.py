"""Summary prose: the facts of escalation/summary_facts.py as plain Chinese sentences, each one
rendered from a template in scripts_zh/summaries.yaml, and the rules behind the suggestions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from escalation.summary_facts import (
    AskOutcome,
    Facts,
    PromiseFacts,
    PromiseState,
    TicketFacts,
)
from storage.formats import day as day_label
from storage.formats import moment
from storage.scripts import ScriptLibrary

LOW_RATING = 3  # a rating at or below this asks for a call back
MAX_SUGGESTIONS = 2
MAX_ITEMS = 6  # items listed in one sentence; the count says how many there are


@dataclass(frozen=True)
class Prose:
    head: str
    sentences: tuple[str, ...]
    suggestions: tuple[str, ...]  # the ids of the rules that fired, in the order said

    @property
    def text(self) -> str:
        return "\n".join((self.head, *self.sentences))


class _Say:
    """Renders templates and the small phrases sentences are built from."""

    def __init__(self, scripts: ScriptLibrary, names: Mapping[str, str]) -> None:
        self.scripts, self.names = scripts, names

    def __call__(self, script_id: str, **variables: Any) -> str:
        return self.scripts.render(script_id, variables).text

    def join(self, items: list[str], how: str = "items") -> str:
        return self.scripts.label("summary_joiners", how).join(items[:MAX_ITEMS])

    def name(self, member_id: str | None, default: str = "agent_name") -> str:
        if member_id and member_id in self.names:
            return self.names[member_id]
        return self.scripts.default(default)

    def intent(self, intent: str | None, reason: str = "") -> str:
        spec = self.scripts.intents.get(intent or "")
        if spec is not None:
            return spec.zh
        known = self.scripts.labels.get("ticket_reason") or {}
        return str(known.get(reason) or known["other"])

    def duration(self, minutes: float) -> str:
        if minutes >= 60:
            hours, rest = divmod(round(minutes), 60)
            if rest == 0:
                return self("summary.hours_only", hours=hours)
            return self("summary.hours", hours=hours, minutes=rest)
        shown = f"{minutes:g}" if minutes < 10 else str(round(minutes))
        return self("summary.minutes", minutes=shown)

    def response(self, t: TicketFacts) -> str:
        if t.first_response_minutes is None:
            return self("summary.response.none_late" if t.first_response_breached
                        else "summary.response.none")
        key = "summary.response.late" if t.first_response_breached else "summary.response.ok"
        return self(key, duration=self.duration(t.first_response_minutes))

    def resolution(self, t: TicketFacts) -> str:
        if t.resolution_minutes is None:
            return self("summary.resolution.none_late" if t.resolve_breached
                        else "summary.resolution.none")
        key = "summary.resolution.late" if t.resolve_breached else "summary.resolution.ok"
        return self(key, duration=self.duration(t.resolution_minutes))

    def promise(self, p: PromiseFacts) -> str:
        return self("summary.promise_item", agent_name=self.name(p.made_by), quote=p.quote,
                    due_time=moment(p.due_at),
                    state=self.scripts.label("promise_state", p.state))


# -- one circle, one day -----------------------------------------------------------------------
def day_prose(facts: Facts, scripts: ScriptLibrary, names: Mapping[str, str], day: date) -> Prose:
    say = _Say(scripts, names)
    head = say("summary.day.head", date_label=day_label(day), circle_name=facts.circle_name)
    if facts.quiet:
        return Prose(head, (say("summary.day.quiet"),), ())
    out: list[str] = []
    out += _asked(say, facts)
    opened = facts.tickets_opened()
    if opened:
        items = [say("summary.ticket_item", ticket_id=t.id,
                     intent_zh=say.intent(t.intent, t.reason), response=say.response(t),
                     resolution=say.resolution(t)) for t in opened]
        out.append(say("summary.day.handoffs", count=len(opened), items=say.join(items)))
    human = facts.asks_by(AskOutcome.HUMAN)
    if human:
        out.append(say("summary.human_answered", count=len(human)))
    silent = facts.asks_by(AskOutcome.UNANSWERED)
    if silent:
        out.append(say("summary.unanswered", count=len(silent), quote=silent[0].quote))
    if facts.promises:
        out.append(say("summary.promises", count=len(facts.promises),
                       items=say.join([say.promise(p) for p in facts.promises])))
    out.append(_mood(say, facts))
    rated = [t for t in facts.tickets if t.rated_at and facts.start <= t.rated_at < facts.end]
    if rated:
        out.append(say("summary.ratings", items=say.join(
            [say("summary.rating_item", ticket_id=t.id, rating=t.rating) for t in rated], "list")))
    out.append(_still_open(say, facts))
    rules = suggestions(facts, say)
    if rules:
        out.append(say("summary.suggestions", items=say.join([text for _, text in rules])))
    return Prose(head, tuple(out), tuple(rule for rule, _ in rules))


def _asked(say: _Say, facts: Facts) -> list[str]:
    if not facts.asks:
        return []
    groups: dict[tuple[str, str], list[str]] = {}
    for a in facts.asks:
        groups.setdefault((a.speaker_name, a.intent), []).append(a.quote)
    items = [
        say("summary.ask_once", speaker_name=who, intent_zh=say.intent(intent), quote=quotes[0])
        if len(quotes) == 1 else
        say("summary.ask_many", speaker_name=who, intent_zh=say.intent(intent),
            count=len(quotes), quote=quotes[0])
        for (who, intent), quotes in groups.items()
    ]
    out = [say("summary.day.asked", count=len(facts.asks), items=say.join(items))]
    settled = facts.asks_by(AskOutcome.SETTLED)
    if settled:
        labels = list(dict.fromkeys(say.intent(a.intent) for a in settled))
        out.append(say("summary.day.bot_settled", count=len(settled),
                       items=say.join(labels, "list")))
    else:
        out.append(say("summary.day.bot_settled_none"))
    for a in facts.asks_by(AskOutcome.DECLINED):
        if a.holder_asked:
            out.append(say("summary.declined_asked_holder", speaker_name=a.speaker_name,
                           intent_zh=say.intent(a.intent), holder_name=say.name(a.holder_asked)))
        else:
            out.append(say("summary.declined", speaker_name=a.speaker_name,
                           intent_zh=say.intent(a.intent)))
    return out


def _mood(say: _Say, facts: Facts) -> str:
    mood = facts.mood
    signals = [say("summary.signal.word", word=w) for w in mood.complaint_words]
    if mood.exclamation_messages:
        signals.append(say("summary.signal.exclamations", count=mood.exclamation_messages))
    if mood.most_unanswered >= 3:
        signals.append(say("summary.signal.unanswered", count=mood.most_unanswered))
    signals += [say("summary.signal.negative", word=w) for w in mood.negative_words]
    if mood.complaint_risk:
        return say("summary.mood.complaint", items=say.join(signals, "list") if signals
                   else say.intent("complaint"))
    if signals:
        return say("summary.mood.tense", items=say.join(signals, "list"))
    return say("summary.mood.positive" if mood.positive else "summary.mood.calm")


def _still_open(say: _Say, facts: Facts) -> str:
    items = [say("summary.open_ticket", ticket_id=t.id, intent_zh=say.intent(t.intent, t.reason))
             for t in facts.open_tickets()]
    items += [say("summary.open_promise", quote=p.quote, due_time=moment(p.due_at))
              for p in facts.promises if p.state in (PromiseState.OPEN, PromiseState.OVERDUE)]
    if not items:
        return say("summary.nothing_open")
    return say("summary.open", items=say.join(items, "list"))


def suggestions(facts: Facts, say: _Say) -> list[tuple[str, str]]:
    """The rules, most pressing first; at most MAX_SUGGESTIONS are said."""
    found: list[tuple[str, str]] = []
    overdue = facts.promises_in(PromiseState.OVERDUE)
    if overdue:
        found.append(("promise_overdue", say("suggest.promise_overdue", quote=overdue[0].quote,
                                             agent_name=say.name(overdue[0].made_by))))
    if facts.mood.complaint_risk:
        found.append(("complaint", say("suggest.complaint")))
    if facts.repeats:
        intent, times = facts.repeats[0]
        found.append(("repeat_ask", say("suggest.repeat_ask", count=times,
                                        intent_zh=say.intent(intent))))
    breached = [t for t in facts.tickets if t.breached
                and (t.open or facts.start <= t.created_at < facts.end)]
    if breached:
        found.append(("sla_breach", say("suggest.sla_breach", ticket_id=breached[0].id)))
    silent = facts.asks_by(AskOutcome.UNANSWERED)
    if silent:
        found.append(("unanswered", say("suggest.unanswered", count=len(silent))))
    low = [t for t in facts.tickets if t.rating is not None and t.rating <= LOW_RATING
           and t.rated_at and facts.start <= t.rated_at < facts.end]
    if low:
        found.append(("low_rating", say("suggest.low_rating", ticket_id=low[0].id,
                                        rating=low[0].rating)))
    return found[:MAX_SUGGESTIONS]


# -- one ticket --------------------------------------------------------------------------------
def ticket_prose(
    t: TicketFacts, promises: list[PromiseFacts], *, circle_name: str,
    scripts: ScriptLibrary, names: Mapping[str, str],
) -> Prose:
    say = _Say(scripts, names)
    head = say("summary.ticket.head", ticket_id=t.id, circle_name=circle_name,
               intent_zh=say.intent(t.intent, t.reason))
    out = [
        say("summary.ticket.asked", speaker_name=say.name(t.member_id, "honorific"),
            quote=t.quote),
        say("summary.ticket.handled", agent_name=say.name(t.assignee_id),
            response=say.response(t), resolution=say.resolution(t)),
    ]
    if promises:
        out.append(say("summary.promises", count=len(promises),
                       items=say.join([say.promise(p) for p in promises])))
    signals = [say("summary.signal.word", word=r.split(":", 1)[1])
               for r in t.risk if r.startswith("lexicon:")]
    signals += [say("summary.signal.unanswered", count=r.split(":", 1)[1])
                for r in t.risk if r.startswith("unanswered:")]
    if any(r.startswith("exclamations:") for r in t.risk):
        signals.append(say("summary.signal.exclamations", count=1))
    if signals:
        out.append(say("summary.ticket.risk", items=say.join(signals, "list")))
    out.append(say("summary.ticket.rated", rating=t.rating) if t.rating is not None
               else say("summary.ticket.unrated"))
    rules: list[tuple[str, str]] = []
    overdue = [p for p in promises if p.state == PromiseState.OVERDUE]
    if overdue:
        rules.append(("promise_overdue", say("suggest.promise_overdue", quote=overdue[0].quote,
                                             agent_name=say.name(overdue[0].made_by))))
    if t.breached:
        rules.append(("sla_breach", say("suggest.sla_breach", ticket_id=t.id)))
    if t.rating is not None and t.rating <= LOW_RATING:
        rules.append(("low_rating", say("suggest.low_rating", ticket_id=t.id, rating=t.rating)))
    rules = rules[:MAX_SUGGESTIONS]
    if rules:
        out.append(say("summary.suggestions", items=say.join([text for _, text in rules])))
    return Prose(head, tuple(out), tuple(rule for rule, _ in rules))
