"""Gateway authentication for the generic webhook: the bridge's timestamped HMAC signature.

The scheme Slack and Stripe use: the bridge sends `X-Corecircle-Timestamp: <unix seconds>` and
`X-Corecircle-Signature: v1=<hex HMAC-SHA256 of "v1:<timestamp>:<raw body>">` with the shared
secret. A request outside the time window is refused, so a captured request cannot be replayed
later; the signature is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from storage.errors import Unauthorized

TIMESTAMP_HEADER = "X-Corecircle-Timestamp"
SIGNATURE_HEADER = "X-Corecircle-Signature"
VERSION = "v1"
DEFAULT_WINDOW = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value for one request: `v1=<hex>`."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Both headers a bridge sends with `body` (what a client library would do)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
    window: int = DEFAULT_WINDOW,
) -> None:
    """Raise Unauthorized (401, a stable code) unless the request is signed, fresh and intact."""
    ts, given = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not ts or not given:
        raise Unauthorized(
            f"sign the request: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} "
            f'({VERSION}=hex HMAC-SHA256 of "{VERSION}:<timestamp>:<raw body>")',
            code="HOOK_SIG_MISSING",
        )
    current = time.time() if now is None else now
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12) or abs(current - int(ts)) > window:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} must be unix seconds within {window} s of the server clock",
            code="HOOK_TS_STALE",
        )
    # Every candidate is compared (constant time); a header may carry several during rotation.
    expected = signature(secret, ts, body)
    ok = False
    for part in given.split(","):
        ok |= hmac.compare_digest(expected.encode(), part.strip().encode())
    if not ok:
        raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body", code="HOOK_SIG_INVALID")
