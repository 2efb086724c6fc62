"""Handoff context: what the agent needs to take over without asking the customer again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalation.notify import display_name
from storage.formats import moment
from storage.models import Circle, Message, Policy
from storage.pii import mask
from storage.scripts import ScriptError, ScriptLibrary

GENERIC_SUGGESTIONS = ("human.active", "followup.progress_note")


def transcript(session: Session, circle_id: int, limit: int) -> list[dict[str, Any]]:
    """The circle's last messages, oldest first, masked again in case an old row was not."""
    rows = list(
        session.scalars(
            select(Message)
            .where(Message.circle_id == circle_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
    )
    return [
        {
            "id": m.id,
            "direction": m.direction.value,
            "sender": m.sender_name or m.sender_id or "",
            "to": m.recipient_id,
            "text": mask(m.text),
            "at": m.created_at.isoformat(),
        }
        for m in reversed(rows)
    ]


def policies(session: Session, circle: Circle) -> list[dict[str, Any]]:
    """The holder's policies: the circle's agent may see them (they sold and serve them)."""
    if circle.customer_id is None:
        return []
    rows = session.scalars(
        select(Policy).where(Policy.holder_id == circle.customer_id).order_by(Policy.id)
    )
    return [
        {
            "policy_no": p.policy_no,
            "product": p.product,
            "insured_name": p.insured_name,
            "status": p.status.value,
            "sum_assured": str(p.sum_assured),
            "premium": str(p.premium),
            "next_due_date": p.next_due_date.isoformat() if p.next_due_date else None,
        }
        for p in rows
    ]


def suggestions(
    scripts: ScriptLibrary, intent: str | None, variables: dict[str, Any]
) -> list[dict[str, str]]:
    """Scripts the agent may send as they are: the intent's own, then the generic handoff ones."""
    ids = [sid for sid in scripts.scripts if intent and sid.startswith(f"{intent}.")]
    found: list[dict[str, str]] = []
    for script_id in [*ids, *GENERIC_SUGGESTIONS]:
        try:
            found.append({"script_id": script_id,
                          "text": scripts.render(script_id, variables).text})
        except ScriptError:
            continue  # needs data only the bot had at the time (a list of lines): skip it
    return found


def build(
    session: Session,
    scripts: ScriptLibrary | None,
    circle: Circle,
    *,
    intent: str | None,
    slots: dict[str, Any] | None,
    limit: int,
) -> dict[str, Any]:
    customer = circle.customer
    context: dict[str, Any] = {
        "transcript": transcript(session, circle.id, limit),
        "customer": (
            {"name": customer.name, "honorific": customer.honorific} if customer else None
        ),
        "policies": policies(session, circle),
        "intent": intent,
        "intent_zh": scripts.intents[intent].zh if scripts and intent in scripts.intents else None,
        "slots": {k: mask(str(v)) for k, v in (slots or {}).items()},
    }
    context["suggested_scripts"] = (
        suggestions(scripts, intent, _variables(session, scripts, circle)) if scripts else []
    )
    return context


def _variables(session: Session, scripts: ScriptLibrary, circle: Circle) -> dict[str, Any]:
    """What a suggested script may be rendered with, for the agent to adapt."""
    customer = circle.customer
    agent = display_name(session, circle.agent_id, scripts.default("agent_name"))
    return {
        "honorific": customer.honorific if customer else scripts.default("honorific"),
        "customer_name": customer.name if customer else "",
        "agent_name": agent,
        "speaker_name": customer.name if customer else "",
        "bot_name": "",
        "due_time": moment(None),
    }

