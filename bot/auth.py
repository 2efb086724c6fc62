"""Console logins: argon2-hashed passwords, signed bearer tokens, role checks."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.orm import Session

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
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"])
            return Principal(claims["sub"], UserRole(claims["role"]), claims.get("mid"))
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise Unauthorized(
                "token invalid or expired; log in again", code="TOKEN_INVALID"
            ) from exc
