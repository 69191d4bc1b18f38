"""Training records, the hours ledger: a course someone took, its hours and credit, the exam's
score and whether they passed. Filled by `safetybot import-training` (classroom training, the
paper ledger) and by the courses passed in chat. The pre-work check and the person's file read
them; each record is also in the person's chain of records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models import atomic
from models.people.records import NewRecord, RecordKind, append_many
from models.sql import insert_once


class TrainingRecord(Model):
    id = fields.BigIntField(primary_key=True)
    person_id = fields.CharField(max_length=64)
    course = fields.CharField(max_length=100)
    hours = fields.FloatField()
    credit = fields.FloatField(default=0, db_default=0)
    on = fields.DateField()
    score = fields.FloatField(null=True)
    passed = fields.BooleanField()
    source = fields.CharField(max_length=10)      # import / chat
    # person:course:date, so that importing the same sheet twice adds nothing
    key = fields.CharField(max_length=200, unique=True)
    added_at = fields.DatetimeField()

    class Meta:
        table = "training_record"
        indexes = (("person_id", "on"),)


@dataclass(frozen=True)
class Taken:
    person_id: str
    course: str
    hours: float
    on: date
    score: float | None
    passed: bool
    credit: float = 0.0


async def add_training(taken: Sequence[Taken], source: str, actor: str, now: datetime) -> int:
    """Add the records not there yet (by person, course and day); how many were new."""
    rows: list[dict[str, Any]] = [
        {"person_id": t.person_id, "course": t.course, "hours": t.hours, "credit": t.credit,
         "on": t.on, "score": t.score, "passed": t.passed, "source": source,
         "key": f"{t.person_id}:{t.course}:{t.on}", "added_at": now} for t in taken]
    async with atomic():
        new = await insert_once(TrainingRecord, rows, unique="key")
        await append_many([NewRecord(r["person_id"], RecordKind.TRAINING, {
            k: r[k] for k in ("course", "hours", "credit", "on", "score", "passed", "source")})
            for r in rows if r["key"] in new], actor, now)
    return len(new)


async def training_of(people: Sequence[str], since: date | None = None
                      ) -> dict[str, list[TrainingRecord]]:
    found: dict[str, list[TrainingRecord]] = {p: [] for p in people}
    query = TrainingRecord.filter(person_id__in=list(people))
    if since is not None:
        query = query.filter(on__gte=since)
    for row in await query.order_by("on", "id"):
        found[row.person_id].append(row)
    return found


def hours_within(records: Sequence[TrainingRecord], today: date, days: int = 365) -> float:
    start = today - timedelta(days=days)
    return sum(r.hours for r in records if start < r.on <= today)


def passed_courses(records: Sequence[TrainingRecord]) -> set[str]:
    return {r.course for r in records if r.passed}
