"""Intent engine: extract the entities our scripts and forms fill slots with.

Spans never overlap: the first extractor to claim characters keeps them, in the order
policy number after 保单号, personal data, policy number, time, amount, relation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bot.nlu.numerals import cn_number
from bot.nlu.timeparse import resolve_time
from storage.pii import find_pii, fold_width, is_valid_id_card, luhn_ok

EntityValue = str | int | float

_POLICY_CONTEXT_RE = re.compile(
    r"保单(?:号码|号)?(?:是|为)?[:：\s]*(?<![0-9A-Za-z])([0-9]{10,20})(?![0-9A-Za-z])"
)
_POLICY_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{1,4}[0-9]{6,20}(?![0-9A-Za-z])")
_CN_DIGITS = "零〇一二两三四五六七八九"
_AMOUNT_RE = re.compile(
    rf"(?P<cur>[¥￥]\s*)?(?<![0-9A-Za-z.])"
    rf"(?<![{_CN_DIGITS}十百千万亿])(?P<num>[0-9{_CN_DIGITS}十][0-9,.{_CN_DIGITS}十百千万亿]{{0,23}})"
    r"(?P<kw>[kKwW](?![A-Za-z]))?\s*(?P<unit>元|块钱|块|圆|人民币|(?i:rmb)(?![A-Za-z]))?"
)
_DECIMAL_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_KW_FACTOR = {"k": 1000, "w": 10000}
_RELATIONS = {
    "spouse": "老婆 媳妇 爱人 妻子 太太 老公 丈夫",
    "child": "儿子 女儿 孩子 娃",
    "parent": "爸爸 老爸 父亲 妈妈 老妈 母亲 爸妈 父母 爸 妈",
    "grandparent": "爷爷 奶奶 外公 外婆 姥姥 姥爷",
    "grandchild": "外孙女 外孙 孙子 孙女",
    "sibling": "兄弟姐妹 兄弟 姐妹 哥哥 姐姐 弟弟 妹妹",
}
_RELATION_OF = {word: key for key, words in _RELATIONS.items() for word in words.split()}
_RELATION_RE = re.compile(
    "|".join(sorted(_RELATION_OF, key=len, reverse=True))
    # a lone 哥/姐/弟/妹 is often a form of address (帅哥, 小姐, 李姐) or part of another word
    + r"|(?<![小帅美学师表堂徒兄大])[哥姐弟妹](?![们夫媳子])"
)


@dataclass(frozen=True, slots=True)
class Entity:
    """One extracted entity; start/end index the text given to extract_entities."""

    entity: str
    value: EntityValue
    start: int
    end: int


def _number(s: str) -> int | float:
    """'5,000' / '1.2万' / '一万二' -> a number; int whenever it is whole."""
    s = s.replace(",", "")
    return _whole(float(s) if _DECIMAL_RE.fullmatch(s) else cn_number(s))


def _whole(value: float) -> int | float:
    """12000.0 -> 12000: amounts read better as int whenever they are whole."""
    return int(value) if float(value).is_integer() else float(value)


def _amounts(text: str) -> list[Entity]:
    """Money needs a currency sign, a unit (元/块) or a magnitude (万/千): a bare 5000 is not."""
    found: list[Entity] = []
    for m in _AMOUNT_RE.finditer(text):
        num = m.group("num").rstrip(".,")
        has_unit = bool(m.group("cur") or m.group("kw") or m.group("unit"))
        magnitude = any(c in num for c in "万千亿") and num[0] not in "千万亿百"
        if not (has_unit or magnitude) or (num == "一" and m.group("unit") == "块"):
            continue  # "一块去" means together
        try:
            value = _number(num)
        except ValueError:  # a malformed numeral
            continue
        if m.group("kw"):
            value = _whole(value * _KW_FACTOR[m.group("kw").lower()])
        end = m.end() if m.group("kw") or m.group("unit") else m.start("num") + len(num)
        found.append(Entity("amount", value, m.start(), end))
    return found


def _pii(text: str) -> list[Entity]:
    """Phone, ID card and bank card from storage.pii; every PII span is claimed, even when an
    ID with a wrong check digit is not reported, so no amount is read out of it."""
    found: list[Entity] = []
    for m in find_pii(text):
        kind: str = m.kind
        if kind == "id_card" and not is_valid_id_card(m.digits):
            kind = "_claimed"
        found.append(Entity(kind, m.digits, m.start, m.end))
    return found


def _policy_after_keyword(folded: str) -> list[Entity]:
    """Bare digits right after 保单号 are a policy number unless they are a real card or ID."""
    found: list[Entity] = []
    for m in _POLICY_CONTEXT_RE.finditer(folded):
        digits = m.group(1)
        card = 16 <= len(digits) <= 19 and luhn_ok(digits)
        if not card and not is_valid_id_card(digits):
            found.append(Entity("policy_no", digits, m.start(1), m.end(1)))
    return found


def extract_entities(text: str, now: datetime) -> list[Entity]:
    """All entities in text, non-overlapping, in text order; time is resolved against now."""
    folded = fold_width(text)
    groups: list[list[Entity]] = [
        _policy_after_keyword(folded),
        _pii(text),
        [Entity("policy_no", m.group().upper(), *m.span()) for m in _POLICY_RE.finditer(folded)],
        [Entity("time", t.value.isoformat(), t.start, t.end) for t in resolve_time(text, now)],
        _amounts(folded),
        [
            Entity("relation", _RELATION_OF.get(m.group(), "sibling"), *m.span())
            for m in _RELATION_RE.finditer(text)
        ],
    ]
    taken: list[Entity] = []
    for group in groups:
        for e in group:
            if all(e.end <= t.start or e.start >= t.end for t in taken):
                taken.append(e)
    return sorted((e for e in taken if not e.entity.startswith("_")), key=lambda e: e.start)
