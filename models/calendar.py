"""The plant's working calendar: which days are worked and when working time begins and ends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class WorkCalendar:
    """Working time in the plant's time zone: working days (weekends, holidays, 调休) outside
    quiet hours. Routine reminders wait for it; a 一般 ticket's deadline is counted in it."""

    tz: ZoneInfo
    quiet_start: time = time(22)
    quiet_end: time = time(7)
    weekend: frozenset[int] = frozenset({6, 7})
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    workday_end: time = time(17, 30)     # when a working day's 整改期限 falls

    def working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day not in self.holidays and day.isoweekday() not in self.weekend

    def _quiet_at(self, clock: time) -> bool:
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= clock < self.quiet_end
        return clock >= self.quiet_start or clock < self.quiet_end

    def opened_at(self, moment: datetime) -> datetime | None:
        """When the working time that `moment` falls in began; None in quiet time."""
        local = moment.astimezone(self.tz)
        if self._quiet_at(local.time()) or not self.working_day(local.date()):
            return None
        start = local.replace(hour=self.quiet_end.hour, minute=self.quiet_end.minute,
                              second=0, microsecond=0)
        return start if start <= local else start - timedelta(days=1)

    def deadline_after(self, moment: datetime, days: int) -> datetime:
        """The end of the working day `days` working days after `moment`'s day: plants set
        整改期限 as a date, and a report on Friday afternoon is not due on Monday morning."""
        day = moment.astimezone(self.tz).date()
        left = days
        while left > 0:
            day += timedelta(days=1)
            left -= self.working_day(day)
        return datetime.combine(day, self.workday_end, self.tz)


def reminder_window(due: date, today: date, days: Sequence[int]) -> int | None:
    """The reminder due today: the nearest of `days` before `due` that has begun, if any (the
    ones before it, missed on holidays, are not sent late)."""
    return next((d for d in sorted(days) if due - timedelta(days=d) <= today <= due), None)
