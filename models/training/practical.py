"""Practical checks (实操抽查): every pass of a course marked practical waits to be drawn; each
day the scheduler draws a share of the day's passers (at least one a department) and their
supervisor checks them on site, 合格 or 不合格 with a photo and a note."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models import atomic


class PracticalStatus(StrEnum):
    PENDING = "pending"        # passed, not drawn yet
    PASSED_OVER = "skipped"    # not drawn
    ASKED = "asked"            # drawn: the supervisor has the card
    PASSED = "passed"          # 合格
    FAILED = "failed"          # 不合格: the course is to be taken again

    @property
    def label(self) -> str:
        return {"pending": "待抽取", "skipped": "未抽中", "asked": "待检查", "passed": "合格",
                "failed": "不合格"}[self.value]


class PracticalCheck(Model):
    id = fields.BigIntField(primary_key=True)
    person_id = fields.CharField(max_length=64)
    course = fields.CharField(max_length=32)
    department_id = fields.CharField(max_length=64, null=True)
    passed_on = fields.DateField()
    status = fields.CharEnumField(PracticalStatus, max_length=8, default=PracticalStatus.PENDING)
    token = fields.CharField(max_length=16)
    checker = fields.CharField(max_length=64, default="")     # the supervisor asked
    photo = fields.CharField(max_length=64, default="")
    note = fields.CharField(max_length=200, default="")
    checked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "training_practical"
        indexes = (("status", "passed_on"), ("person_id",))


async def add_pending(person_id: str, course: str, department_id: str | None, passed_on: date,
                      now: datetime) -> None:
    await PracticalCheck.create(person_id=person_id, course=course, department_id=department_id,
                                passed_on=passed_on, token=secrets.token_hex(4), created_at=now)


async def pending(limit: int = 5000) -> list[PracticalCheck]:
    return await PracticalCheck.filter(status=PracticalStatus.PENDING).order_by("id").limit(limit)


async def mark_drawn(drawn: Sequence[tuple[PracticalCheck, str]],
                     passed_over: Sequence[PracticalCheck]) -> None:
    """The drawn checks with their checker, and the rest passed over, together."""
    async with atomic():
        for row, checker in drawn:
            await PracticalCheck.filter(id=row.id, status=PracticalStatus.PENDING).update(
                status=PracticalStatus.ASKED, checker=checker)
        await PracticalCheck.filter(id__in=[r.id for r in passed_over],
                                    status=PracticalStatus.PENDING).update(
            status=PracticalStatus.PASSED_OVER)


async def practical_by_id(check_id: int) -> PracticalCheck | None:
    return await PracticalCheck.get_or_none(id=check_id)


async def record_result(check: PracticalCheck, passed: bool, photo: str, note: str, by: str,
                        now: datetime) -> bool:
    """合格 or 不合格, once: False when it was recorded already."""
    return bool(await PracticalCheck.filter(id=check.id, status=PracticalStatus.ASKED).update(
        status=PracticalStatus.PASSED if passed else PracticalStatus.FAILED, photo=photo,
        note=note, checker=by, checked_at=now))


async def practicals_of(person_id: str) -> list[PracticalCheck]:
    return await PracticalCheck.filter(person_id=person_id).exclude(
        status__in=(PracticalStatus.PENDING, PracticalStatus.PASSED_OVER)).order_by("id")
