"""Dialogs: the ports a form needs from outside (which policies the holder has), two ways."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Policy


class PolicyBook(Protocol):
    def policy_numbers(self) -> frozenset[str]:
        """The policy numbers of the holder the form is for."""
        ...


@dataclass(frozen=True)
class StaticPolicyBook:
    """For tests and callers that already know the numbers."""

    numbers: frozenset[str] = frozenset()

    def policy_numbers(self) -> frozenset[str]:
        return self.numbers


@dataclass(frozen=True)
class SqlPolicyBook:
    """The holder's policies in the database, read once per turn by the runner."""

    session: Session
    holder_id: int | None

    def policy_numbers(self) -> frozenset[str]:
        if self.holder_id is None:
            return frozenset()
        rows = self.session.scalars(select(Policy.policy_no).where(
            Policy.holder_id == self.holder_id))
        return frozenset(rows)
