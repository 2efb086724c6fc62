"""One row of a book file -> a checked record, or the problems with it (column by column)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.book import rules
from storage.book.rules import BadValue

# The interface other tools rely on: required columns per file (more columns are welcome).
REQUIRED: dict[str, tuple[str, ...]] = {
    "staff": ("username", "name", "role", "supervisor", "team"),
    "customers": ("customer_no", "member_id", "name", "gender", "birth_date", "phone",
                  "id_number", "agent"),
    "family": ("member_id", "customer_no", "name", "relation", "gender", "birth_date", "phone"),
    "policies": ("policy_no", "customer_no", "product", "insured", "effective_date",
                 "sum_assured", "premium", "frequency", "payment_years", "next_due_date",
                 "status", "beneficiaries", "cash_value", "cash_value_date"),
    "claims": ("claim_no", "policy_no", "status", "amount", "submitted_at", "updated_at", "note"),
    "circles": ("chat_id", "customer_no", "agent", "channel", "name"),
}
KEY: dict[str, str] = {"staff": "username", "customers": "customer_no", "family": "member_id",
                       "policies": "policy_no", "claims": "claim_no", "circles": "chat_id"}


@dataclass(frozen=True)
class Problem:
    """What is wrong, where: the file, its line (1 is the header) and the column."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" [{self.column}]" if self.column else "")
        return f"{where}: {self.message}"


class Cells:
    """Reads one row's cells through converters, collecting every problem instead of stopping."""

    def __init__(self, file: str, line: int, row: dict[str, str]) -> None:
        self.file, self.line, self.row = file, line, row
        self.problems: list[Problem] = []

    def problem(self, column: str, message: str) -> None:
        self.problems.append(Problem(self.file, self.line, column, message))

    def raw(self, column: str) -> str:
        return self.row.get(column, "")

    def get(self, column: str, convert: Callable[[str], Any] | None = None, *,
            required: bool = False) -> Any:
        value = self.row.get(column, "")
        if not value:
            if required:
                self.problem(column, "required")
            return None
        if convert is None:
            return value
        try:
            return convert(value)
        except BadValue as exc:
            self.problem(column, str(exc))
            return None


def _name(limit: int) -> Callable[[str], str]:
    return lambda v: rules.text(v, limit=limit)


def staff(c: Cells) -> dict[str, Any]:
    return {
        "username": c.get("username", _name(64), required=True),
        "name": c.get("name", _name(64), required=True),
        "role": c.get("role", lambda v: rules.choice(v, rules.ROLES, "role"), required=True),
        "supervisor": c.get("supervisor", _name(64)),
        "team": c.get("team", _name(64)),
        "support_chat_id": c.get("support_chat_id", _name(128)),
    }


def customers(c: Cells) -> dict[str, Any]:
    return {
        "customer_no": c.get("customer_no", _name(40), required=True),
        "member_id": c.get("member_id", _name(64), required=True),
        "name": c.get("name", _name(64), required=True),
        "gender": c.get("gender", lambda v: rules.choice(v, rules.GENDERS, "gender")),
        "birth_date": c.get("birth_date", rules.day),
        "phone": c.get("phone", rules.phone),
        "id_number": c.get("id_number", rules.id_number),
        "agent": c.get("agent", _name(64), required=True),
        "wechat_openid": c.get("wechat_openid", _name(128)),
        "wecom_external_userid": c.get("wecom_external_userid", _name(128)),
    }


def family(c: Cells) -> dict[str, Any]:
    scopes = c.get("authorized_scopes", _scopes)
    return {
        "member_id": c.get("member_id", _name(64), required=True),
        "customer_no": c.get("customer_no", _name(40), required=True),
        "name": c.get("name", _name(64), required=True),
        "relation": c.get("relation", lambda v: rules.choice(v, rules.RELATIONS, "relation"),
                          required=True),
        "gender": c.get("gender", lambda v: rules.choice(v, rules.GENDERS, "gender")),
        "birth_date": c.get("birth_date", rules.day),
        "phone": c.get("phone", rules.phone),
        "authorized_scopes": scopes or [],
        "authorized_until": c.get("authorized_until", rules.day),
    }


def _scopes(value: str) -> list[str]:
    words = [w.strip().lower() for w in value.replace("；", ",").replace(";", ",").replace(
        "、", ",").split(",") if w.strip()]
    allowed = ("policy", "claim", "health")
    for w in words:
        if w not in allowed:
            raise BadValue(f"{w!r} is not a scope ({','.join(allowed)})")
    return sorted(set(words))


def policies(c: Cells) -> dict[str, Any]:
    product = c.get("product", _name(128), required=True) or ""
    kind = None
    try:
        kind = rules.product_kind(product, c.raw("kind"))
    except BadValue as exc:
        c.problem("kind", str(exc))
    return {
        "policy_no": c.get("policy_no", _name(40), required=True),
        "customer_no": c.get("customer_no", _name(40), required=True),
        "product": product,
        "kind": kind,
        "insured": c.get("insured", _name(64), required=True),
        "effective_date": c.get("effective_date", rules.day),
        "sum_assured": c.get("sum_assured", rules.amount, required=True),
        "premium": c.get("premium", rules.amount, required=True),
        "frequency": c.get("frequency",
                           lambda v: rules.choice(v, rules.FREQUENCIES, "frequency"),
                           required=True),
        "payment_years": c.get("payment_years", lambda v: rules.whole(v, low=0, high=100)),
        "next_due_date": c.get("next_due_date", rules.day),
        "status": c.get("status", lambda v: rules.choice(v, rules.POLICY_STATUSES, "status"),
                        required=True),
        "beneficiaries": c.get("beneficiaries", rules.beneficiaries) or [],
        "cash_value": c.get("cash_value", rules.amount),
        "cash_value_date": c.get("cash_value_date", rules.day),
        "survival_benefit_date": c.get("survival_benefit_date", rules.day),
        "survival_benefit_amount": c.get("survival_benefit_amount", rules.amount),
    }


def claims(c: Cells) -> dict[str, Any]:
    return {
        "claim_no": c.get("claim_no", _name(40), required=True),
        "policy_no": c.get("policy_no", _name(40), required=True),
        "status": c.get("status", lambda v: rules.choice(v, rules.CLAIM_STATUSES, "status"),
                        required=True),
        "amount": c.get("amount", rules.amount),
        "submitted_at": c.get("submitted_at", rules.moment, required=True),
        "updated_at": c.get("updated_at", rules.moment),
        "note": c.get("note", _name(2000)),
    }


def circles(c: Cells) -> dict[str, Any]:
    def channel(v: str) -> str:
        if v.lower() not in rules.CHANNELS:
            raise BadValue(f"{v!r} is not a channel ({'|'.join(rules.CHANNELS)})")
        return v.lower()

    return {
        "chat_id": c.get("chat_id", _name(128), required=True),
        "customer_no": c.get("customer_no", _name(40), required=True),
        "agent": c.get("agent", _name(64), required=True),
        "channel": c.get("channel", channel) or "webhook",
        "name": c.get("name", _name(128)),
    }


PARSERS: dict[str, Callable[[Cells], dict[str, Any]]] = {
    "staff": staff, "customers": customers, "family": family, "policies": policies,
    "claims": claims, "circles": circles,
}
