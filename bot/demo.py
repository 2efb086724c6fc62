"""Demo data (README, "Quick start"): the 王建国 family, loaded through the book importer.

The files in storage/book/demo/ are the demo book; dates in them are written relative to today
(`{today+22}`, `{today-3}`, `{month_start}`) and filled in before each import, so the premium
is always due in 22 days. Idempotent: a restart re-imports and changes only those dates.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth import hash_password
from bot.book import import_into
from bot.keys import build_keyring
from bot.settings import Settings
from storage import book as book_package
from storage.crypto import Keyring
from storage.models import Customer, Member, User
from storage.scripts import ScriptLibrary

DEMO_PASSWORD = "demo"  # noqa: S105 - demo mode only, documented in the README
DEMO_BOOK = Path(book_package.__file__).resolve().parent / "demo"
DEMO_LOGINS = ("demo-agent", "demo-supervisor")
_RELATIVE = re.compile(r"\{(today(?:[+-]\d+)?|month_start)\}")


class DemoBookInvalid(RuntimeError):
    """The shipped demo files do not import: a bug in the package, not in the user's data."""


def fill_dates(text: str, today: date) -> str:
    def one(m: re.Match[str]) -> str:
        word = m.group(1)
        if word == "month_start":
            return today.replace(day=1).isoformat()
        return (today + timedelta(days=int(word[5:] or 0))).isoformat()

    return _RELATIVE.sub(one, text)


def _adopt_legacy_demo(s: Session) -> None:
    """Demo data seeded before the importer existed: give it the keys the demo book uses."""
    old = s.get(Member, "demo-customer")
    if old is not None and old.customer_id is not None:
        customer = s.get(Customer, old.customer_id)
        if customer is not None and customer.customer_no is None:
            customer.customer_no = "C0000001"
            wife = s.get(Member, "demo-wife")
            if wife is not None and wife.family_of_id is None:
                wife.family_of_id = customer.id
            s.flush()


def seed_demo(
    s: Session,
    settings: Settings,
    today: date | None = None,
    *,
    keyring: Keyring | None = None,
    scripts: ScriptLibrary | None = None,
) -> None:
    """Import the demo book into the caller's transaction and give the demo logins a password."""
    today = today or datetime.now(UTC).date()
    _adopt_legacy_demo(s)
    with tempfile.TemporaryDirectory(prefix="corecircle-demo-") as tmp:
        for src in sorted(DEMO_BOOK.glob("*.csv")):
            (Path(tmp) / src.name).write_text(fill_dates(src.read_text("utf-8"), today), "utf-8")
        report = import_into(
            s, [Path(tmp)], keyring=keyring or build_keyring(settings),
            scripts=scripts or ScriptLibrary(), settings=settings,
        )
    if not report.ok:
        raise DemoBookInvalid("; ".join(str(p) for p in report.problems[:10]))
    for user in s.scalars(select(User).where(User.username.in_(DEMO_LOGINS))):
        if user.password_hash is None:
            user.password_hash = hash_password(DEMO_PASSWORD)
