"""Everything one message's handling needs, gathered once, plus the script rendering helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.messages import InboundMessage, Reply
from bot.nlu.engine import Parse
from bot.settings import Settings
from circles import naming
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
        """People are named from their profiles, never from the channel's `sender_name`."""
        customer = self.circle.customer
        return {
            "bot_name": self.settings.bot_name,
            "agent_name": display_name(
                self.session, self.circle.agent_id, self.scripts.default("agent_name")
            ),
            "customer_name": customer.name if customer else "",
            "honorific": self.address_of(self.speaker.member_id),
            "speaker_name": self.name_of(self.speaker.member_id),
            **extra,
        }

    def address_of(self, member_id: str | None) -> str:
        """王先生 / 刘芳, or a kind neutral form for someone without a fit profile name."""
        return naming.address(self.session, member_id) or self.scripts.default("person")

    def name_of(self, member_id: str | None) -> str:
        return naming.profile_name(self.session, member_id) or self.scripts.default("person")

    def say(self, script_id: str, to: str | None = None, **extra: Any) -> Reply:
        """Render a script for this turn; variants rotate by message id so tone varies."""
        rendered = self.scripts.render(script_id, self.variables(**extra), pick=self.row.id)
        return Reply(rendered.text, to, rendered.script_id, rendered.version)

    def label(self, group: str, key: str) -> str:
        return self.scripts.label(group, key)

    @property
    def pending_key(self) -> str:
        return f"pending:{self.circle.id}:{self.speaker.member_id or self.inbound.sender_id}"
