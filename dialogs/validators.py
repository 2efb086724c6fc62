"""Dialogs: what counts as an answer to each kind of slot; pure functions, no I/O."""

from __future__ import annotations

import re
from datetime import datetime

from storage.pii import find_pii, fold_width, luhn_ok, mask

CANCEL_RE = re.compile(r"取消|不办了|算了|不用了|不改了|不弄了|先不办|先不用|不需要了")
CANCEL_MAX_CHARS = 12  # "算了不办了" cancels; a long message that mentions 取消 is an answer
UNCHANGED_RE = re.compile(r"不变|没变|不用改|不改|一样|还是原来")
_DIGITS_RE = re.compile(r"[0-9]")
_LONG_DIGITS_RE = re.compile(r"(?:[0-9][ -]?){12,}")
_YEAR_RE = re.compile(r"(20[0-9]{2})")
_RELATIVE_YEARS = {"今年": 0, "去年": 1, "前年": 2}
_ADDRESS_RE = re.compile(r"省|市|区|县|路|街|号|镇|乡|村|小区|栋|幢|单元|室|弄|巷|道|苑|园")
_HOSPITAL_RE = re.compile(r"院|医|诊所|门诊|卫生|中心|科")
_NO_HOSPITAL_RE = re.compile(r"没(?:有|去)|还没|在家|不用")
_BANK_RE = re.compile(r"[\u4e00-\u9fff]{1,10}银行")
_BANK_SHORT = ("工行", "建行", "农行", "中行", "交行", "招行", "邮储", "浦发", "民生", "兴业",
               "中信", "光大", "平安", "华夏", "广发")
_RELATION_WORDS = {"配偶": "spouse", "子女": "child", "父母": "parent", "本人": "self"}
RELATIONS = frozenset({"spouse", "child", "parent", "grandparent", "grandchild", "sibling",
                       "self"})
# First match wins: 邮寄 is paper even though 邮 starts 邮箱 too.
_DELIVERY = (
    ("paper", re.compile(r"纸质|邮寄|快递|寄到|寄给|寄过来")),
    ("electronic", re.compile(r"电子|邮箱|邮件|e-?mail|pdf|PDF|@")),
)
_WAYS = (
    ("visit", re.compile(r"上门|来家|见面|面谈|当面|到店|过来")),
    ("video", re.compile(r"视频")),
    ("phone", re.compile(r"电话|回电|打给|语音")),
)
MAX_TEXT = 60
# Said while thinking, or not knowing: never an answer to a form's question (it is asked again).
_NON_ANSWER_RE = re.compile(
    r"(嗯|哦|噢|啊|呃|额|哈|呵|好|行|对|是|啥|什么|等等|稍等|等一下|不知道|不清楚|不记得|记不清|"
    r"忘了|想不起来|没有|不晓得|我也不知道|[?？.。!！~～…])+(了|的|呢|吧|啊|呀)*")


def is_cancel(text: str) -> bool:
    text = clean(text)
    return len(text) <= CANCEL_MAX_CHARS and bool(CANCEL_RE.search(text))


def is_unchanged(text: str) -> bool:
    return bool(UNCHANGED_RE.search(text))


def has_digits(text: str) -> bool:
    return bool(_DIGITS_RE.search(text))


def clean(text: str) -> str:
    """The answer as we keep it: one line, no @mention, personal numbers masked, bounded."""
    text = re.sub(r"@\S+[\s\u2005]*", "", text).replace("\n", " ").strip()
    return mask(text)[:MAX_TEXT]


def mobile(text: str) -> str | None:
    """The first mobile number in text, masked (138****5678); None if there is none."""
    phones = [m for m in find_pii(text) if m.kind == "phone"]
    return phones[0].masked if phones else None


def bank_card(text: str) -> str | None:
    """The first bank card (16-19 digits passing Luhn) in text, masked; None if none."""
    cards = [m for m in find_pii(text) if m.kind == "bank_card" and luhn_ok(m.digits)]
    return cards[0].masked if cards else None


def looks_like_card(text: str) -> bool:
    return bool(_LONG_DIGITS_RE.search(fold_width(text)))


def relation(entity: str | None, text: str) -> str | None:
    if entity in RELATIONS:
        return entity
    return next((v for k, v in _RELATION_WORDS.items() if k in text), None)


def is_non_answer(text: str) -> bool:
    return bool(_NON_ANSWER_RE.fullmatch(clean(text)))


def person_name(text: str) -> str | None:
    """A name or a way of naming a family member; never numbers (ID cards stay out of it)."""
    text = clean(text)
    if not text or has_digits(text) or len(text) > 20 or is_non_answer(text):
        return None
    return text


def free_text(text: str, *, minimum: int = 2) -> str | None:
    text = clean(text)
    return text if len(text) >= minimum and not is_non_answer(text) else None


def address(text: str) -> str | None:
    text = clean(text)
    return text if len(text) >= 5 and _ADDRESS_RE.search(text) else None


def hospital(text: str) -> str | None:
    text = clean(text)
    if _NO_HOSPITAL_RE.search(text):
        return "none"
    return text if len(text) >= 2 and _HOSPITAL_RE.search(text) else None


def bank_name(text: str) -> str | None:
    text = clean(text)
    found = _BANK_RE.search(text)
    if found:
        return found.group()
    return next((short for short in _BANK_SHORT if short in text), None)


def years(text: str, now: datetime) -> str | None:
    """'2024年和2025年' -> '2024,2025'; 去年 -> last year; only years that have begun."""
    found = {int(y) for y in _YEAR_RE.findall(fold_width(text))}
    found |= {now.year - back for word, back in _RELATIVE_YEARS.items() if word in text}
    valid = sorted(y for y in found if 2000 <= y <= now.year)
    return ",".join(str(y) for y in valid) or None


def delivery(text: str) -> str | None:
    return next((kind for kind, pattern in _DELIVERY if pattern.search(text)), None)


def way(text: str) -> str | None:
    return next((kind for kind, pattern in _WAYS if pattern.search(text)), None)


def moment(value: str | None) -> datetime | None:
    """An ISO-8601 time entity with its offset; None for anything else."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


POLICY_RE = re.compile(r"[A-Z]{0,4}[0-9]{6,20}")
