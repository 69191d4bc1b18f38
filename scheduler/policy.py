"""The scheduler's configuration: the ladder, working time, the digest hour and the risk-status
rules. bot/scheduling.py reads and checks it from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.catalog import Grade
from models.escalation import Ladder

STATUSES = ("高", "中", "低")


@dataclass(frozen=True)
class WorkCalendar:
    """Working time in the plant's time zone: working days (weekends, holidays, 调休) outside
    quiet hours. Only routine reminders look at it."""

    tz: ZoneInfo
    quiet_start: time = time(22)
    quiet_end: time = time(7)
    weekend: frozenset[int] = frozenset({6, 7})
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

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


@dataclass(frozen=True)
class RiskRule:
    status: str
    reason: str
    grade: Grade | None = None
    open: bool = False
    within_days: int | None = None
    at_least: int | None = None
    at_most: int | None = None

    def holds(self, count: int) -> bool:
        if self.at_least is not None:
            return count >= self.at_least
        if self.at_most is not None:
            return count <= self.at_most
        return True


@dataclass(frozen=True)
class Policy:
    tz: ZoneInfo
    ladder: Ladder
    calendar: WorkCalendar
    digest_time: time
    risk_rules: tuple[RiskRule, ...]
    audit_grace: timedelta
    tick: timedelta
