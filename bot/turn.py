"""Everything one message's handling needs, gathered once, plus the script rendering helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.messages import InboundMessage, Reply
from bot.nlu.engine import Parse
from bot.settings import Settings
from circles.membership import Speaker
from escalation.notify import display_name
from storage.models import Circle, Message
from storage.scripts import ScriptLibrary
from storage.state import StateStore


@dataclass
class Turn:
    session: Session
    settings: Settings
    scripts: ScriptLibrary
    state: StateStore
    inbound: InboundMessage
    row: Message  # the persisted (masked) inbound message
    circle: Circle
    speaker: Speaker
    parse: Parse
    now: datetime

    def variables(self, **extra: Any) -> dict[str, Any]:
        customer = self.circle.customer
        honorific = (
            customer.honorific
            if self.speaker.is_holder and customer
            else self.speaker.display_name
        )
        return {
            "bot_name": self.settings.bot_name,
            "agent_name": display_name(
                self.session, self.circle.agent_id, self.scripts.default("agent_name")
            ),
            "customer_name": customer.name if customer else "",
            "honorific": honorific,
            "speaker_name": self.speaker.display_name,
            **extra,
        }

    def say(self, script_id: str, to: str | None = None, **extra: Any) -> Reply:
        """Render a script for this turn; variants rotate by message id so tone varies."""
        rendered = self.scripts.render(script_id, self.variables(**extra), pick=self.row.id)
        return Reply(rendered.text, to, rendered.script_id, rendered.version)

    def label(self, group: str, key: str) -> str:
        return self.scripts.label(group, key)

    @property
    def pending_key(self) -> str:
        return f"pending:{self.circle.id}:{self.speaker.member_id or self.inbound.sender_id}"
