"""Consent: which family member the holder lets see what (policy, claim, health), until when.

Every grant and revocation is a row that stays (consents) and an audit event; whether a member
is authorized right now is computed from the rows, never cached on the member.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from storage.enums import ConsentScope, ConsentSource
from storage.errors import BadRequest
from storage.models import AuditEvent, Consent


def parse_scopes(text: str) -> list[ConsentScope]:
    """`policy,claim` (also with ；/、/spaces) -> scopes; unknown words are an error."""
    words = [w for w in text.replace("；", ",").replace("、", ",").replace(";", ",").replace(
        " ", ",").split(",") if w]
    scopes: list[ConsentScope] = []
    for w in words:
        try:
            scope = ConsentScope(w.strip().lower())
        except ValueError as exc:
            allowed = ",".join(s.value for s in ConsentScope)
            raise BadRequest(f"unknown consent scope {w!r}; use {allowed}",
                             code="CONSENT_SCOPE_INVALID") from exc
        if scope not in scopes:
            scopes.append(scope)
    return scopes


def _active(today: date) -> list[ColumnElement[bool]]:
    return [Consent.revoked_at.is_(None), or_(Consent.until.is_(None), Consent.until >= today)]


def active_consents(
    session: Session, *, holder_id: int, member_id: str | None = None, today: date
) -> list[Consent]:
    q = select(Consent).where(Consent.holder_id == holder_id, *_active(today))
    if member_id is not None:
        q = q.where(Consent.member_id == member_id)
    return list(session.scalars(q.order_by(Consent.id)))


def scopes_of(
    session: Session, *, holder_id: int, member_id: str, today: date
) -> set[ConsentScope]:
    found: set[ConsentScope] = set()
    for c in active_consents(session, holder_id=holder_id, member_id=member_id, today=today):
        found.update(ConsentScope(s) for s in c.scopes.split(",") if s)
    return found


def is_authorized(
    session: Session, *, holder_id: int, member_id: str, scope: ConsentScope, today: date
) -> bool:
    return scope in scopes_of(session, holder_id=holder_id, member_id=member_id, today=today)


def grant(
    session: Session,
    *,
    holder_id: int,
    member_id: str,
    scopes: Iterable[ConsentScope],
    until: date | None,
    source: ConsentSource,
    actor: str | None,
    now: datetime,
) -> Consent:
    scope_list = sorted({ConsentScope(s) for s in scopes})
    if not scope_list:
        raise BadRequest("a consent needs at least one scope", code="CONSENT_SCOPE_INVALID")
    row = Consent(holder_id=holder_id, member_id=member_id,
                  scopes=",".join(s.value for s in scope_list), until=until,
                  source=source.value, granted_at=now, recorded_by=actor)
    session.add(row)
    session.flush()
    _audit(session, "consent_granted", row, actor, now)
    return row


def revoke(session: Session, *, consent: Consent, actor: str | None, now: datetime) -> None:
    if consent.revoked_at is None:
        consent.revoked_at = now
        _audit(session, "consent_revoked", consent, actor, now)


def _audit(session: Session, kind: str, row: Consent, actor: str | None, now: datetime) -> None:
    session.add(AuditEvent(
        kind=kind, actor_id=actor, subject=f"consent:{row.id}",
        data={"holder_id": row.holder_id, "member_id": row.member_id, "scopes": row.scopes,
              "until": row.until.isoformat() if row.until else None, "source": row.source},
        created_at=now,
    ))
