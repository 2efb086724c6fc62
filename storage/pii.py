"""PII detection and masking: ID cards, mobile numbers and bank cards in free chat text.

Lives in storage because every layer persists or logs text and must mask it first; it imports
nothing from the project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

PiiKind = Literal["id_card", "phone", "bank_card"]

# Full-width digits, letters and the separators people type with them, folded 1:1 to ASCII so
# that match positions in the folded text are positions in the original text.
_FOLD = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
        **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
        "\uff0b": "+",
        "\uff0d": "-",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u3000": " ",
        "\u00a0": " ",
        "\uff0e": ".",
        "\uff0f": "/",
        "\uff3f": "_",
    }
)

# Between the digits of one number people (and people dodging a filter) type spaces, dots,
# slashes, dashes, underscores and invisible zero-width characters; up to three in a row.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_SEP = rf"[ ./_\-{_ZERO_WIDTH}]{{0,3}}"

# A number glued to a digit, or dashed/dotted to another digit group, is part of something
# longer (a MsgId, an amount, a hotline). Letters glued in front are checked in code: a label
# such as `ID` or `tel` is a prefix, anything else (`P2024...`, `CC2024...`) another number.
_START = r"(?<![0-9])(?<![0-9][.-])"
_END = r"(?![0-9])(?![.-][0-9])"


def _run(n: int) -> str:
    """n digits, any separators between them."""
    return "[0-9]" + rf"(?:{_SEP}[0-9])" * (n - 1)


_ID18_RE = re.compile(_START + _run(17) + rf"{_SEP}[0-9Xx]" + _END)
_ID15_RE = re.compile(_START + _run(15) + _END)
_ID_CONTEXT_RE = re.compile(r"身份证(?:号码|号)?(?:是|为)?[:：\s]*$")
_CARD_RE = re.compile(_START + "[0-9]" + rf"(?:{_SEP}[0-9]){{11,18}}" + _END)
_CARD_CONTEXT_RE = re.compile(
    r"(?:卡号|银行卡号?|银行账号|账号|帐号|card\s*(?:no\.?|number)?)(?:码)?(?:是|为)?[:：\s]*$",
    re.IGNORECASE,
)
_PHONE_RE = re.compile(
    r"(?<![0-9+])(?<![0-9][.-])(?P<cc>(?:\+|00)?86[ -]?)?"
    rf"(?P<num>1{_SEP}[3-9]{_SEP}{_run(9)})" + _END
)
_NON_DIGIT_RE = re.compile(r"[^0-9Xx]")
# Letters that may stand right before a number as its label: ID610113..., tel138...
_PREFIXES = frozenset({
    "id", "idno", "idcard", "sfz", "tel", "phone", "mobile", "mob", "cell", "no", "card",
    "cardno", "acct", "account", "wx", "qq", "ph", "sj",
})

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PRECEDENCE: dict[PiiKind, int] = {"id_card": 0, "bank_card": 1, "phone": 2}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of personal data found in a text; positions index the original text."""

    kind: PiiKind
    start: int
    end: int
    raw: str
    digits: str

    @property
    def masked(self) -> str:
        """The replacement text: enough left to recognise the number, not to use it."""
        d = self.digits
        if self.kind == "id_card":
            return d[:3] + "*" * (len(d) - 7) + d[-4:]
        if self.kind == "bank_card":
            return d[:4] + "****" + d[-4:]
        prefix = self.raw[: len(self.raw) - len(_phone_body(self.raw))]
        return prefix + d[:3] + "****" + d[-4:]


def fold_width(text: str) -> str:
    """Fold full-width digits, letters and dashes to ASCII one char for one char.

    Unlike NFKC this never changes the length, so match offsets stay valid for the caller's text.
    """
    return text.translate(_FOLD)


def luhn_ok(digits: str) -> bool:
    """Luhn checksum: real bank cards pass it, most order numbers and MsgIds do not."""
    if not digits.isascii() or not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _plausible_birth(yyyymmdd: str) -> bool:
    """A real calendar date in 1900-2099: rules out most 18-digit numbers that are not IDs."""
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2099


def _plausible_id(digits: str) -> bool:
    """Region and birth date look right; the check digit may still be mistyped."""
    if len(digits) == 15:
        return digits[0] in "12345678" and _plausible_birth("19" + digits[6:12])
    return len(digits) == 18 and digits[0] in "12345678" and _plausible_birth(digits[6:14])


def is_valid_id_card(s: str) -> bool:
    """GB 11643 check digit and a plausible birth date (15-digit legacy IDs: the date only)."""
    digits = _NON_DIGIT_RE.sub("", fold_width(s).replace(" ", "").replace("-", "")).upper()
    if len(digits) == 15:
        return digits.isdigit() and _plausible_id(digits)
    if len(digits) != 18 or not digits[:17].isdigit() or not _plausible_id(digits):
        return False
    total = sum(int(c) * w for c, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == digits[17]


def _phone_body(raw: str) -> str:
    """The national-number part of a raw phone match (without +86 / 0086)."""
    m = _PHONE_RE.fullmatch(fold_width(raw))
    return raw[m.start("num") :] if m else raw


def _labelled_or_free(folded: str, start: int) -> bool:
    """No letters glued in front of the number, or only a known label (ID, tel, ...)."""
    k = start
    while k > 0 and folded[k - 1].isascii() and folded[k - 1].isalpha():
        k -= 1
    return k == start or folded[k:start].lower() in _PREFIXES


def _candidates(text: str) -> list[PiiMatch]:
    """Every shape-matching span, before overlaps are resolved."""
    folded = fold_width(text)
    found: list[PiiMatch] = []

    def add(kind: PiiKind, start: int, end: int, digits: str) -> None:
        if _labelled_or_free(folded, start):
            found.append(PiiMatch(kind, start, end, text[start:end], digits))

    for m in _ID18_RE.finditer(folded):
        digits = _NON_DIGIT_RE.sub("", m.group()).upper()
        if _plausible_id(digits) or _ID_CONTEXT_RE.search(folded, 0, m.start()):
            add("id_card", m.start(), m.end(), digits)
    for m in _ID15_RE.finditer(folded):
        digits = _NON_DIGIT_RE.sub("", m.group())
        if _plausible_id(digits) or _ID_CONTEXT_RE.search(folded, 0, m.start()):
            add("id_card", m.start(), m.end(), digits)
    for m in _CARD_RE.finditer(folded):
        digits = _NON_DIGIT_RE.sub("", m.group())
        labelled = len(digits) >= 15 and _CARD_CONTEXT_RE.search(folded, 0, m.start())
        if labelled or (16 <= len(digits) <= 19 and luhn_ok(digits)):
            add("bank_card", m.start(), m.end(), digits)
    for m in _PHONE_RE.finditer(folded):
        add("phone", m.start(), m.end(), _NON_DIGIT_RE.sub("", m.group("num")))
    return found


def find_pii(text: str) -> list[PiiMatch]:
    """Non-overlapping PII in text order; on overlap id_card beats bank_card beats phone."""
    chosen: list[PiiMatch] = []
    for cand in sorted(_candidates(text), key=lambda c: (_PRECEDENCE[c.kind], c.start)):
        if all(cand.end <= c.start or cand.start >= c.end for c in chosen):
            chosen.append(cand)
    return sorted(chosen, key=lambda c: c.start)


def mask(text: str) -> str:
    """Replace every ID card, mobile number and bank card with a masked form."""
    out: list[str] = []
    pos = 0
    for m in find_pii(text):
        out.append(text[pos : m.start])
        out.append(m.masked)
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
