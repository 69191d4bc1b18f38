"""Where "now" comes from: one clock, handed down from the app factory (`create_app(settings,
clock=...)`) or the command line to everything that depends on the time. Nothing else in the
service reads the system clock, so a test moves the service's time by moving its clock, never by
sleeping or by shifting rows' timestamps into the past (STYLE.md §8).

Times are aware datetimes in UTC; they are shown in the configured timezone only when rendered.
(Elapsed-time measurements inside one process, such as a loop's backoff or how long it has been
failing, use `time.monotonic()`: they are durations, not "now".)"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock: the service's clock outside tests."""
    return datetime.now(UTC)


class ManualClock:
    """A clock a test moves with `advance()` and `set()`.

    `ManualClock(at)` stands still at `at` until moved: whatever comes due comes due because the
    test moved it there (unit tests driving a dispatcher or a job step by step).
    `ManualClock()` runs with the system clock, plus whatever the test skipped: a running
    service's short waits (a retry's backoff, a lease, a poll) still pass by themselves while the
    test jumps over the long ones (a reminder in two minutes, a review in 48 hours)."""

    def __init__(self, at: datetime | None = None) -> None:
        self._frozen = None if at is None else _utc(at)
        self._skipped = timedelta()

    def __call__(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return utc_now() + self._skipped

    def advance(self, by: timedelta | float) -> None:
        """Move on by `by` (a timedelta, or seconds)."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if self._frozen is not None:
            self._frozen += step
        else:
            self._skipped += step

    def set(self, at: datetime) -> None:
        """Move to `at`; a running clock goes on running from there."""
        if self._frozen is not None:
            self._frozen = _utc(at)
        else:
            self._skipped = _utc(at) - utc_now()

    def seconds(self) -> float:
        """The same instant as POSIX seconds: the WeCom simulator's clock (token expiry, rate
        windows), so that the platform and the service agree on the time."""
        return self().timestamp()


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"a clock is set to an aware time, not {at!r}")
    return at.astimezone(UTC)
