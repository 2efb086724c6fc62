"""What a message says about consent, read by rules (no model decides who may see what).

Pure functions of the text: whether it grants, revokes, confirms or declines, which family
member it names (by relation word or by name) and which scopes it names. Who may say so, and
where, is decided by the caller (bot/consent_chat.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from storage.enums import ConsentScope


class Kind(StrEnum):
    GRANT = "grant"  # "同意我爱人查看保单", "授权"
    REVOKE = "revoke"  # "取消授权", "不让她看了"
    CONFIRM = "confirm"  # a bare yes ("同意", "可以") to the bot's own consent question
    DECLINE = "decline"  # a bare no ("不用了", "不同意") to the bot's own consent question


@dataclass(frozen=True)
class ConsentWords:
    kind: Kind
    relations: tuple[str, ...] = ()  # spouse | child | parent, as family.relation stores them
    scopes: tuple[ConsentScope, ...] = ()  # named in the text; empty: not said
    pronoun: bool = False  # 她 / 他 / TA: someone already in the conversation
    bare: bool = False  # nothing but the consent words ("取消授权"): no other matter in it

    @property
    def names_someone(self) -> bool:
        return bool(self.relations) or self.pronoun


_REVOKE_RE = re.compile(
    r"(取消|撤销|撤回|收回|解除|关闭).{0,8}授权|不(再)?(让|给|允许|授权)[^，。]{0,8}(看|查|知道)"
    r"|别(再)?让[^，。]{0,8}(看|查)|不授权了|不想授权了")
_GRANT_RE = re.compile(
    r"授权|(同意|允许)[^，。]{0,10}(看|查|知道)|(可以|能)让[^，。]{0,8}(看|查|知道)")
_CONFIRM = frozenset({"同意", "确认", "可以", "好的", "好", "行", "嗯", "是的", "对", "可以的",
                      "同意的", "没问题", "好的可以", "确认授权", "同意授权", "可以授权",
                      "好的授权", "授权吧", "同意吧"})
_DECLINE = frozenset({"不用", "不用了", "不同意", "不要", "不授权", "不了", "算了", "先不用",
                      "暂时不用", "不需要", "不行", "不可以"})
_RELATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spouse", ("爱人", "老婆", "妻子", "媳妇", "太太", "老公", "丈夫", "夫人", "对象")),
    ("child", ("儿子", "女儿", "孩子", "闺女", "小孩", "娃")),
    ("parent", ("爸爸", "妈妈", "父亲", "母亲", "老爸", "老妈", "爸", "妈")),
)
_SCOPES: tuple[tuple[ConsentScope, tuple[str, ...]], ...] = (
    (ConsentScope.CLAIM, ("理赔", "赔付", "报案")),
    (ConsentScope.HEALTH, ("健康", "体检", "病历", "病情")),
    (ConsentScope.POLICY, ("保单", "保费", "缴费", "交费", "现金价值", "保险")),
)
_PRONOUN_RE = re.compile(r"[她他]|TA|ta")
# What may surround bare consent words ("我要取消一下授权吧") without making it another matter.
_FILLER_RE = re.compile(r"我|要|想|请|帮|一下|吧|了|的|给|把|先|麻烦|就|好|啊|呀|哈|可以|那|这个")
_NOISE_RE = re.compile(r"@\S+|[\s\u2005,，。.!！~～、:：;；?？]+")


def clean(text: str) -> str:
    return _NOISE_RE.sub("", text)


def read(text: str) -> ConsentWords | None:
    """The consent a message speaks of, or None when it speaks of none."""
    bare = clean(text)
    if not bare:
        return None
    if bare in _CONFIRM:
        return ConsentWords(Kind.CONFIRM)
    if bare in _DECLINE:
        return ConsentWords(Kind.DECLINE)
    found = _REVOKE_RE.search(bare)
    kind = Kind.REVOKE
    if found is None:
        found, kind = _GRANT_RE.search(bare), Kind.GRANT
    if found is None:
        return None
    rest = bare
    relations: list[str] = []
    for relation, words in _RELATIONS:
        for word in words:
            if word in rest:
                relations.append(relation)
                rest = rest.replace(word, "")  # 老爸 is not also 爸
                break
    scopes = tuple(scope for scope, words in _SCOPES if any(w in bare for w in words))
    left = _FILLER_RE.sub("", bare[:found.start()] + bare[found.end():])
    return ConsentWords(kind, tuple(relations), scopes, bool(_PRONOUN_RE.search(bare)),
                        bare=not left)
