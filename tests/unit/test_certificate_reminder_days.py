"""The days a certificate's reminders fall on (models/people/certificates.py), walked day by day
over every registration day and every stretch of days the job does not run (holidays): each
reminder goes at most once, only the nearest window opened is sent, and the next day something
is due is never today or before, so the daily job's batches always run out."""

from datetime import date, timedelta

import pytest

from models.people.certificates import next_reminder, reminder_due

DAYS = (60, 30, 7)
DUE = date(2026, 11, 30)


def walk(registered: date, off: set[date]) -> list[tuple[date, int]]:
    """(day, days before) of each reminder sent, from registration to the lapse."""
    reminded: list[int] = []
    remind_on = next_reminder(DUE, reminded, DAYS)
    sent = []
    day = registered
    while day <= DUE:
        if day not in off and remind_on <= day:
            before = reminder_due(DUE, day, reminded, DAYS)
            if before is not None:
                sent.append((day, before))
                reminded.append(before)
            remind_on = next_reminder(DUE, reminded, DAYS)
            assert remind_on > day
        day += timedelta(days=1)
    return sent


@pytest.mark.parametrize("length", [0, 1, 5, 20, 40])
def test_each_reminder_once_nearest_first_and_never_due_in_the_past(length: int) -> None:
    for early in range(0, 75):
        registered = DUE - timedelta(days=early)
        for start in range(0, 75, 3):
            off = {DUE - timedelta(days=start - i) for i in range(length)}
            sent = walk(registered, off)
            befores = [b for _, b in sent]
            assert befores == sorted(set(befores), reverse=True)
            for day, before in sent:
                # Sent in its own window: after it opened, before the next one did.
                assert DUE - timedelta(days=before) <= day
                assert all(day < DUE - timedelta(days=d) for d in DAYS if d < before)


def test_without_holidays_every_window_is_sent_on_its_day() -> None:
    assert walk(DUE - timedelta(days=90), set()) == [
        (date(2026, 10, 1), 60), (date(2026, 10, 31), 30), (date(2026, 11, 23), 7)]


def test_registered_late_the_nearest_open_window_is_sent_at_once() -> None:
    assert walk(date(2026, 11, 20), set()) == [(date(2026, 11, 20), 30),
                                                (date(2026, 11, 23), 7)]
