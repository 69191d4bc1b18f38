"""The scheduler's configuration: the ladder, working time, the digest hour and the risk-status
rules. bot/scheduling.py reads and checks it from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from zoneinfo import ZoneInfo

from models.calendar import WorkCalendar
from models.catalog import Grade
from models.escalation import Ladder

STATUSES = ("高", "中", "低")


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
