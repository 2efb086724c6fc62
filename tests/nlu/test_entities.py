"""Entities as the dialog forms see them: what is found, its value, and where it sits."""

from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from bot.nlu.entities import Entity, extract_entities

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
VALID_ID = "110101199003071233"
CARD = "6222021234567890128"


def _found(text: str) -> list[tuple[str, object, str]]:
    return [(e.entity, e.value, text[e.start : e.end]) for e in extract_entities(text, NOW)]


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("保费5000元", 5000, "5000元"),
        ("大概5千", 5000, "5千"),
        ("保额1.2万", 12000, "1.2万"),
        ("一万二", 12000, "一万二"),
        ("三千块", 3000, "三千块"),
        ("两百万的保额", 2000000, "两百万"),
        ("付了¥300", 300, "¥300"),
        ("1,200元", 1200, "1,200元"),
        ("3万5", 35000, "3万5"),
        ("3.5w", 35000, "3.5w"),
        ("每月99.5元", 99.5, "99.5元"),
    ],
)
def test_amounts(text: str, value: float, surface: str) -> None:
    assert _found(text) == [("amount", value, surface)]


@pytest.mark.parametrize("text", ["我们一块去", "千万别退保", "有5000个人", "万一出事"])
def test_not_amounts(text: str) -> None:
    assert [e for e in extract_entities(text, NOW) if e.entity == "amount"] == []


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("我的保单CC2024000123", "CC2024000123", "CC2024000123"),
        ("p20240001234567怎么查", "P20240001234567", "p20240001234567"),
        ("保单号 2024000123456", "2024000123456", "2024000123456"),
        ("保单号码：13812345678", "13812345678", "13812345678"),  # not a phone here
        ("ｃｃ２０２４０００１２３", "CC2024000123", "ｃｃ２０２４０００１２３"),
    ],
)
def test_policy_numbers(text: str, value: str, surface: str) -> None:
    assert _found(text) == [("policy_no", value, surface)]


def test_valid_card_after_policy_keyword_stays_a_card() -> None:
    assert _found(f"保单号{CARD}") == [("bank_card", CARD, CARD)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("手机13812345678", [("phone", "13812345678", "13812345678")]),
        ("+86 138-1234-5678", [("phone", "13812345678", "+86 138-1234-5678")]),
        (f"身份证{VALID_ID}", [("id_card", VALID_ID, VALID_ID)]),
        ("身份证11010519491231002x", [("id_card", "11010519491231002X", "11010519491231002x")]),
        ("身份证110101199003071234", []),  # wrong check digit: not an ID, and not an amount
        (f"卡号{CARD}", [("bank_card", CARD, CARD)]),
        ("卡号 6222 0212 3456 7890 128", [("bank_card", CARD, "6222 0212 3456 7890 128")]),
        ("1234567890123456", []),
    ],
)
def test_personal_data(text: str, expected: list[tuple[str, object, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("给我老婆买", "spouse", "老婆"),
        ("我爱人", "spouse", "爱人"),
        ("我老公的保单", "spouse", "老公"),
        ("我儿子", "child", "儿子"),
        ("孩子的教育金", "child", "孩子"),
        ("我爸妈", "parent", "爸妈"),
        ("我妈", "parent", "妈"),
        ("父亲", "parent", "父亲"),
        ("外婆住院了", "grandparent", "外婆"),
        ("孙女", "grandchild", "孙女"),
        ("我姐姐", "sibling", "姐姐"),
        ("我哥", "sibling", "哥"),
    ],
)
def test_relations(text: str, value: str, surface: str) -> None:
    assert _found(text) == [("relation", value, surface)]


@pytest.mark.parametrize("text", ["帅哥你好", "王小姐", "哥们帮个忙", "我自己"])
def test_not_relations(text: str) -> None:
    assert _found(text) == []


def test_time_is_an_iso_string_with_offset() -> None:
    assert _found("明天下午三点前回复您") == [
        ("time", "2026-11-24T15:00:00+08:00", "明天下午三点前"),
    ]


def test_a_whole_request() -> None:
    text = "我老婆的保单CC2024000123明天下午三点前交一万二，电话13812345678"
    assert _found(text) == [
        ("relation", "spouse", "老婆"),
        ("policy_no", "CC2024000123", "CC2024000123"),
        ("time", "2026-11-24T15:00:00+08:00", "明天下午三点前"),
        ("amount", 12000, "一万二"),
        ("phone", "13812345678", "13812345678"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "电话13812345678元",
        "保单号13812345678",
        f"身份证{VALID_ID}，保费5000元，卡{CARD}",
        "2026-11-23 15:00:00 到账12000元",
        "十点一刻给我回个电话，一万二",
        "MsgId 24387694532187650123 金额5千",
    ],
)
def test_spans_never_overlap(text: str) -> None:
    entities: list[Entity] = extract_entities(text, NOW)
    spans = sorted((e.start, e.end) for e in entities)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))


def test_no_amount_is_read_out_of_a_phone_number() -> None:
    assert _found("电话13812345678元") == [("phone", "13812345678", "13812345678")]
