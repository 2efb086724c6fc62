"""Personal numbers at rest: sealed with AES-GCM under a key id, hashed with HMAC for matching.

Rotation: a sealed value reads `v1:<key id>:<base64 nonce+ciphertext>`. New values are sealed
with the current key; old keys stay listed (for reading only) until every value has been
re-sealed (`Keyring.reseal` turns an old token into a current one). The hash key is separate and
stable: rotating it means recomputing every hash from the decrypted values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

_PREFIX = "v1"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_NON_DIGIT = re.compile(r"[^0-9Xx]")


class KeyringError(ValueError):
    """A key is malformed, or a sealed value names a key we do not have."""


def parse_key(spec: str) -> tuple[str, bytes]:
    """`kid:base64url(32 bytes)` -> (kid, key)."""
    kid, sep, b64 = spec.strip().partition(":")
    if not sep or not _KEY_ID_RE.match(kid):
        raise KeyringError("a data key reads `<key id>:<base64 of 32 bytes>`, e.g. k1:...")
    try:
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except ValueError as exc:
        raise KeyringError(f"data key {kid!r} is not base64") from exc
    if len(raw) != 32:
        raise KeyringError(f"data key {kid!r} must be 32 bytes, not {len(raw)}")
    return kid, raw


def new_key_spec(kid: str = "k1") -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


def normalise_number(value: str) -> str:
    """Digits (and an ID card's X), so `138 1234-5678` and `13812345678` hash the same."""
    return _NON_DIGIT.sub("", value).upper()


def mask_number(digits: str) -> str:
    """Enough to recognise the number, not to use it: 138****5678, 110***********1234."""
    if len(digits) >= 15:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) >= 7:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * len(digits)


@dataclass(frozen=True)
class Sealed:
    """One personal number as stored: token, keyed hash, masked display."""

    sealed: str
    hash: str
    masked: str


@dataclass
class Keyring:
    """The current key seals; every listed key opens; the hash key matches."""

    current: str
    keys: dict[str, bytes]
    hash_key: bytes
    _aead: dict[str, AESGCM] = field(default_factory=dict, repr=False)

    @classmethod
    def from_specs(cls, current: str, old: list[str], hash_key: str) -> Keyring:
        kid, key = parse_key(current)
        keys = {kid: key}
        for spec in old:
            okid, okey = parse_key(spec)
            keys.setdefault(okid, okey)
        _, hkey = parse_key(hash_key)
        return cls(kid, keys, hkey)

    def _cipher(self, kid: str) -> AESGCM:
        if kid not in self._aead:
            if kid not in self.keys:
                raise KeyringError(f"no data key {kid!r}: list it among the old keys to read it")
            self._aead[kid] = AESGCM(self.keys[kid])
        return self._aead[kid]

    def seal(self, plain: str) -> str:
        nonce = os.urandom(12)
        ct = self._cipher(self.current).encrypt(nonce, plain.encode(), self.current.encode())
        return f"{_PREFIX}:{self.current}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def open(self, token: str) -> str:
        prefix, kid, b64 = ([*token.split(":", 2), "", ""])[:3]
        if prefix != _PREFIX:
            raise KeyringError("not a sealed value")
        raw = base64.urlsafe_b64decode(b64)
        try:
            return self._cipher(kid).decrypt(raw[:12], raw[12:], kid.encode()).decode()
        except InvalidTag as exc:
            raise KeyringError(f"sealed value does not open with key {kid!r}") from exc

    def reseal(self, token: str) -> str:
        """The same value under the current key (for rotation); current tokens stay as they are."""
        if token.startswith(f"{_PREFIX}:{self.current}:"):
            return token
        return self.seal(self.open(token))

    def hash(self, value: str) -> str:
        return hmac.new(self.hash_key, normalise_number(value).encode(), hashlib.sha256).hexdigest()

    def digest(self, *parts: object) -> str:
        """A keyed fingerprint of a row (it may contain personal numbers): unchanged or not."""
        text = "\x1f".join("" if p is None else str(p) for p in parts)
        return hmac.new(self.hash_key, text.encode(), hashlib.sha256).hexdigest()[:40]

    def protect(self, value: str) -> Sealed:
        digits = normalise_number(value)
        return Sealed(self.seal(digits), self.hash(digits), mask_number(digits))


def reseal_all(session: Session, keyring: Keyring, *, batch: int = 1000) -> int:
    """Rotation, step two: every sealed number re-sealed under the current key; returns how
    many changed. Afterwards the old key can leave CORECIRCLE_DATA_OLD_KEYS."""
    from storage.models import Customer, Member  # noqa: PLC0415 - models import nothing here

    changed = 0
    for model, columns in ((Customer, ("phone_sealed", "id_number_sealed")),
                           (Member, ("phone_sealed",))):
        for col in columns:
            attr = getattr(model, col)
            stale = attr.is_not(None) & ~attr.startswith(f"{_PREFIX}:{keyring.current}:")
            while rows := session.execute(select(model.id, attr).where(stale).limit(batch)).all():
                session.execute(update(model), [{"id": i, col: keyring.reseal(t)} for i, t in rows])
                changed += len(rows)
    return changed
