"""What a value in a book file means: dates, amounts, the Chinese labels insurers export."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from storage.crypto import normalise_number
from storage.enums import ClaimStatus, PolicyStatus, ProductKind, UserRole
from storage.pii import is_valid_id_card


class BadValue(ValueError):
    """One cell does not hold what its column needs; the message says what would."""


_DATE_RE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")

GENDERS = {"男": "male", "女": "female", "m": "male", "f": "female", "male": "male",
           "female": "female"}
RELATIONS = {"配偶": "spouse", "子女": "child", "父母": "parent", "其他": "other", "本人": "self",
             "spouse": "spouse", "child": "child", "parent": "parent", "other": "other",
             "self": "self"}
FREQUENCIES = {"年缴": "annual", "半年缴": "semiannual", "季缴": "quarterly", "月缴": "monthly",
               "趸缴": "single", "annual": "annual", "semiannual": "semiannual",
               "quarterly": "quarterly", "monthly": "monthly", "single": "single"}
POLICY_STATUSES = {"有效": PolicyStatus.ACTIVE, "宽限期": PolicyStatus.GRACE,
                   "失效": PolicyStatus.LAPSED, "终止": PolicyStatus.TERMINATED,
                   **{s.value: s for s in PolicyStatus}}
CLAIM_STATUSES = {"已报案": ClaimStatus.SUBMITTED, "审核中": ClaimStatus.REVIEWING,
                  "待补材料": ClaimStatus.NEED_DOCUMENTS, "已结案": ClaimStatus.APPROVED,
                  "已赔付": ClaimStatus.PAID, "拒赔": ClaimStatus.REJECTED,
                  **{s.value: s for s in ClaimStatus}}
ROLES = {r.value: r for r in UserRole}
CHANNELS = ("webhook", "wechat", "wecom", "web")

# Product name keywords -> kind, first match wins (教育年金 is education, not annuity).
PRODUCT_KEYWORDS: tuple[tuple[str, ProductKind], ...] = (
    ("教育", ProductKind.EDUCATION), ("少儿成长", ProductKind.EDUCATION),
    ("重大疾病", ProductKind.CRITICAL_ILLNESS), ("重疾", ProductKind.CRITICAL_ILLNESS),
    ("防癌", ProductKind.CRITICAL_ILLNESS),
    ("医疗", ProductKind.MEDICAL), ("住院", ProductKind.MEDICAL),
    ("意外", ProductKind.ACCIDENT),
    ("年金", ProductKind.ANNUITY), ("养老", ProductKind.ANNUITY),
    ("寿险", ProductKind.LIFE), ("人寿", ProductKind.LIFE), ("终身寿", ProductKind.LIFE),
    ("两全", ProductKind.LIFE),
)


def text(value: str, *, limit: int) -> str:
    if len(value) > limit:
        raise BadValue(f"longer than {limit} characters")
    return value


def day(value: str) -> date:
    m = _DATE_RE.match(value)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            pass
    raise BadValue(f"{value!r} is not a date (YYYY-MM-DD or YYYY/M/D)")


def moment(value: str) -> datetime:
    """A date, or an ISO date-time; read in the caller's zone by the importer."""
    try:
        return datetime.combine(day(value), datetime.min.time())
    except BadValue:
        pass
    try:
        return datetime.fromisoformat(value.replace("/", "-"))
    except ValueError as exc:
        raise BadValue(f"{value!r} is not a date or date-time") from exc


def amount(value: str) -> Decimal:
    cleaned = value.replace(",", "").replace("¥", "").replace("￥", "").replace("元", "").strip()
    try:
        result = Decimal(cleaned)
    except InvalidOperation as exc:
        raise BadValue(f"{value!r} is not an amount") from exc
    if not result.is_finite() or result < 0 or result >= Decimal("1e12"):
        raise BadValue(f"{value!r} is not a plausible amount")
    return result.quantize(Decimal("0.01"))


def whole(value: str, *, low: int = 0, high: int = 200) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise BadValue(f"{value!r} is not a whole number") from exc
    if not low <= n <= high:
        raise BadValue(f"{n} is outside {low}..{high}")
    return n


def choice(value: str, table: dict[str, Any], what: str) -> Any:
    found = table.get(value) if value in table else table.get(value.lower())
    if found is None:
        options = "|".join(k for k in table if not k.isascii()) or "|".join(table)
        raise BadValue(f"{value!r} is not a {what} ({options})")
    return found


def phone(value: str) -> str:
    digits = normalise_number(value.removeprefix("+86"))
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise BadValue("not a phone number")
    return digits


def id_number(value: str) -> str:
    digits = normalise_number(value)
    if len(digits) == 18 and digits[:17].isdigit() and not is_valid_id_card(digits):
        raise BadValue("the ID number's check digit (or birth date) is wrong")
    if not is_valid_id_card(digits):
        raise BadValue("not an ID card number (18 digits, the last may be X)")
    return digits


def product_kind(product: str, given: str) -> str | None:
    if given:
        return str(choice(given, {k.value: k.value for k in ProductKind}, "product kind"))
    for word, kind in PRODUCT_KEYWORDS:
        if word in product:
            return kind.value
    return None


def beneficiaries(value: str) -> list[dict[str, Any]]:
    """`刘芳:配偶:100%;王小明:子女:50%` -> [{"name", "relation", "share"}]; `法定` alone too."""
    found: list[dict[str, Any]] = []
    for raw in re.split(r"[;；]", value):
        if not raw.strip():
            continue
        bits = [b.strip() for b in re.split(r"[:：]", raw.strip())]
        name = text(bits[0], limit=64)
        relation = choice(bits[1], RELATIONS, "relation") if len(bits) > 1 and bits[1] else None
        share: int | None = None
        if len(bits) > 2 and bits[2]:
            share = whole(bits[2].rstrip("%％"), low=0, high=100)
        found.append({"name": name, "relation": relation, "share": share})
    return found
