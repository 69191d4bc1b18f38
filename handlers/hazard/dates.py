"""Dates people type for a deadline: 12月15日, 2026-12-15, 5天."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

_DATE = re.compile(r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?")
_DAYS = re.compile(r"(\d{1,3})\s*(?:天|日)")


def parse_date(text: str, local_now: datetime) -> datetime | None:
    """The end of the named day (18:00 local, the end of a working day): a date, a month and
    day (this year, or next year if passed), or "N天" from today."""
    days = _DAYS.search(text)
    found = _DATE.search(text)
    try:
        if found:
            year = int(found.group(1) or local_now.year)
            day = local_now.replace(year=year, month=int(found.group(2)),
                                    day=int(found.group(3))).date()
            if not found.group(1) and day < local_now.date():
                day = day.replace(year=year + 1)
        elif days:
            day = (local_now + timedelta(days=int(days.group(1)))).date()
        else:
            return None
    except ValueError:
        return None
    return datetime.combine(day, time(18, 0), tzinfo=local_now.tzinfo)
