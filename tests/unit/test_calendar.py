"""A 一般 ticket's deadline in working days, on the shipped calendar (2026)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.scheduling import load_calendar
from bot.settings import load_settings

TZ = ZoneInfo("Asia/Shanghai")
CALENDAR = load_calendar(load_settings({}).schedule, TZ)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.mark.parametrize(("reported", "days", "due"), [
    ("2026-12-07 09:00", 3, "2026-12-10 17:30"),     # Monday → Thursday
    ("2026-12-11 16:00", 1, "2026-12-14 17:30"),     # Friday → Monday
    ("2026-12-12 11:00", 1, "2026-12-14 17:30"),     # on a Saturday
    ("2026-12-07 23:50", 0, "2026-12-07 17:30"),     # the same day
    # 国庆: 10-01…07 off, then Thursday, Friday and Saturday 10-10, a 调休 working day.
    ("2026-09-30 10:00", 3, "2026-10-10 17:30"),
    ("2026-02-13 10:00", 2, "2026-02-24 17:30"),     # 春节, with 2-14 a 调休 working day
])
def test_the_deadline_is_the_end_of_the_nth_working_day(reported: str, days: int,
                                                        due: str) -> None:
    assert CALENDAR.deadline_after(at(reported), days) == at(due)


def test_the_working_day_s_end_is_a_setting() -> None:
    settings = load_settings({"SAFETYBOT_SCHEDULE_WORKDAY_END": "18:00"})
    calendar = load_calendar(settings.schedule, TZ)
    assert calendar.deadline_after(at("2026-12-07 09:00"), 1) == at("2026-12-08 18:00")
