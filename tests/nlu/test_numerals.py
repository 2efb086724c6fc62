"""Chinese numerals as our extractors meet them (the same answers cn2an's smart mode gave)."""

import pytest

from bot.nlu.numerals import cn_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("一万二", 12000), ("三千五", 3500), ("两百五", 250), ("一百零五", 105), ("十五", 15),
        ("十", 10), ("二十", 20), ("两万", 20000), ("1.2万", 12000), ("3万5", 35000),
        ("5千", 5000), ("一千二百三十四", 1234), ("一亿两千万", 120_000_000), ("两", 2),
        ("零", 0), ("九十九", 99), ("一万零五百", 10500), ("十二", 12), ("三十一", 31),
        ("4万", 40000), ("2千5", 2500), ("0.5万", 5000), ("〇", 0), ("二十五", 25),
        ("二零二六", 2026), ("一零零", 100), ("1零", 10),
    ],
)  # fmt: skip
def test_numerals(text: str, expected: int) -> None:
    assert cn_number(text) == expected


@pytest.mark.parametrize("text", ["", "万", "一点五万", "千百", "百", "五十十", "abc", "十万亿x"])
def test_not_one_numeral(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        cn_number(text)
