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

    def policies_described(self) -> tuple[tuple[str, str, str | None], ...]:
        """(number, product name, kind) of each of the holder's policies."""
        ...


@dataclass(frozen=True)
class StaticPolicyBook:
    """For tests and callers that already know the numbers."""

    numbers: frozenset[str] = frozenset()

    def policy_numbers(self) -> frozenset[str]:
        return self.numbers

    def policies_described(self) -> tuple[tuple[str, str, str | None], ...]:
        return tuple((n, "", None) for n in sorted(self.numbers))


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

    def policies_described(self) -> tuple[tuple[str, str, str | None], ...]:
        if self.holder_id is None:
            return ()
        rows = self.session.execute(select(Policy.policy_no, Policy.product, Policy.kind).where(
            Policy.holder_id == self.holder_id).order_by(Policy.id))
        return tuple((no, product, kind) for no, product, kind in rows)
