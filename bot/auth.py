"""Console logins: argon2-hashed passwords, signed bearer tokens, role checks."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.enums import UserRole
from storage.errors import Unauthorized
from storage.models import User

_hasher = PasswordHash.recommended()
# Verifying against a dummy hash for unknown users keeps login timing uniform.
_DUMMY_HASH = _hasher.hash("timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class Principal:
    """Who is calling the console API."""

    username: str
    role: UserRole
    member_id: str | None


def authenticate(session: Session, username: str, password: str) -> Principal:
    user = session.scalar(select(User).where(User.username == username, User.active))
    stored = user.password_hash if user is not None else None
    ok = _hasher.verify(password, stored or _DUMMY_HASH)
    if user is None or stored is None or not ok:  # imported staff: no password until set
        raise Unauthorized("wrong username or password", code="LOGIN_FAILED")
    return Principal(user.username, user.role, user.member_id)


class TokenSigner:
    def __init__(self, secret: str, minutes: int) -> None:
        self._secret, self._minutes = secret, minutes

    def issue(self, who: Principal, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        claims = {
            "sub": who.username,
            "role": who.role.value,
            "mid": who.member_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=self._minutes)).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def mac(self, purpose: str, value: str) -> str:
        """A keyed digest of `value` for one purpose (a page's CSRF token, a demo chat link)."""
        message = f"{purpose}\n{value}".encode()
        return hmac.new(self._secret.encode(), message, hashlib.sha256).hexdigest()[:40]

    def read(self, token: str) -> Principal:
        """The token's principal; it must be ours, carry exp, iat and sub, and be unexpired."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"],
                                options={"require": ["exp", "iat", "sub", "role"]})
            return Principal(str(claims["sub"]), UserRole(claims["role"]), claims.get("mid"))
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise Unauthorized(
                "token invalid or expired; log in again", code="TOKEN_INVALID"
            ) from exc


class UserCheck:
    """Is a token's user still there, active, with the same role? Cached for a few seconds so
    a busy console does not query per request; a change takes effect within the TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[float, tuple[bool, UserRole, str | None] | None]] = {}
        self._lock = threading.Lock()

    def require(self, sessions: sessionmaker[Session], who: Principal, ttl: float) -> Principal:
        now = self._clock()
        with self._lock:
            hit = self._seen.get(who.username)
        if hit is None or hit[0] <= now:
            with sessions() as s:
                user = s.scalar(select(User).where(User.username == who.username))
                current = (user.active, user.role, user.member_id) if user else None
            hit = (now + ttl, current)
            with self._lock:
                if len(self._seen) > 10_000:
                    self._seen.clear()
                self._seen[who.username] = hit
        current = hit[1]
        if current is None or not current[0] or current[1:] != (who.role, who.member_id):
            raise Unauthorized("this login was removed, deactivated or changed; log in again",
                               code="TOKEN_REVOKED")
        return who
