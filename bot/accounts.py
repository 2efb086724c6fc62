"""Staff accounts: add a login, set its password, deactivate it (CLI and admin API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth import hash_password
from storage.book.importer import Naming
from storage.book.writer import ensure_support_circle
from storage.enums import UserRole
from storage.errors import BadRequest, Conflict, NotFound
from storage.models import Member, User

MIN_PASSWORD = 8


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    name: str | None
    team: str | None
    active: bool
    can_log_in: bool  # active and a password is set

    @classmethod
    def of(cls, u: User) -> Account:
        return cls(u.username, u.role.value, u.name, u.team, u.active,
                   u.active and u.password_hash is not None)


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD or not password.strip():
        raise BadRequest(f"a password needs at least {MIN_PASSWORD} characters",
                         code="PASSWORD_WEAK")
    return hash_password(password)


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}", code="USER_UNKNOWN")
    return user


def add_user(
    *, session: Session, username: str, role: UserRole, name: str | None,
    password: str | None, naming: Naming, now: datetime,
) -> Account:
    """A new login and the member it speaks as; an agent also gets a support circle."""
    username = username.strip()
    if not username or len(username) > 64:
        raise BadRequest("a username has 1 to 64 characters", code="USERNAME_INVALID")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists; use set-password", code="USER_EXISTS")
    password_hash = _check_password(password) if password is not None else None
    member = session.get(Member, username)
    if member is None:
        session.add(Member(id=username, display_name=name or username, created_at=now))
        session.flush()
    user = User(username=username, role=role, name=name, password_hash=password_hash,
                member_id=username, active=True)
    session.add(user)
    session.flush()
    if role == UserRole.AGENT:
        ensure_support_circle(session, agent=username, agent_name=name or username,
                              supervisor=member.supervisor_id if member else None,
                              chat_id=None, naming=naming, now=now)
    return Account.of(user)


def set_password(*, session: Session, username: str, password: str) -> Account:
    user = _user(session, username)
    user.password_hash = _check_password(password)
    return Account.of(user)


def deactivate(*, session: Session, username: str) -> Account:
    """The login stops working at once; tokens already issued expire on their own."""
    user = _user(session, username)
    user.active = False
    return Account.of(user)


def list_accounts(*, session: Session) -> list[Account]:
    return [Account.of(u) for u in session.scalars(select(User).order_by(User.username))]
