"""Consent the holder controls, by chat (circles/consent.py keeps the records).

The holder grants a family member a scope by answering the bot's private question ("授权"
after `privacy.holder_authorize_prompt`) or by saying so ("同意我爱人查看保单"); a grant said
in the group is confirmed with him privately before it takes effect. He revokes the same way
("取消授权"), anywhere: taking access away needs no confirmation. Nothing a family member
says grants or revokes anything; they are told kindly and the attempt is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.actions import Result
from bot.queries import CONSENT_ASKED, record_consent_asked
from bot.turn import Turn
from circles import consent, consent_words
from circles.consent_words import ConsentWords, Kind
from storage import formats as fmt
from storage.enums import ConsentScope, ConsentSource, Delivery, Direction
from storage.models import AuditEvent, Member, Message

OFFER_DAYS = 7  # the holder may answer the bot's consent question for a week
# The bot's consent questions: a bare "同意" answers one only if it was the last word to him.
PROMPTS = frozenset({"privacy.holder_authorize_prompt", "consent.confirm_ask"})
_SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Offer:
    member_id: str
    scopes: tuple[ConsentScope, ...]


def respond(turn: Turn) -> Result | None:
    """The consent this message speaks of, handled; None when it speaks of none (or is a
    family member's ordinary "好的")."""
    words = consent_words.read(turn.inbound.text)
    speaker = turn.speaker
    if words is None or speaker.member_id is None or turn.circle.customer_id is None:
        return None
    if words.kind in (Kind.GRANT, Kind.REVOKE) and not (
            words.bare or words.names_someone or _names_family(turn)
            or (words.kind == Kind.GRANT and words.scopes and speaker.is_holder
                and _open_offer(turn) is not None)):
        return None  # "取消自动扣款授权" is about something else: the ordinary flow takes it
    if not speaker.is_holder:
        if words.kind in (Kind.CONFIRM, Kind.DECLINE):
            return None
        _audit(turn, "consent_refused", None, {"said": words.kind.value})
        return Result([turn.say("consent.holder_only")])
    offer = _open_offer(turn)
    if words.kind in (Kind.CONFIRM, Kind.DECLINE):
        if offer is None or not turn.inbound.private or not _prompt_was_last_word(turn):
            return None
        if words.kind == Kind.DECLINE:
            _audit(turn, "consent_declined", offer.member_id, {"scopes": list(offer.scopes)})
            return Result([turn.say("consent.declined",
                                    member_name=turn.name_of(offer.member_id))])
    target = _target(turn, words, offer)
    if target is None:
        return Result([turn.say("consent.unclear")])
    if words.kind == Kind.REVOKE:
        return _revoke(turn, target, words.scopes)
    scopes = words.scopes or (offer.scopes if offer and offer.member_id == target.id
                              else (ConsentScope.POLICY,))
    return _grant(turn, target, scopes)


def _grant(turn: Turn, member: Member, scopes: tuple[ConsentScope, ...]) -> Result:
    holder = turn.speaker.member_id
    assert holder is not None
    assert turn.circle.customer_id is not None
    today = _today(turn)
    until = _one_year_after(today)
    names = {"member_name": turn.name_of(member.id), "scopes_zh": _scopes_zh(turn, scopes),
                 "until_date": fmt.day(until)}
    if not turn.inbound.private:
        # said in the group: it takes effect only once he confirms privately
        record_consent_asked(turn, holder=holder, member_id=member.id, scopes=list(scopes),
                             via="group")
        return Result([turn.say("consent.confirm_group"),
                       turn.say("consent.confirm_ask", to=holder, **names)])
    held = consent.scopes_of(turn.session, holder_id=turn.circle.customer_id,
                             member_id=member.id, today=today)
    if set(scopes) <= held:
        return Result([turn.say("consent.already", **names)])
    consent.grant(turn.session, holder_id=turn.circle.customer_id, member_id=member.id,
                  scopes=scopes, until=until, source=ConsentSource.CHAT, actor=holder,
                  now=turn.now)
    told = turn.say("consent.granted_member", to=member.id,
                    honorific=turn.address_of(member.id), **names)
    return Result([turn.say("consent.granted", **names), told])


def _revoke(turn: Turn, member: Member, named: tuple[ConsentScope, ...]) -> Result:
    """Every active consent for this member ends; with scopes named, only those end (the rest
    is recorded again, same end date)."""
    holder = turn.speaker.member_id
    assert holder is not None
    assert turn.circle.customer_id is not None
    rows = consent.active_consents(turn.session, holder_id=turn.circle.customer_id,
                                   member_id=member.id, today=_today(turn))
    ended: set[ConsentScope] = set()
    for row in rows:
        had = {ConsentScope(s) for s in row.scopes.split(",") if s}
        gone = had & set(named) if named else had
        if not gone:
            continue
        consent.revoke(turn.session, consent=row, actor=holder, now=turn.now)
        ended |= gone
        if had - gone:
            consent.grant(turn.session, holder_id=turn.circle.customer_id, member_id=member.id,
                          scopes=had - gone, until=row.until, source=ConsentSource.CHAT,
                          actor=holder, now=turn.now)
    name = turn.name_of(member.id)
    if not ended:
        return Result([turn.say("consent.nothing_to_revoke", member_name=name)])
    return Result([turn.say("consent.revoked", member_name=name,
                            scopes_zh=_scopes_zh(turn, tuple(sorted(ended))))])


def _target(turn: Turn, words: ConsentWords, offer: Offer | None) -> Member | None:
    """The family member meant: named, or by relation (one only), else the one the bot asked
    about, else (to revoke) the only one holding a consent."""
    family = list(turn.session.scalars(
        select(Member).where(Member.family_of_id == turn.circle.customer_id).order_by(Member.id)))
    text = consent_words.clean(turn.inbound.text)
    named = [m for m in family if len(m.display_name) >= 2 and m.display_name in text]
    if len(named) == 1:
        return named[0]
    related = [m for m in family if m.relation in words.relations]
    if words.relations:
        return related[0] if len(related) == 1 else None
    if offer is not None:
        return next((m for m in family if m.id == offer.member_id), None)
    if words.kind == Kind.REVOKE:
        assert turn.circle.customer_id is not None
        holding = {c.member_id for c in consent.active_consents(
            turn.session, holder_id=turn.circle.customer_id, today=_today(turn))}
        found = [m for m in family if m.id in holding]
        return found[0] if len(found) == 1 else None
    return None


def _names_family(turn: Turn) -> bool:
    text = consent_words.clean(turn.inbound.text)
    names = turn.session.scalars(
        select(Member.display_name).where(Member.family_of_id == turn.circle.customer_id))
    return any(len(n) >= 2 and n in text for n in names)


def _open_offer(turn: Turn) -> Offer | None:
    """The bot's latest question to this holder about a member's consent, within a week."""
    rows = turn.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.kind == CONSENT_ASKED, AuditEvent.circle_id == turn.circle.id,
               AuditEvent.created_at >= turn.now - timedelta(days=OFFER_DAYS))
        .order_by(AuditEvent.id.desc())
        .limit(20)
    )
    for row in rows:
        data = row.data or {}
        if data.get("holder") == turn.speaker.member_id and data.get("member_id"):
            scopes = tuple(ConsentScope(s) for s in data.get("scopes") or []
                           if s in set(ConsentScope))
            return Offer(str(data["member_id"]), scopes or (ConsentScope.POLICY,))
    return None


