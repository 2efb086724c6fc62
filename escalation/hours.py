"""Business hours: Chinese working days (chinesecalendar, else weekends + a holiday file)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import chinese_calendar

from escalation.policy import EscalationPolicy

log = logging.getLogger(__name__)

MAX_DAYS_AHEAD = 400  # loop guard: no configuration can make a deadline search run forever


@dataclass(frozen=True)
class HolidayFile:
    """Extra days off and make-up working days: one ISO date a line, `workday` after a make-up
    day, `#` starts a comment. It wins over chinesecalendar, which only knows years it shipped."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


@lru_cache(maxsize=8)
def _parse_holiday_file(path: str, _mtime_ns: int) -> HolidayFile:
    holidays: set[date] = set()
    workdays: set[date] = set()
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        day_text, _, flag = line.partition(" ")
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            log.warning("holiday file %s line %d: %r is not a date; skipped", path, number, raw)
            continue
        (workdays if flag.strip() == "workday" else holidays).add(day)
    return HolidayFile(frozenset(holidays), frozenset(workdays))


def load_holiday_file(path: Path | None) -> HolidayFile:
    """Re-read when the file changes; a missing file means no extra days (and a warning)."""
    if path is None:
        return HolidayFile()
    try:
        return _parse_holiday_file(str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        log.warning("holiday file %s unreadable (%s): using weekends only", path, exc)
        return HolidayFile()


class BusinessCalendar:
    def __init__(self, policy: EscalationPolicy) -> None:
        self.policy = policy
        self.tz = policy.tz
        self.extra = load_holiday_file(policy.holiday_file)

    def is_workday(self, day: date) -> bool:
        if day in self.extra.workdays:
            return True
        if day in self.extra.holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            # chinesecalendar has no data for this year yet: weekends + the holiday file
            return day.weekday() < 5

    def off_duty_reason(self, moment: datetime) -> str | None:
        """None while agents are at work, else `holiday` (weekends too) or `off_hours`."""
        local = moment.astimezone(self.tz)
        if not self.is_workday(local.date()):
            return "holiday"
        if not self.policy.work_start <= local.time() < self.policy.work_end:
            return "off_hours"
        return None

    def on_duty(self, moment: datetime) -> bool:
        return self.off_duty_reason(moment) is None

    def add_business_minutes(self, start: datetime, minutes: int) -> datetime:
        """The moment `minutes` of working time after `start` (working time only counts)."""
        local = start.astimezone(self.tz)
        left = timedelta(minutes=minutes)
        for _ in range(MAX_DAYS_AHEAD):
            day_start = datetime.combine(local.date(), self.policy.work_start, tzinfo=self.tz)
            day_end = datetime.combine(local.date(), self.policy.work_end, tzinfo=self.tz)
            if self.is_workday(local.date()) and local < day_end:
                local = max(local, day_start)
                if local + left <= day_end:
                    return local + left
                left -= day_end - local
            local = datetime.combine(
                local.date() + timedelta(days=1), self.policy.work_start, tzinfo=self.tz
            )
        log.error("no working day within %d days of %s: using wall-clock time", MAX_DAYS_AHEAD,
                  start)
        return start + timedelta(minutes=minutes)
