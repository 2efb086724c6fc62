"""What a member's own words already answer: slots taken from the message that opened a form,
and a policy named by description ("重疾险那个") instead of its number. Pure functions; what
they find is still judged by the form's validate_<slot>, like any other answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_OTHER_PERSON_RE = re.compile(
    r"老婆|妻子|爱人|媳妇|太太|老公|丈夫|儿子|女儿|孩子|闺女|爸|妈|父亲|母亲|奶奶|爷爷|外婆|外公|"
    r"哥|姐|弟|妹|朋友|同事|[他她]")
_SELF_RE = re.compile(r"我(?!们|家)|本人|自己")
_HAPPENED_RE = re.compile(
    r"住院|住了.{0,4}院|出院|手术|确诊|骨折|车祸|摔|受伤|意外|阑尾炎|癌|肿瘤|结节|心梗|脑梗|中风|"
    r"生病|发烧|肺炎|去世|过世|身故")
_WHEN_RE = re.compile(
    r"上礼拜|上周|上星期|上个月|前几天|前天|昨天|今天|今早|昨晚|这周|本周|"
    r"[0-9一二三四五六七八九十]{1,2}月[0-9一二三四五六七八九十]{1,3}[日号]")
_HOSPITAL_NAME_RE = re.compile(r"[\u4e00-\u9fff]{2,14}(?:医院|卫生院|诊所)")
# How a customer names a kind of policy (storage.enums.ProductKind values).
_KIND_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("critical_illness", ("重疾", "重大疾病")),
    ("medical", ("医疗",)),
    ("accident", ("意外",)),
    ("annuity", ("年金", "养老")),
    ("education", ("教育",)),
    ("life", ("寿险", "人寿")),
)


def opening_slots(intent: str, text: str) -> dict[str, Any]:
    """Candidates for a claim report from its opening words: who (本人 when the member speaks
    of himself and of nobody else), what happened, when, and a hospital named as such."""
    if intent != "claim.report":
        return {}
    found: dict[str, Any] = {}
    if _SELF_RE.search(text) and not _OTHER_PERSON_RE.search(text):
        found["insured"] = "本人"
    if _HAPPENED_RE.search(text):
        found["what_happened"] = text
    when = _WHEN_RE.search(text)
    if when:
        found["when"] = when.group(0)
    hospital = _HOSPITAL_NAME_RE.search(text)
    if hospital:
        found["hospital"] = hospital.group(0)
    return found


def policy_by_description(
    text: str, policies: Iterable[tuple[str, str, str | None]]
) -> str | None:
    """The one policy (number, product, kind) the words describe, or None if not exactly one."""
    kinds = {kind for kind, words in _KIND_WORDS if any(w in text for w in words)}
    if not kinds:
        return None
    matches = [no for no, product, kind in policies
               if kind in kinds or any(w in product for k, ws in _KIND_WORDS if k in kinds
                                       for w in ws)]
    return matches[0] if len(matches) == 1 else None


_DEATH_RE = re.compile(r"去世|过世|身故|离世|不在了|走了|病逝|死亡")
_DISCHARGED_RE = re.compile(r"出院")


def bereaved(text: str) -> bool:
    """The member speaks of a death: condolence, never 祝早日康复."""
    return bool(_DEATH_RE.search(text))


def discharged(text: str) -> bool:
    """Already out of hospital: ask where they were treated, not where they are."""
    return bool(_DISCHARGED_RE.search(text))
