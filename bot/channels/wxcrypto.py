"""Signatures, freshness and AES envelopes for WeChat/WeCom callbacks, errors mapped to 4xx.

wechatpy compares signatures with `!=`, accepts any old timestamp and raises about nine
different exception types on bad input; this module is the one place that turns all of that
into a stable code (docs/measured-facts.md, "wechatpy").
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
import time
from collections.abc import Mapping
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict
from wechatpy.crypto import PrpCrypto as OAPrpCrypto
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import PrpCrypto as CorpPrpCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidAppIdException

from bot.channels.config import ChannelApp
from bot.channels.xmlsafe import strip_control_bytes
from storage.errors import BadRequest, Forbidden

# Every exception type wechatpy/xmltodict/the cipher raise on hostile input (measured).
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ExpatError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError,
    IndexError, struct.error, binascii.Error,
)


def xml_invalid(why: str) -> BadRequest:
    return BadRequest(f"callback body is not a valid WeChat XML message: {why}",
                      code="WX_XML_INVALID")


def decrypt_failed(why: str) -> BadRequest:
    return BadRequest(f"encrypted body could not be decrypted: {why}", code="WX_DECRYPT_FAILED")


def sig_invalid(what: str = "signature") -> Forbidden:
    return Forbidden(f"{what} missing or wrong; check the token configured for this app",
                     code="WX_SIG_INVALID")


def sign(*parts: str) -> str:
    """WeChat's SHA1 over the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - protocol


def verify(given: str | None, *parts: str | None, what: str = "signature") -> None:
    if not given or any(p is None for p in parts):
        raise sig_invalid(what)
    expected = sign(*(p for p in parts if p is not None))
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("ascii", "replace")):
        raise sig_invalid(what)


def check_fresh(timestamp: str, window: int, now: float | None = None) -> None:
    """Refuse timestamps outside ±window seconds (wechatpy accepts any age)."""
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise sig_invalid("timestamp") from exc
    skew = abs((time.time() if now is None else now) - ts)
    if skew > window:
        raise Forbidden(
            f"timestamp is {int(skew)} s away from our clock (window ±{window} s): stale or"
            " replayed request", code="WX_TS_STALE",
        )


def parse_xml(body: bytes) -> Mapping[str, Any]:
    """The <xml> root as a dict; entity expansion is refused by xmltodict (400 in ~0.1 ms)."""
    if not body or not body.strip():
        raise xml_invalid("empty body")
    try:
        root = xmltodict.parse(strip_control_bytes(body).decode("utf-8"))["xml"]
    except PARSE_ERRORS as exc:
        raise xml_invalid(type(exc).__name__) from exc
    if not isinstance(root, dict):
        raise xml_invalid("root <xml> has no elements")
    return root


def _prp(app: ChannelApp, corp: bool) -> OAPrpCrypto | CorpPrpCrypto:
    crypto = WeChatCrypto(app.token, app.aes_key, app.app_id)  # the key was validated at start
    return (CorpPrpCrypto if corp else OAPrpCrypto)(crypto.key)


def decrypt(app: ChannelApp, encrypt: object, *, corp: bool = False) -> str:
    """Decrypt one Encrypt value; the receive id inside must be this app's AppID/CorpID."""
    if not isinstance(encrypt, str) or not encrypt.strip():
        raise decrypt_failed("Encrypt is empty or missing")
    try:
        return str(_prp(app, corp).decrypt(encrypt, app.app_id))
    except (InvalidAppIdException, InvalidCorpIdException) as exc:
        raise Forbidden(f"message is for another AppID/CorpID than app {app.name!r}",
                        code="WX_APPID_MISMATCH") from exc
    except PARSE_ERRORS as exc:
        raise decrypt_failed(type(exc).__name__) from exc


def envelope_cipher(app: ChannelApp, body: bytes, *, msg_signature: str | None,
                    timestamp: str, nonce: str) -> str:
    """The Encrypt value, after msg_signature over it checked out (constant time)."""
    envelope = parse_xml(body)
    encrypt = envelope.get("Encrypt")
    if encrypt is not None and not isinstance(encrypt, str):
        raise decrypt_failed("Encrypt is not a single text element")
    verify(msg_signature, app.token, timestamp, nonce, encrypt or "", what="msg_signature")
    if not encrypt:
        raise decrypt_failed("Encrypt is empty or missing")
    return encrypt


def seal(app: ChannelApp, xml: str, nonce: str, timestamp: str) -> str:
    """Encrypt and sign a passive reply exactly as WeChat expects it."""
    crypto = WeChatCrypto(app.token, app.aes_key, app.app_id)
    return str(crypto.encrypt_message(xml, nonce, timestamp))
