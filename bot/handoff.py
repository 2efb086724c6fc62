"""The pipeline's handoff steps: humans taking over, the bot keeping out, ratings, relays."""

from __future__ import annotations

from bot import promises
from bot.messages import Reply
from bot.turn import Turn
from circles import matter
from escalation import handoff, ratings
from escalation.risk import Risk, assess, unanswered_count
from storage.models import Ticket


def human_spoke(turn: Turn) -> None:
    """Any agent message in a circle marks the human active; their promise is recorded."""
    member_id = turn.speaker.member_id
    if member_id is None:
        return
    handoff.human_spoke(turn.session, circle_id=turn.circle.id, staff_id=member_id,
                        now=turn.now, message_id=turn.row.id)
    promises.propose(turn)


def held_by_human(turn: Turn) -> Ticket | None:
    return handoff.held_by_human(
        turn.session, circle_id=turn.circle.id, member_id=turn.speaker.member_id, now=turn.now,
        silence_minutes=turn.settings.human_silence_minutes,
    )


def take_rating(turn: Turn) -> Reply | None:
    """A bare 1-5 from a member whose ticket just asked for it is their rating."""
    value = ratings.parse_rating(turn.inbound.text)
    if value is None or turn.speaker.member_id is None:
        return None
    ticket = ratings.awaiting(
        turn.session, circle_id=turn.circle.id, member_id=turn.speaker.member_id, now=turn.now,
        window_hours=turn.settings.escalation_policy().rating_window_hours,
    )
    if ticket is None:
        return None
    ratings.record(turn.session, ticket, value, member_id=turn.speaker.member_id, now=turn.now)
    return turn.say(ratings.THANKS_SCRIPT, rating=value)


def complaint_risk(turn: Turn) -> Risk:
    if turn.speaker.is_staff or turn.speaker.is_bot:
        return Risk(None)
    unanswered = unanswered_count(turn.session, circle_id=turn.circle.id,
                                  member_id=turn.speaker.member_id, now=turn.now)
    return assess(turn.inbound.text, unanswered=unanswered)


def relay(turn: Turn) -> list[Reply]:
    """In a matter circle, each member's group words reach every other member (masked); a
    member's private message to the bot is theirs alone and is never relayed."""
    if turn.inbound.private:
        return []
    targets = matter.relay_targets(turn.session, turn.circle, turn.speaker.member_id)
    role = turn.label("role", turn.speaker.role) if turn.speaker.role else ""
    return [
        turn.say("matter.relay", to=seat.member_id, role_label=role,
                 relay_text=turn.row.text)
        for seat in targets
    ]
