"""The book of business as the application runs it: one import in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from storage.book.importer import ImportReport, Naming, import_book, sources_from
from storage.crypto import Keyring
from storage.errors import Conflict
from storage.scripts import ScriptLibrary


def naming(scripts: ScriptLibrary, settings: Settings) -> Naming:
    return Naming(
        honorific_suffix={g: scripts.label("honorific_suffix", g) for g in ("male", "female")},
        core_circle=scripts.label("circle_name", "core"),
        support_circle=scripts.label("circle_name", "support"),
        bot_member_id=settings.bot_member_id,
        bot_name=settings.bot_name,
    )


def import_into(
    s: Session,
    paths: Sequence[Path],
    *,
    keyring: Keyring,
    scripts: ScriptLibrary,
    settings: Settings,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ImportReport:
    """Inside the caller's transaction (the demo seed uses this): the caller commits."""
    return import_book(
        s, sources_from(paths), keyring=keyring, naming=naming(scripts, settings),
        now=now or datetime.now(UTC), dry_run=dry_run, timezone=settings.timezone,
    )


def run_import(
    sessions: sessionmaker[Session],
    paths: Sequence[Path],
    *,
    keyring: Keyring,
    scripts: ScriptLibrary,
    settings: Settings,
    dry_run: bool = False,
) -> ImportReport:
    """Validate everything, then write everything in one transaction, or nothing at all."""
    with sessions() as s:
        s.begin()
        try:
            report = import_into(s, paths, keyring=keyring, scripts=scripts, settings=settings,
                                 dry_run=dry_run)
            if report.ok and not dry_run:
                s.commit()
            else:
                s.rollback()
        except IntegrityError as exc:
            s.rollback()
            # Checked against what was there when validation ran: someone wrote meanwhile
            raise Conflict("another import or change wrote the same rows at the same time; "
                           "nothing was written, run the import again",
                           code="IMPORT_CONFLICT") from exc
    return report