def _prompt_was_last_word(turn: Turn) -> bool:
    """Was the bot's latest private message to the holder here one of its consent questions?"""
    script = turn.session.scalar(
        select(Message.script_id)
        .where(Message.circle_id == turn.circle.id, Message.direction == Direction.OUT,
               Message.recipient_id == turn.speaker.member_id,
               Message.status != Delivery.CANCELLED)
        .order_by(Message.id.desc())
        .limit(1)
    )
    return script in PROMPTS


def _audit(turn: Turn, kind: str, member_id: str | None, data: dict[str, object]) -> None:
    turn.session.add(AuditEvent(
        kind=kind, actor_id=turn.speaker.member_id or turn.inbound.sender_id,
        circle_id=turn.circle.id, subject=f"member:{member_id}" if member_id else "consent",
        data={**data, "message_id": turn.row.id}, created_at=turn.now,
    ))


def _scopes_zh(turn: Turn, scopes: tuple[ConsentScope, ...] | list[ConsentScope]) -> str:
    return turn.label("joiners", "and").join(turn.label("consent_scope", s.value)
                                              for s in scopes)


def _today(turn: Turn) -> date:
    return turn.now.astimezone(_SHANGHAI).date()


def _one_year_after(day: date) -> date:
    """The default term of a grant made in chat (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)

