"""Intent engine: resolve Chinese time expressions ("明天下午三点前") to Asia/Shanghai datetimes.

No offline date-NLP library handles colloquial Chinese, so this is a small table-driven parser:
an expression is [date] [period of day] [clock] [前], or a relative offset ("半小时后", "过两天").
Dialect and informal forms are words in the tables (明儿个, 后儿, 晌午, 下班前, 下礼拜三), plus
dotted or slashed dates ("11.25", "12/5") and a few fixed holidays (元旦, 五一, 国庆).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.nlu.numerals import cn_number
from storage.pii import fold_width

TZ_NAME = "Asia/Shanghai"

# word -> (days from today, implied period of day)
_REL_DAYS: dict[str, tuple[int, str | None]] = {
    "大后天": (3, None), "后天": (2, None), "明天": (1, None), "明日": (1, None),
    "今天": (0, None), "今日": (0, None), "昨天": (-1, None), "前天": (-2, None),
    "今晚": (0, "晚上"), "今早": (0, "早上"), "明早": (1, "早上"), "明晚": (1, "晚上"),
    "昨晚": (-1, "晚上"),
    # northern and spoken forms
    "明儿个": (1, None), "明个儿": (1, None), "明儿": (1, None), "明个": (1, None),
    "赶明儿": (1, None), "明后天": (1, None), "今儿个": (0, None), "今个儿": (0, None),
    "今儿": (0, None), "今个": (0, None), "后儿个": (2, None), "后儿": (2, None),
    "大后儿个": (3, None), "大后儿": (3, None), "昨儿个": (-1, None), "昨儿": (-1, None),
    "前儿个": (-2, None),
}  # fmt: skip
# fixed-date holidays: (month, day), the next one from today
_HOLIDAYS = {"元旦": (1, 1), "五一": (5, 1), "劳动节": (5, 1), "国庆": (10, 1), "国庆节": (10, 1)}
# period -> default hour when no clock is given
_PERIOD_HOUR = {
    "凌晨": 3, "早上": 8, "早晨": 8, "上午": 9, "中午": 12, "下午": 14, "傍晚": 18,
    "晚上": 19, "夜里": 22,
    # spoken and dialect periods; 下班 / 上班: the end and start of the working day
    "一大早": 8, "一早": 8, "大清早": 8, "清早": 8, "头午": 9, "前晌": 9, "上晌": 9,
    "晌午": 12, "后晌": 14, "下晌": 14, "傍黑": 18, "擦黑": 18, "下班": 18, "上班": 9,
    "晚间": 19, "半夜": 23,
}  # fmt: skip
_PM_PERIODS = {"下午", "傍晚", "晚上", "夜里", "后晌", "下晌", "傍黑", "擦黑", "下班", "晚间",
               "半夜", "晚"}
# 早 / 晚 alone are a period only right before a clock ("晚八点", "早8点")
_SHORT_PERIOD_HOUR = {"早": 8, "晚": 19}
# Traditional characters that time words use, one for one so offsets hold (點 -> 点).
_TIME_T2S = str.maketrans("點禮後兒鐘週號時個兩幾過頭", "点礼后儿钟周号时个两几过头")
# A dotted or slashed month.day is no date when a unit or another number follows (3.5万, 2.5%).
_NOT_DATE_NEXT = "0-9A-Za-z%％万千百元块倍个岁斤米公升克分点条项节章.．"
_WEEKDAY = (
    {c: i for i, c in enumerate("一二三四五六日")}
    | {"天": 6, "末": 5}
    | {str(i + 1): i for i in range(7)}
)
_UNIT_MINUTES = {"分钟": 1, "分": 1, "小时": 60, "钟头": 60}
_UNIT_DAYS = {"天": 1, "日": 1, "周": 7, "星期": 7, "礼拜": 7}
# "两点建议": 点 counts items, not hours, when one of these follows
_NOT_CLOCK_NEXT = {"建议", "意见", "问题", "内容", "原因", "需要", "说明", "注意", "疑问", "要求"}
_DAY_HOUR = 9  # a bare date means the start of the working day
_EDGE_HOUR = 18  # 月底 / 年底: close of business on the last day

_CN = "零〇一二两三四五六七八九十"
_N = rf"(?:[0-9]{{1,2}}|[{_CN}]{{1,3}})"
_MREF = r"下个?月|这个?月|本月"


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation, longest first, so 大后儿个 wins over 后儿."""
    return "|".join(sorted(words, key=len, reverse=True))


