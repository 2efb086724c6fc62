"""Query: the holder's own policy data, sent privately; anyone else is refused kindly."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from bot.actions import Result
from bot.messages import Reply
from bot.turn import Turn
from circles import naming
from circles.membership import holder_member_id
from storage import formats as fmt
from storage.enums import ConsentScope, Role, TicketStatus
from storage.models import AuditEvent, Claim, FollowUp, Policy, Ticket

CONSENT_ASKED = "consent_asked"


def _policy_rows(turn: Turn) -> list[Policy]:
    return list(
        turn.session.scalars(
            select(Policy).where(Policy.holder_id == turn.circle.customer_id).order_by(Policy.id)
        )
    )


def _lines_policy_list(turn: Turn) -> list[dict[str, str]]:
    return [
        {
            "product": p.product,
            "policy_no": p.policy_no,
            "insured_name": p.insured_name,
            "sum_assured": fmt.money(p.sum_assured),
            "policy_status": turn.label("policy_status", p.status),
        }
        for p in _policy_rows(turn)
    ]


def _lines_premium_due(turn: Turn) -> list[dict[str, str]]:
    return [
        {
            "product": p.product,
            "policy_no": p.policy_no,
            "premium": fmt.money(p.premium),
            "premium_frequency": turn.label("premium_frequency", p.premium_frequency),
            "due_date": fmt.day(p.next_due_date),
        }
        for p in _policy_rows(turn)
        if p.next_due_date is not None
    ]


def _lines_cash_value(turn: Turn) -> list[dict[str, str]]:
    return [
        {
            "product": p.product,
            "policy_no": p.policy_no,
            "cash_value": fmt.money(p.cash_value),
            "cash_value_date": fmt.day(p.cash_value_date),
        }
        for p in _policy_rows(turn)
        if p.cash_value is not None
    ]


def _lines_claim_status(turn: Turn) -> list[dict[str, str]]:
    rows = turn.session.execute(
        select(Claim, Policy)
        .join(Policy, Policy.id == Claim.policy_id)
        .where(Policy.holder_id == turn.circle.customer_id)
        .order_by(Claim.submitted_at.desc())
    )
    return [
        {
            "claim_no": c.claim_no,
            "product": p.product,
            "claim_status": turn.label("claim_status", c.status),
            "updated_date": fmt.day(c.updated_at.date()),
        }
        for c, p in rows
    ]


def _lines_followups(turn: Turn) -> list[dict[str, str]]:
    tickets = turn.session.scalars(
        select(Ticket).where(
            Ticket.circle_id == turn.circle.id, Ticket.status != TicketStatus.RESOLVED
        )
    )
    lines = [
        {
            "matter": turn.scripts.intents[t.intent].zh
            if t.intent in turn.scripts.intents
            else t.reason,
            "progress": turn.label("ticket_status", t.status),
            "due_time": fmt.moment(t.resolve_due or t.first_response_due),
        }
        for t in tickets
    ]
    pending = turn.session.scalars(
        select(FollowUp).where(FollowUp.circle_id == turn.circle.id, FollowUp.status == "pending")
    )
    lines += [
        {"matter": f.text[:30], "progress": turn.label("ticket_status", "claimed"),
         "due_time": fmt.moment(f.due_at)}
        for f in pending
    ]
    return lines


QUERIES: dict[str, Callable[[Turn], list[dict[str, str]]]] = {
    "policy.list": _lines_policy_list,
    "premium.due": _lines_premium_due,
    "policy.cash_value": _lines_cash_value,
    "claim.status": _lines_claim_status,
    "followup.check": _lines_followups,
}


# What each query discloses, as the holder's consent names it (default: policy information).
QUERY_SCOPES: dict[str, ConsentScope] = {"claim.status": ConsentScope.CLAIM}


def scope_of(intent: str) -> ConsentScope:
    return QUERY_SCOPES.get(intent, ConsentScope.POLICY)


def query(turn: Turn) -> Result:
    intent, speaker = turn.parse.intent, turn.speaker
    if not speaker.may_see(scope_of(intent)) or speaker.member_id is None:
        return _refuse_disclosure(turn)
    lines = QUERIES[intent](turn)
    to = speaker.member_id
    if not lines:
        private = turn.say(f"{intent}.no_data", to=to)
    else:
        text = "\n".join(
            turn.scripts.render(f"{intent}.line", turn.variables(**v)).text for v in lines
        )
        private = turn.say(f"{intent}.private", to=to, lines=text, count=len(lines))
    if turn.inbound.private:
        return Result([private])
    return Result([turn.say(f"{intent}.group_note"), private])


def _refuse_disclosure(turn: Turn) -> Result:
    """Kind refusal that discloses nothing; the attempt is recorded and the holder asked."""
    turn.session.add(
        AuditEvent(
            kind="policy_data_refused",
            actor_id=turn.speaker.member_id or turn.inbound.sender_id,
            circle_id=turn.circle.id,
            subject=turn.parse.intent,
            data={"message_id": turn.row.id},
            created_at=turn.now,
        )
    )
    replies = [turn.say(f"{turn.parse.intent}.not_authorized")]
    holder = holder_member_id(turn.session, turn.circle)
    if holder and holder != turn.speaker.member_id:
        replies.append(holder_authorize_prompt(turn, holder))
        if turn.speaker.member_id is not None and turn.speaker.role == Role.FAMILY:
            # what the holder's "授权" answers (bot/consent_chat.py reads it back)
            record_consent_asked(turn, holder=holder, member_id=turn.speaker.member_id,
                                 scopes=[scope_of(turn.parse.intent)], via="refusal")
    return Result(replies)


def record_consent_asked(turn: Turn, *, holder: str, member_id: str,
                         scopes: list[ConsentScope], via: str) -> None:
    """The bot asked the holder privately whether to let `member_id` see `scopes`."""
    turn.session.add(AuditEvent(
        kind=CONSENT_ASKED, actor_id=turn.speaker.member_id or turn.inbound.sender_id,
        circle_id=turn.circle.id, subject=f"member:{member_id}",
        data={"holder": holder, "member_id": member_id, "scopes": [s.value for s in scopes],
              "via": via, "message_id": turn.row.id},
        created_at=turn.now,
    ))


def holder_authorize_prompt(turn: Turn, holder: str) -> Reply:
    """Privately to the holder: who asked (by their profile name) and where; nothing more."""
    asker = naming.profile_name(turn.session, turn.speaker.member_id)
    return turn.say(
        "privacy.holder_authorize_prompt", to=holder,
        honorific=turn.address_of(holder),
        speaker_name=asker or turn.label("defaults", "someone"),
        asked_where=turn.label("asked_where", "private" if turn.inbound.private else "group"),
    )
