"""How numbers, dates and times are shown to Chinese readers (Asia/Shanghai); shared by every
package, so it sits at the bottom layer."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def money(value: Decimal | float | None) -> str:
    return "-" if value is None else f"{Decimal(value):,.2f}"


def day(value: date | None) -> str:
    return "-" if value is None else f"{value.year}年{value.month}月{value.day}日"


def moment(value: datetime | None, tz: ZoneInfo = SHANGHAI) -> str:
    if value is None:
        return "-"
    local = value.astimezone(tz)
    return f"{local.month}月{local.day}日 {local:%H:%M}"
