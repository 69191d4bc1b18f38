"""config/inspection.toml, as the handlers and the scheduler use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from models.inspection.sites import Frequency

# How often, most often first: a route over areas of different risk is walked as its riskiest
# area needs.
OFTEN = (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY)


def _by_status() -> dict[str, Frequency]:
    return {"高": Frequency.DAILY, "中": Frequency.WEEKLY, "低": Frequency.MONTHLY,
            "": Frequency.MONTHLY}


def _by_color() -> dict[str, Frequency]:
    return {"红": Frequency.DAILY, "橙": Frequency.WEEKLY, "黄": Frequency.MONTHLY,
            "蓝": Frequency.MONTHLY}


@dataclass(frozen=True)
class InspectionRules:
    # `frequency = "by-risk"`: by the areas' dynamic status (高/中/低, "" before the first) and
    # by their inherent colour (四色); the more frequent of the two wins.
    by_status: dict[str, Frequency] = field(default_factory=_by_status)
    by_color: dict[str, Frequency] = field(default_factory=_by_color)
    remind_before: timedelta = timedelta(minutes=30)   # a round not done is reminded then
    late: timedelta = timedelta(hours=2)    # after the window a round may still be finished, late
    suspicious_seconds: int = 20    # a round whose mean time between checkpoints is less: flagged
    compact_max: int = 6            # 正常/异常 items asked together on one card, at most

    def frequency(self, statuses: list[tuple[str, str]]) -> Frequency:
        """For a by-risk plan whose route passes areas of (dynamic status, colour)."""
        found = [self.by_status.get(s, Frequency.MONTHLY) for s, _ in statuses]
        found += [self.by_color.get(c, Frequency.MONTHLY) for _, c in statuses]
        return min(found or [Frequency.MONTHLY], key=OFTEN.index)
