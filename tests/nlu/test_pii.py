"""PII masking: what must disappear from stored chat text, and what must stay readable."""

import pytest

from storage.pii import find_pii, is_valid_id_card, luhn_ok, mask

VALID_ID = "110101199003071233"
LUHN_ID = "110101199003070054"  # a valid ID that also passes Luhn
CARD = "6222021234567890128"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我身份证110101199003071233", "我身份证110***********1233"),
        ("我身份证110101199003071234", "我身份证110***********1234"),  # wrong check digit
        ("身份证 11010119900307123x 谢谢", "身份证 110***********123X 谢谢"),
        ("110101 1990 0307 1233", "110***********1233"),
        ("110101-19900307-1233", "110***********1233"),
        ("身份证号：110101900307123", "身份证号：110********7123"),
        ("电话13812345678。", "电话138****5678。"),
        ("+86 138-1234-5678", "+86 138****5678"),
        ("138 1234 5678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("0086 13812345678", "0086 138****5678"),
        ("手机１３８１２３４５６７８", "手机138****5678"),
        ("卡号 6222 0212 3456 7890 128", "卡号 6222****0128"),
        ("卡号6222021234567890128", "卡号6222****0128"),
        ("4111-1111-1111-1111", "4111****1111"),
        ("卡号６２２２０２１２３４５６７８９０１２８", "卡号6222****0128"),
    ],
)
def test_personal_numbers_are_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1234567890123456",  # 16 digits failing Luhn: a MsgId or order number
        "24387694532187650123",  # 20-digit MsgId: no part of it is a card or phone
        "MsgId 243876945321876501234567",
        "保单CC2024000123",
        "P20240001234567",
        "请拨打400-820-8888",
        "95519 或 12378",
        "2026-11-23 15:00:00",
        "20261123",
        "保费12000元",
        "保额1.2万",
        "交易号 20241123138123456789",
        "订单123138123456789",
        "金额0.13812345678",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask(text) == text
    assert find_pii(text) == []


def test_matches_carry_kind_positions_and_digits() -> None:
    text = f"我叫王建国，电话+86 138-1234-5678，身份证{VALID_ID}，卡{CARD}"
    found = find_pii(text)
    assert [m.kind for m in found] == ["phone", "id_card", "bank_card"]
    assert [m.digits for m in found] == ["13812345678", VALID_ID, CARD]
    for m in found:
        assert text[m.start : m.end] == m.raw


def test_id_card_wins_over_bank_card_when_both_fit() -> None:
    assert luhn_ok(LUHN_ID)
    (match,) = find_pii(LUHN_ID)
    assert match.kind == "id_card"


def test_full_width_positions_match_the_original_text() -> None:
    text = "号码：１３８１２３４５６７８"
    (match,) = find_pii(text)
    assert (match.start, match.end) == (3, 14)
    assert match.raw == "１３８１２３４５６７８"
    assert match.digits == "13812345678"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VALID_ID, True),
        ("110101199003071234", False),  # check digit
        ("110101199002301233", False),  # 30 February
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110101 1990 0307 1233", True),
        ("110101900307123", True),  # legacy 15 digits: date only
        ("1101011990030712", False),
    ],
)
def test_is_valid_id_card(value: str, expected: bool) -> None:
    assert is_valid_id_card(value) is expected


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        (CARD, True),
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("1234567890123456", False),
        ("", False),
        ("6222 0212", False),
    ],
)
def test_luhn(digits: str, expected: bool) -> None:
    assert luhn_ok(digits) is expected
