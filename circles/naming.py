"""How the bot addresses a person: by the name on their profile, never by the name a channel
supplies (a `sender_name` is whatever the sender typed, links and ID numbers included)."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from storage.models import Member
from storage.text import strip_controls

# Two-character surnames, so that 欧阳娜 is 欧阳女士 and not 欧女士.
COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
    "司徒", "夏侯", "令狐", "端木", "独孤", "南宫", "万俟", "闻人", "轩辕", "澹台", "公冶",
    "太史", "申屠", "钟离", "呼延", "单于", "西门", "百里", "东郭", "南门", "羊舌", "第五",
})
TITLES = {"male": "先生", "female": "女士"}
# Letters (Chinese or Latin), the middle dot of transliterated names, spaces and brackets:
# 王建国, 买买提·艾力, Anna Lee, 理赔专员小吴（外聘）. Digits, links and @ never pass.
_NAME = re.compile(r"[\u4e00-\u9fffA-Za-z][\u4e00-\u9fffA-Za-z·・ .'\-（）()]{0,23}")
_LINKISH = re.compile(r"://|www\.|[A-Za-z0-9][.。][A-Za-z]|@", re.IGNORECASE)  # evil.shop
_DIGITS = re.compile(r"[0-9０-９]")
_SURNAMED = re.compile(r"[\u4e00-\u9fff]{2,4}")  # 王建国, 欧阳娜娜: a surname can be told


def safe_name(name: str | None) -> str | None:
    """A profile name fit to say in a chat: a plain personal name, or None.

    Nothing with a digit, a link or an @ in it is ever said: a name is never the way to put
    an ID number or a phishing link into the bot's mouth."""
    text = strip_controls(name or "").strip()
    if not text or _DIGITS.search(text) or _LINKISH.search(text):
        return None
    return text if _NAME.fullmatch(text) else None


def surname(name: str) -> str:
    return name[:2] if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else name[:1]


def polite_name(name: str | None, gender: str | None = None) -> str | None:
    """王建国 (male) -> 王先生, 欧阳娜 (female) -> 欧阳女士; gender unknown -> the full name
    (刘芳), which is polite without guessing; an unsafe name -> None."""
    safe = safe_name(name)
    if safe is None:
        return None
    title = TITLES.get(gender or "")
    if title and _SURNAMED.fullmatch(safe):
        return surname(safe) + title
    return safe


def profile_name(session: Session, member_id: str | None) -> str | None:
    """The name on a member's profile, if it is fit to say."""
    member = session.get(Member, member_id) if member_id else None
    if member is None or member.is_bot:
        return None
    return safe_name(member.display_name)


def address(session: Session, member_id: str | None) -> str | None:
    """How to address a member: the honorific on their customer record (王先生), else the
    polite form of their profile name; None for someone we hold no fit name for."""
    member = session.get(Member, member_id) if member_id else None
    if member is None or member.is_bot:
        return None
    if member.customer is not None:
        honorific = strip_controls(member.customer.honorific or "").strip()
        if honorific and not _DIGITS.search(honorific) and not _LINKISH.search(honorific):
            return honorific
    return polite_name(member.display_name, member.gender)
