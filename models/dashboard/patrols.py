"""The inspection page's figures: coverage over the last days by route and by area (done, late,
missed: the monthly report's own count, over another window) and the newest rounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from models.inspection.figures import MonthFigures, month_figures
from models.inspection.rounds import Round, RoundStatus
from models.org import user_names

ROUNDS_SHOWN = 20


@dataclass(frozen=True)
class RoundRow:
    id: int
    route: str
    period: str
    opens_at: datetime
    closes_at: datetime
    status: str                  # as people read it: 进行中 / 已完成 / 逾期完成 / 漏检
    late: bool
    patrollers: str
    finished_at: datetime | None


async def coverage(now: datetime, days: int, suspicious_seconds: int) -> MonthFigures:
    """The rounds whose window closed in the last `days`."""
    return await month_figures(now - timedelta(days=days), now, suspicious_seconds)


async def newest_rounds(limit: int = ROUNDS_SHOWN) -> list[RoundRow]:
    rows = await Round.all().order_by("-opens_at", "-id").limit(limit)
    names = await user_names({p for r in rows for p in r.patrollers})
    return [RoundRow(r.id, r.route_name, r.period, r.opens_at, r.closes_at, r.status.label,
                     r.status in (RoundStatus.LATE, RoundStatus.MISSED),
                     "、".join(names.get(p, p) for p in r.patrollers), r.finished_at)
            for r in rows]
