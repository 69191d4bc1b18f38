"""Rounds: one per patrol plan and period (a day, an ISO week, a month), opened by the scheduler
when the plan's window begins. Its route's checkpoints, its patrollers and their supervisors are
frozen at opening, so a later change to the files or the roster never moves a round under way.

A round is `open` in its window; missed at the window's end (the supervisors told); done when
every checkpoint's checklist is answered, or late when that happens in the grace after the
window. The announcements, reminders and escalations are each sent once: the round's flags are
set with a compare-and-set, in the transaction that queues the message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import fields
from tortoise.expressions import Q, Subquery
from tortoise.models import Model

from models.inspection.sites import Frequency, PatrolPlan, minutes_text
from models.sql import insert_many, insert_once


class RoundStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    LATE = "late"        # finished after its window, in the grace
    MISSED = "missed"    # its window ended first (it may still become late)

    @property
    def label(self) -> str:
        return {"open": "进行中", "done": "已完成", "late": "逾期完成", "missed": "漏检"}[self]


class Round(Model):
    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)      # plan:period
    plan: fields.ForeignKeyRelation[PatrolPlan] = fields.ForeignKeyField(
        "models.PatrolPlan", related_name="rounds", on_delete=fields.RESTRICT)
    period = fields.CharField(max_length=16)                # 2026-12-07, 2026-W50, 2026-12
    frequency = fields.CharEnumField(Frequency, max_length=8)
    route = fields.CharField(max_length=32)
    route_name = fields.CharField(max_length=64)
    checkpoints: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    patrollers: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    supervisors: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    starts = fields.IntField()          # the window, minutes of the day, each day of the period
    ends = fields.IntField()
    opens_at = fields.DatetimeField()
    closes_at = fields.DatetimeField()   # the window's end on the period's last day
    remind_at = fields.DatetimeField()
    grace_until = fields.DatetimeField()
    status = fields.CharEnumField(RoundStatus, max_length=8, default=RoundStatus.OPEN)
    reminded = fields.BooleanField(default=False)
    escalated = fields.BooleanField(default=False)
    finished_at = fields.DatetimeField(null=True)
    plan_id: str

    class Meta:
        table = "inspection_round"
        indexes = (("status", "closes_at"), ("status", "remind_at"), ("opens_at",))

    @property
    def window(self) -> str:
        return f"{minutes_text(self.starts)}–{minutes_text(self.ends)}"

    def in_window(self, moment: datetime, tz: ZoneInfo) -> bool:
        """Whether a scan at `moment` counts: in the period, inside the day's window (or the
        grace after the last day's)."""
        if not self.opens_at <= moment <= self.grace_until:
            return False
        if moment >= self.closes_at:
            return True
        local = moment.astimezone(tz)
        minute = local.hour * 60 + local.minute
        return self.starts <= minute <= self.ends


class Patroller(Model):
    """Who walks a round: the index behind `巡检` and a scan's lookup."""

    id = fields.BigIntField(primary_key=True)
    round: fields.ForeignKeyRelation[Round] = fields.ForeignKeyField(
        "models.Round", related_name="walkers", on_delete=fields.CASCADE)
    person = fields.CharField(max_length=64)
    grace_until = fields.DatetimeField()     # the round's, so a lookup needs no join
    round_id: int

    class Meta:
        table = "inspection_patroller"
        indexes = (("person", "grace_until"),)


@dataclass(frozen=True)
class Period:
    key: str
    first: date
    last: date


def period_of(frequency: Frequency, day: date) -> Period:
    if frequency is Frequency.DAILY:
        return Period(day.isoformat(), day, day)
    if frequency is Frequency.WEEKLY:
        iso = day.isocalendar()
        monday = day - timedelta(days=day.weekday())
        return Period(f"{iso.year}-W{iso.week:02d}", monday, monday + timedelta(days=6))
    first = day.replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    return Period(f"{day:%Y-%m}", first, after - timedelta(days=1))


def at_minute(day: date, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tz)


