"""Complaint risk (源头介入压降投诉): a lexicon of threats plus signals of mounting anger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storage.enums import Direction, Priority, Role
from storage.models import CircleMember, Message

# Words that mean a complaint to the regulator, the press or a lawyer is near (not user-facing).
LEXICON = (
    "投诉", "12378", "12315", "曝光", "律师", "起诉", "法院", "举报", "媒体", "记者",
    "监管", "银保监", "消协", "维权",
)  # fmt: skip
# Anger words that count only when aimed at us: "大家注意防骗" in the family is no complaint,
# "你们这是骗人" is.
AIMED_LEXICON = ("骗", "破公司", "垃圾", "坑人", "坑老百姓", "忽悠", "欺负人", "太差", "恶劣")
# Who the words are aimed at. Us: the company, its people, its service, the bot.
_AT_US = (
    "你们", "公司", "客服", "业务员", "代理人", "经理", "李娜", "小助手", "机器人", "服务",
    "保险", "保单", "保费", "理赔", "赔", "退保", "人呢", "没人", "理我", "回复", "处理",
)  # fmt: skip
# A family member: addressed by kinship, or calmed down ("你别冲动" to a husband).
_AT_FAMILY = (
    "老公", "老婆", "媳妇", "爸", "妈", "哥", "姐", "弟", "妹", "儿子", "闺女", "女儿",
    "孩子", "宝贝", "亲爱的", "老头子", "老太婆", "你俩", "你们俩", "你别冲动", "别冲动",
    "你别生气", "别吵", "好好说", "少说两句", "你少喝", "别跟他", "别跟她", "一般见识",
)  # fmt: skip
EXCLAMATIONS = 3  # "!!!" or "！！！" in one message
UNANSWERED = 3  # the member's messages in a row with nobody answering
UNANSWERED_WINDOW = timedelta(hours=2)
STAFF_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.SPECIALIST)


@dataclass(frozen=True)
class Risk:
    level: Priority | None  # None: no sign of risk
    reasons: tuple[str, ...] = ()

    @property
    def urgent(self) -> bool:
        return self.level == Priority.URGENT


def aimed_at_family(text: str) -> bool:
    """Family members talking to each other, with nothing that points at us."""
    return any(w in text for w in _AT_FAMILY) and not any(w in text for w in _AT_US)


def assess(text: str, *, unanswered: int = 0) -> Risk:
    """A threat word is urgent at once, as is anger plus being ignored; either alone is high.

    Only anger addressed to us counts: a wife telling her husband "你别冲动！！！" in the family
    group is no complaint, however many messages in a row she sends.
    """
    if aimed_at_family(text):
        return Risk(None)
    reasons = [f"lexicon:{word}" for word in LEXICON if word in text]
    if any(w in text for w in _AT_US):
        reasons += [f"lexicon:{word}" for word in AIMED_LEXICON if word in text]
    bangs = text.count("!") + text.count("！")
    if bangs >= EXCLAMATIONS:
        reasons.append(f"exclamations:{bangs}")
    if unanswered >= UNANSWERED:
        reasons.append(f"unanswered:{unanswered}")
    if any(r.startswith("lexicon:") for r in reasons) or len(reasons) >= 2:
        return Risk(Priority.URGENT, tuple(reasons))
    return Risk(Priority.HIGH if reasons else None, tuple(reasons))


def unanswered_count(
    session: Session, *, circle_id: int, member_id: str | None, now: datetime
) -> int:
    """The member's recent messages since the bot or a human of the circle last spoke."""
    if member_id is None:
        return 0
    staff = select(CircleMember.member_id).where(
        CircleMember.circle_id == circle_id, CircleMember.role.in_(STAFF_ROLES)
    )
    answered = or_(
        (Message.direction == Direction.OUT)
        & (Message.recipient_id.is_(None) | (Message.recipient_id == member_id)),
        (Message.direction == Direction.IN) & Message.sender_id.in_(staff),
    )
    last_answer = session.scalar(
        select(Message.created_at)
        .where(Message.circle_id == circle_id, answered)
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    since = now - UNANSWERED_WINDOW
    if last_answer is not None and last_answer > since:
        since = last_answer
    count = session.scalar(
        select(func.count()).select_from(Message).where(
            Message.circle_id == circle_id,
            Message.direction == Direction.IN,
            Message.sender_id == member_id,
            Message.created_at > since,
        )
    )
    return int(count or 0)