_TIME_RE = re.compile(
    rf"""(?:(?<![0-9])|(?![0-9]))(?:  # never start inside a number
      (?P<rel>(?P<rn>[0-9]{{1,4}}|[{_CN}百]{{1,5}}|半)(?P<rhalf>个?半)?个?
         (?P<ru>分钟|分|小时|钟头|天|日|周|星期|礼拜|月|年)(?:以后|之后|后))
    | (?P<pass>过|再过)(?P<pn>[0-9]{{1,2}}|[{_CN}]{{1,3}})个?(?P<pu>天|礼拜|星期|周)(?!前|后|以)
    | (?P<rday>{_alternation(_REL_DAYS)})
    | (?P<hol>{_alternation(_HOLIDAYS)})
    | (?P<wpre>下下个?|下个?|上个?|这个?|本)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7末])?
    | (?P<iy>[0-9]{{4}})[-/.](?P<im>[0-9]{{1,2}})[-/.](?P<id>[0-9]{{1,2}})(?![0-9])
    | (?<![0-9A-Za-z.．/])(?P<dm>1[0-2]|0?[1-9])[./](?P<dd>3[01]|[12][0-9]|0?[1-9])[日号]?
      (?![{_NOT_DATE_NEXT}])
    | (?:(?P<y>[0-9]{{4}})年)?(?P<m>{_N})月(?P<d>{_N})[日号]
    | (?P<mref>{_MREF})?(?P<bd>{_N})[日号]
    | (?:(?P<eref>{_MREF})月?|(?P<em>{_N})?月)(?P<edge>[底末初])
    | (?P<yedge>年[底末])
    | (?P<mnext>下个?月)
    )?
    \s*(?:(?P<period>{_alternation(_PERIOD_HOUR)})
      |(?P<speriod>[早晚])(?=\s*(?:[0-9]{{1,2}}|[{_CN}]{{1,3}})[点时:：]))?
    \s*(?:
      (?P<hh>[0-9]{{1,2}})[:：](?P<mi>[0-9]{{2}})(?::[0-9]{{2}})?(?![0-9])
    | (?:(?P<h>{_N})点钟?|(?P<h2>[0-9]{{1,2}})时)
      (?:(?P<half>半)|(?P<q>[一三123])刻|整|(?P<min>{_N})分?)?
    )?
    (?P<dl>之前|以前|前)?""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class TimeMatch:
    """A time expression found in text and the moment it means."""

    start: int
    end: int
    surface: str
    value: datetime


def _num(s: str) -> int:
    """'15', '十五', '两' -> int; raises ValueError on anything else."""
    value = int(s) if s.isdigit() else cn_number(s)
    if value != int(value):
        raise ValueError(s)
    return int(value)


def _month_start(d: date, months: int) -> date:
    """First day of the month `months` after d's month."""
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_end(d: date) -> date:
    """Last day of d's month."""
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def _mref_offset(mref: str | None) -> int:
    """下个月 -> 1, 这个月/本月 -> 0."""
    return 1 if mref and mref.startswith("下") else 0


def _date_part(m: re.Match[str], now: datetime) -> tuple[date, int | None, str | None] | None:
    """(date, default hour, implied period) for the date part, or None if there is none."""
    today = now.date()
    g = m.groupdict()
    if g["rday"]:
        days, period = _REL_DAYS[g["rday"]]
        return today + timedelta(days=days), None, period
    if g["pass"]:  # 过两天 / 再过一个礼拜
        return today + timedelta(days=_num(g["pn"]) * _UNIT_DAYS[g["pu"]]), None, None
    if g["hol"]:
        month, day_of_month = _HOLIDAYS[g["hol"]]
        day = date(today.year, month, day_of_month)
        return (day if day >= today else day.replace(year=today.year + 1)), None, None
    if g["dm"]:  # 11.25 / 12/5: this year, next year once it is past
        day = date(today.year, int(g["dm"]), int(g["dd"]))
        return (day if day >= today else day.replace(year=today.year + 1)), None, None
    if g["mnext"]:
        return _month_start(today, 1), None, None
    if g["wd"] or (g["wpre"] or "").startswith("下"):
        idx = _WEEKDAY[g["wd"]] if g["wd"] else 0
        monday = today - timedelta(days=today.weekday())
        pre = g["wpre"] or ""
        if pre.startswith("下"):
            return monday + timedelta(days=(14 if pre.startswith("下下") else 7) + idx), None, None
        if pre.startswith("上"):
            return monday + timedelta(days=idx - 7), None, None
        return today + timedelta(days=(idx - today.weekday()) % 7), None, None
    if g["iy"]:
        return date(int(g["iy"]), int(g["im"]), int(g["id"])), None, None
    if g["m"]:
        day = date(int(g["y"]) if g["y"] else today.year, _num(g["m"]), _num(g["d"]))
        if not g["y"] and day < today:
            day = day.replace(year=today.year + 1)
        return day, None, None
    if g["bd"]:
        offset = _mref_offset(g["mref"])
        if not g["mref"] and _num(g["bd"]) < today.day:
            offset = 1
        return _month_start(today, offset).replace(day=_num(g["bd"])), None, None
    if g["edge"]:
        if g["em"]:  # 12月底: that month this year, next year once it is over
            first = date(today.year, _num(g["em"]), 1)
            first = first if _month_end(first) >= today else first.replace(year=today.year + 1)
        elif g["edge"] == "初":  # 月初 on the 1st is today, later it is next month's
            first = _month_start(today, _mref_offset(g["eref"]) if g["eref"] else today.day != 1)
        else:
            first = _month_start(today, _mref_offset(g["eref"]))
        if g["edge"] == "初":
            return first, None, None
        return _month_end(first), _EDGE_HOUR, None
    if g["yedge"]:
        return date(today.year, 12, 31), _EDGE_HOUR, None
    return None


def _clock_part(m: re.Match[str]) -> tuple[int, int] | None:
    """(hour, minute) as written, before 下午/晚上 shifts it, or None."""
    g = m.groupdict()
    if g["hh"]:
        return int(g["hh"]), int(g["mi"])
    if not (g["h"] or g["h2"]):
        return None
    minute = 30 if g["half"] else 15 * _num(g["q"]) if g["q"] else _num(g["min"] or "0")
    return _num(g["h"] or g["h2"]), minute


def _relative(m: re.Match[str], now: datetime) -> datetime | date:
    """半小时后 / 3天后 / 两个月后: minutes and hours are exact, days and longer give a date."""
    g = m.groupdict()
    n = 0.5 if g["rn"] == "半" else float(_num(g["rn"]))
    n += 0.5 if g["rhalf"] else 0.0
    unit = g["ru"]
    if unit in _UNIT_MINUTES:
        return now + timedelta(minutes=round(n * _UNIT_MINUTES[unit]))
    if unit in _UNIT_DAYS:
        return now.date() + timedelta(days=round(n * _UNIT_DAYS[unit]))
    if unit == "月" and n != int(n):  # 半个月 / 一个半月: thirty days a month
        return now.date() + timedelta(days=round(n * 30))
    months = round(n * (12 if unit == "年" else 1))
    start = _month_start(now.date(), months)
    return start.replace(day=min(now.day, _month_end(start).day))


def _resolve(m: re.Match[str], now: datetime) -> datetime | None:
    """The moment one regex match means, or None when it is not a time after all."""
    tz = now.tzinfo
    if m.group("rel"):
        rel = _relative(m, now)
        if isinstance(rel, datetime):
            return rel
        return datetime.combine(rel, time(_DAY_HOUR), tzinfo=tz)
    part = _date_part(m, now)
    period = m.group("period") or m.group("speriod") or (part[2] if part else None)
    clock = _clock_part(m)
    if part is None and period is None and clock is None:
        return None
    if clock is None:
        default = (part[1] if part else None) or _DAY_HOUR
        hour = (_PERIOD_HOUR | _SHORT_PERIOD_HOUR)[period] if period else default
        minute, extra_days = 0, 0
    else:
        hour, minute = clock
        if not (0 <= hour <= 24 and 0 <= minute < 60):
            return None
        if period is None and m.group("hh") is None and 1 <= hour <= 6:
            hour += 12  # a bare "三点" in a service chat is the afternoon, not 3 a.m.
        elif (period in _PM_PERIODS and hour < 12) or (period == "中午" and hour < 3):
            hour += 12
        elif period in {"晚上", "夜里", "晚"} and hour == 12:
            hour = 24
        elif period == "凌晨" and hour == 12:
            hour = 0
        extra_days, hour = divmod(hour, 24)
    day = part[0] if part else now.date()
    value = datetime.combine(day + timedelta(days=extra_days), time(hour, minute), tzinfo=tz)
    if part is None and clock is not None and value < now:
        value += timedelta(days=1)  # "三点前回复" said at 16:00 means tomorrow
    return value


def resolve_time(text: str, now: datetime) -> list[TimeMatch]:
    """All time expressions in text, resolved against now; naive now is taken as Shanghai time."""
    tz = ZoneInfo(TZ_NAME)
    now = (now.astimezone(tz) if now.tzinfo else now.replace(tzinfo=tz)).replace(
        second=0, microsecond=0
    )
    found: list[TimeMatch] = []
    for m in _TIME_RE.finditer(fold_width(text).translate(_TIME_T2S)):
        surface = m.group().strip()
        if surface in {"", "前", "之前", "以前", "一点"}:
            continue  # "快一点" is not one o'clock
        if surface == f"{m.group('h')}点" and text[m.end() : m.end() + 2] in _NOT_CLOCK_NEXT:
            continue  # "两点建议" counts points
        try:
            value = _resolve(m, now)
        except (ValueError, KeyError):  # 2月30号, 25点, a malformed numeral
            continue
        if value is not None:
            start = m.start() + len(m.group()) - len(m.group().lstrip())
            end = start + len(surface)
            found.append(TimeMatch(start, end, text[start:end], value))
    return found
