"""Pure rules: complaint risk, business hours (incl. 2027 without calendar data), ratings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from escalation.hours import BusinessCalendar
from escalation.policy import EscalationPolicy
from escalation.ratings import parse_rating
from escalation.risk import assess
from storage.enums import Priority

SH = ZoneInfo("Asia/Shanghai")


def test_threat_words_are_urgent_at_once() -> None:
    for text in ("我要去12378投诉你们", "再不处理我就找媒体曝光", "我已经请了律师", "你们这是骗人"):
        assert assess(text).urgent, text


def test_anger_and_being_ignored_add_up_to_urgent() -> None:
    assert assess("怎么还没人理我！！！").level == Priority.HIGH
    assert assess("在吗", unanswered=3).level == Priority.HIGH
    assert assess("怎么还没人理我！！！", unanswered=3).urgent
    assert assess("好的，谢谢").level is None


def test_chinese_holidays_and_working_hours() -> None:
    cal = BusinessCalendar(EscalationPolicy())
    assert cal.off_duty_reason(datetime(2026, 10, 1, 10, tzinfo=SH)) == "holiday"  # 国庆
    assert cal.off_duty_reason(datetime(2026, 3, 2, 10, tzinfo=SH)) is None  # a Monday
    assert cal.off_duty_reason(datetime(2026, 3, 2, 20, tzinfo=SH)) == "off_hours"


def test_2027_without_calendar_data_falls_back_to_weekends_and_the_file(tmp_path: Path) -> None:
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("# 2027 春节\n2027-02-08\nnot-a-date\n2027-02-20 workday\n")
    cal = BusinessCalendar(EscalationPolicy(holiday_file=holidays))
    assert cal.is_workday(date(2027, 1, 4))  # a Monday: no crash, a workday
    assert not cal.is_workday(date(2027, 1, 9))  # a Saturday
    assert not cal.is_workday(date(2027, 2, 8))  # from the file
    assert cal.is_workday(date(2027, 2, 20))  # a make-up Saturday from the file
    missing = BusinessCalendar(EscalationPolicy(holiday_file=tmp_path / "none.txt"))
    assert missing.on_duty(datetime(2027, 3, 1, 10, tzinfo=SH))


def test_business_minutes_skip_nights_weekends_and_holidays() -> None:
    cal = BusinessCalendar(EscalationPolicy(work_start=time(9), work_end=time(18)))
    friday_late = datetime(2026, 3, 6, 17, 0, tzinfo=SH)
    assert cal.add_business_minutes(friday_late, 120) == datetime(2026, 3, 9, 10, 0, tzinfo=SH)
    before_national_day = datetime(2026, 9, 30, 17, 30, tzinfo=SH)
    due = cal.add_business_minutes(before_national_day, 60)
    assert due.astimezone(SH).date() > date(2026, 10, 7)
    assert cal.add_business_minutes(datetime(2026, 3, 2, 2, tzinfo=UTC), 30).tzinfo is not None


def test_rating_answers() -> None:
    assert parse_rating("5") == 5
    assert parse_rating("@小助手 4分") == 4
    assert parse_rating("打五分！") == 5
    assert parse_rating("５") == 5
    assert parse_rating("6") is None
    assert parse_rating("我明天5点到") is None


def test_anger_between_family_members_is_no_complaint() -> None:
    for text in ("你别冲动", "你别冲动！！！", "老公你别说了！！！", "妈 您别生气了 对身体不好",
                 "爸 你别冲动 跟人家好好说", "你俩别吵了", "孩子作业又没写完 气死我了！！！"):
        assert assess(text, unanswered=4).level is None, text
    for text in ("大家注意防骗 别乱点链接", "那个骗子电话又打来了"):
        assert assess(text).level is None, text


def test_anger_aimed_at_us_counts() -> None:
    for text in ("你们这什么破公司", "你们就是骗子", "客服态度太恶劣了", "理赔拖成这样 简直欺负人"):
        assert assess(text).urgent, text
    assert assess("人呢！！！", unanswered=3).urgent
    assert assess("妈的保单你们到底还赔不赔！！！").level == Priority.HIGH
