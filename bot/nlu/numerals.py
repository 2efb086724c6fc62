"""Intent engine: Chinese numerals as customers write them ("一万二", "3万5", "两百五") to numbers.

Only what our extractors feed it: Chinese digits with 十/百/千/万/亿, optionally mixed with Arabic
digits and a decimal point ("1.2万"). A digit right after a unit is the next unit down, as
people say it: 一万二 = 12000, 三千五 = 3500; after a 零 it is units again (一百零五 = 105).
"""

from __future__ import annotations

import re

_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10_000, "亿": 100_000_000}
_TOKEN_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?|.")


def cn_number(text: str) -> float:
    """'一万二' -> 12000.0; raises ValueError on anything that is not one numeral."""
    if not text:
        raise ValueError("empty numeral")
    if not any(c in _UNITS or c in _BIG for c in text):  # 二零二六, 1零: digit by digit
        digits = "".join(str(_DIGITS[c]) if c in _DIGITS else c for c in text)
        try:
            return float(digits)
        except ValueError:
            raise ValueError(f"not a numeral: {text!r}") from None
    total = 0.0  # everything above the current 万/亿 section
    section = 0.0  # the current section below 万
    num: float | None = None  # a digit waiting for its unit
    last_unit = 0  # the unit just before num, for 一万二 = 12000
    zero = False  # a 零 since the last unit: 一百零五 = 105
    biggest = 0
    for part in _TOKEN_RE.findall(text):
        if part[0].isdigit():
            if num is not None:
                raise ValueError(f"two numbers in a row in {text!r}")
            num = float(part)
        elif part in _DIGITS:
            if part in "零〇":
                zero = True
                continue
            if num is not None:
                raise ValueError(f"two digits in a row in {text!r}")
            num = float(_DIGITS[part])
        elif part in _UNITS:
            unit = _UNITS[part]
            if (num is None and (unit != 10 or section)) or (last_unit and unit >= last_unit):
                raise ValueError(f"misplaced {part} in {text!r}")  # 千百, 百, 五十十
            section += (1.0 if num is None else num) * unit
            num, last_unit, zero = None, unit, False
        elif part in _BIG:
            big = _BIG[part]
            section += num or 0.0
            if section == 0:
                raise ValueError(f"{part} without a number in {text!r}")
            if big > biggest:
                total, biggest = (total + section) * big, big
            else:
                total += section * big
            section, num, last_unit, zero = 0.0, None, big, False
        else:
            raise ValueError(f"not a numeral: {text!r}")
    if num is not None:
        if last_unit >= 10 and not zero and num < 10 and num == int(num):
            num *= last_unit // 10  # 一万二, 三千五, 两百五
        section += num
    return total + section
