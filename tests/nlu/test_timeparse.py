"""Chinese time expressions, resolved the way a customer in Shanghai means them."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.nlu.timeparse import resolve_time

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # Monday 23 November 2026, 10:00
WEDNESDAY_10 = datetime(2026, 11, 25, 10, 0, tzinfo=SH)


def _one(text: str, now: datetime) -> str:
    (match,) = resolve_time(text, now)
    return match.value.isoformat()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("明天下午三点", "2026-11-24T15:00:00+08:00"),
        ("明天下午三点前回复您", "2026-11-24T15:00:00+08:00"),
        ("后天", "2026-11-25T09:00:00+08:00"),
        ("大后天上午10点", "2026-11-26T10:00:00+08:00"),
        ("昨天", "2026-11-22T09:00:00+08:00"),
        ("今晚8点", "2026-11-23T20:00:00+08:00"),
        ("今晚", "2026-11-23T19:00:00+08:00"),
        ("明早", "2026-11-24T08:00:00+08:00"),
        ("明晚", "2026-11-24T19:00:00+08:00"),
        ("晚上8点", "2026-11-23T20:00:00+08:00"),
        ("下午三点", "2026-11-23T15:00:00+08:00"),
        ("下午两点半", "2026-11-23T14:30:00+08:00"),
        ("中午", "2026-11-23T12:00:00+08:00"),
        ("中午1点", "2026-11-23T13:00:00+08:00"),
        ("早上", "2026-11-23T08:00:00+08:00"),
        ("晚上12点", "2026-11-24T00:00:00+08:00"),
        ("十点一刻", "2026-11-23T10:15:00+08:00"),
        ("十点三刻", "2026-11-23T10:45:00+08:00"),
        ("三点半", "2026-11-23T15:30:00+08:00"),  # a bare 1-6 o'clock is the afternoon
        ("两点", "2026-11-23T14:00:00+08:00"),
        ("三点十分", "2026-11-23T15:10:00+08:00"),
        ("11点", "2026-11-23T11:00:00+08:00"),
        ("8点半", "2026-11-24T08:30:00+08:00"),  # already past today: tomorrow
        ("凌晨两点", "2026-11-24T02:00:00+08:00"),
        ("15:00", "2026-11-23T15:00:00+08:00"),
        ("１５：３０", "2026-11-23T15:30:00+08:00"),
        ("下午5点前", "2026-11-23T17:00:00+08:00"),
        ("下周一", "2026-11-30T09:00:00+08:00"),
        ("下周三下午3点", "2026-12-02T15:00:00+08:00"),
        ("下下周三", "2026-12-09T09:00:00+08:00"),
        ("周五", "2026-11-27T09:00:00+08:00"),
        ("这周五", "2026-11-27T09:00:00+08:00"),
        ("本周五", "2026-11-27T09:00:00+08:00"),
        ("周一", "2026-11-23T09:00:00+08:00"),  # today is Monday
        ("星期三", "2026-11-25T09:00:00+08:00"),
        ("礼拜三", "2026-11-25T09:00:00+08:00"),
        ("星期天", "2026-11-29T09:00:00+08:00"),
        ("月底前", "2026-11-30T18:00:00+08:00"),
        ("下个月底", "2026-12-31T18:00:00+08:00"),
        ("月初", "2026-12-01T09:00:00+08:00"),
        ("年底", "2026-12-31T18:00:00+08:00"),
        ("半小时后", "2026-11-23T10:30:00+08:00"),
        ("20分钟后", "2026-11-23T10:20:00+08:00"),
        ("两个小时后", "2026-11-23T12:00:00+08:00"),
        ("一个半小时后", "2026-11-23T11:30:00+08:00"),
        ("3天后", "2026-11-26T09:00:00+08:00"),
        ("三天以后", "2026-11-26T09:00:00+08:00"),
        ("一周后", "2026-11-30T09:00:00+08:00"),
        ("12月5号", "2026-12-05T09:00:00+08:00"),
        ("12月5日下午3点", "2026-12-05T15:00:00+08:00"),
        ("十二月五号", "2026-12-05T09:00:00+08:00"),
        ("11月1日", "2027-11-01T09:00:00+08:00"),  # already passed this year
        ("2026年12月5日", "2026-12-05T09:00:00+08:00"),
        ("2026-12-05", "2026-12-05T09:00:00+08:00"),
        ("2026-11-23 15:00:00", "2026-11-23T15:00:00+08:00"),
        ("30号", "2026-11-30T09:00:00+08:00"),
        ("5号", "2026-12-05T09:00:00+08:00"),  # the 5th of this month is past
        ("下个月5号", "2026-12-05T09:00:00+08:00"),
    ],
)
def test_resolves_against_a_monday_morning(text: str, expected: str) -> None:
    assert _one(text, MONDAY_10) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("下周一", "2026-11-30T09:00:00+08:00"),
        ("周一", "2026-11-30T09:00:00+08:00"),
        ("这周五", "2026-11-27T09:00:00+08:00"),
        ("上周五", "2026-11-20T09:00:00+08:00"),
        ("下周日", "2026-12-06T09:00:00+08:00"),
        ("周三", "2026-11-25T09:00:00+08:00"),  # today
    ],
)
def test_weekdays_from_a_wednesday(text: str, expected: str) -> None:
    assert _one(text, WEDNESDAY_10) == expected


def test_one_minute_before_midnight() -> None:
    now = datetime.fromisoformat("2026-11-23T23:59:00+08:00")
    assert _one("明天下午三点", now) == "2026-11-24T15:00:00+08:00"


def test_now_given_in_utc_is_read_as_shanghai_time() -> None:
    now = datetime(2026, 11, 23, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    (match,) = resolve_time("明天下午三点", now)
    assert match.value.isoformat() == "2026-11-24T15:00:00+08:00"
    assert match.value.utcoffset() == timedelta(hours=8)


def test_naive_now_is_taken_as_shanghai_time() -> None:
    assert _one("明天", datetime(2026, 11, 23, 10, 0)) == "2026-11-24T09:00:00+08:00"


def test_across_the_year_end() -> None:
    now = datetime(2026, 12, 31, 20, 0, tzinfo=SH)
    assert _one("明天", now) == "2027-01-01T09:00:00+08:00"
    assert _one("月底", now) == "2026-12-31T18:00:00+08:00"
    assert _one("下周一", now) == "2027-01-04T09:00:00+08:00"


def test_surface_and_positions_index_the_given_text() -> None:
    text = "好的，明天下午三点前回复您"
    (match,) = resolve_time(text, MONDAY_10)
    assert match.surface == "明天下午三点前"
    assert text[match.start : match.end] == match.surface


def test_several_times_in_one_message() -> None:
    found = resolve_time("今天没空，明天或者周五下午都行", MONDAY_10)
    assert [m.surface for m in found] == ["今天", "明天", "周五下午"]


@pytest.mark.parametrize(
    "text",
    [
        "快一点好吗",
        "我有两点建议",
        "保单CC2024000123",
        "保费12000元",
        "日后再说",
        "2月30号",
        "25点",
        "请拨打95519",
        "一点都不清楚",
    ],
)
def test_not_a_time(text: str) -> None:
    assert resolve_time(text, MONDAY_10) == []
