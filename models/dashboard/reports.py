"""The months the monthly reports can be built for: those in which tickets were filed."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from models.hazard import Status, hazards

MONTHS_LISTED = 120          # ten years, the newest first


async def months_with_tickets(tz: ZoneInfo) -> list[str]:
    """YYYY-MM of each month with a hazard filed in it, the newest first. The first and the last
    are read, then each month in it asked whether it has one (an index probe each):
    grouping by a local month would need each database's own date functions."""
    filed = hazards().exclude(status=Status.DRAFT)
    first = await filed.order_by("created_at").first().values_list("created_at", flat=True)
    last = await filed.order_by("-created_at").first().values_list("created_at", flat=True)
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        return []
    months = []
    year, month = last.astimezone(tz).year, last.astimezone(tz).month
    stop = first.astimezone(tz)
    while (year, month) >= (stop.year, stop.month) and len(months) < MONTHS_LISTED:
        start = datetime(year, month, 1, tzinfo=tz).astimezone(UTC)
        following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz).astimezone(UTC)
        if await filed.filter(created_at__gte=start, created_at__lt=following).exists():
            months.append(f"{year}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months