@dataclass(frozen=True)
class NewRound:
    """A round the scheduler decided to open, before it is written."""

    plan: PatrolPlan
    frequency: Frequency
    period: Period
    route: str
    route_name: str
    checkpoints: list[str]
    patrollers: list[str]
    supervisors: list[str]
    opens_at: datetime
    closes_at: datetime

    @property
    def key(self) -> str:
        return f"{self.plan.code}:{self.period.key}"


async def existing_keys(keys: Sequence[str]) -> set[str]:
    return {str(k) for k in await Round.filter(key__in=list(keys)).values_list("key", flat=True)}


async def open_rounds(new: Sequence[NewRound], remind_before: timedelta, late: timedelta
                      ) -> dict[str, int]:
    """Write the rounds not written before (by key), and their patrollers; the new ones' ids
    by key."""
    rows: list[dict[str, Any]] = [{
        "key": r.key, "plan_id": r.plan.code, "period": r.period.key,
        "frequency": r.frequency.value, "route": r.route, "route_name": r.route_name,
        "checkpoints": r.checkpoints, "patrollers": r.patrollers,
        "supervisors": r.supervisors, "starts": r.plan.starts, "ends": r.plan.ends,
        "opens_at": r.opens_at, "closes_at": r.closes_at,
        "remind_at": max(r.opens_at, r.closes_at - remind_before),
        "grace_until": r.closes_at + late, "status": RoundStatus.OPEN.value,
        "reminded": False, "escalated": False, "finished_at": None} for r in new]
    made = await insert_once(Round, rows, unique="key")
    by_key = {r.key: r for r in new}
    await insert_many(Patroller, [
        {"round_id": made[key], "person": person, "grace_until": by_key[key].closes_at + late}
        for key in made for person in by_key[key].patrollers])
    return made


async def round_by_id(round_id: int) -> Round:
    return await Round.get(id=round_id)


async def rounds_to_remind(now: datetime, limit: int) -> list[Round]:
    return await Round.filter(status=RoundStatus.OPEN, reminded=False, remind_at__lte=now,
                              closes_at__gt=now).order_by("id").limit(limit)


async def rounds_past_window(now: datetime, limit: int) -> list[Round]:
    return await Round.filter(status=RoundStatus.OPEN, escalated=False,
                              closes_at__lte=now).order_by("id").limit(limit)


async def mark_reminded(ids: Sequence[int]) -> None:
    await Round.filter(id__in=list(ids), reminded=False).update(reminded=True)


async def mark_missed(ids: Sequence[int]) -> None:
    await Round.filter(id__in=list(ids), status=RoundStatus.OPEN).update(
        status=RoundStatus.MISSED, escalated=True)


async def rounds_walked_by(person: str, now: datetime, since: datetime) -> list[Round]:
    """The person's rounds opened by `now` whose grace ended after `since`: those a scan may
    count for, and those it just missed (told why). Earliest window first."""
    return await Round.filter(
        id__in=Subquery(Patroller.filter(person=person, grace_until__gte=since).values(
            "round_id")),
        opens_at__lte=now).order_by("closes_at", "id")


async def rounds_of_day(person: str, start: datetime, end: datetime) -> list[Round]:
    """The person's rounds whose window touches [start, end): `巡检`'s list for today."""
    return await Round.filter(
        Q(status__in=(RoundStatus.OPEN, RoundStatus.MISSED)) | Q(closes_at__gte=start),
        id__in=Subquery(Patroller.filter(person=person, grace_until__gte=start).values(
            "round_id")),
        opens_at__lt=end).order_by("opens_at", "id")


async def finish_round(round_id: int, now: datetime) -> RoundStatus | None:
    """Mark the round done (or late, after its window); None when it was finished before."""
    row = await Round.get(id=round_id)
    status = RoundStatus.DONE if now <= row.closes_at else RoundStatus.LATE
    changed = await Round.filter(id=round_id, status__in=(
        RoundStatus.OPEN, RoundStatus.MISSED)).update(status=status, finished_at=now)
    return status if changed else None


async def missed_between(start: datetime, end: datetime) -> list[Round]:
    """Rounds whose window ended in [start, end) unfinished: the digest's 漏检."""
    return await Round.filter(status=RoundStatus.MISSED, closes_at__gte=start,
                              closes_at__lt=end).order_by("closes_at", "id")
