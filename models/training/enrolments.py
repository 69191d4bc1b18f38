"""The courses each person is to take (培训任务): their post's pack for the year, a new hire's
pre-job pack, a new post's 车间级 and 班组级 courses (第十七条), a safety manager's assignment, a
weak group's catch-up course, a course to retake after a failed practical check. Each has a
deadline; its reminders and its ladder are steps sent once each, to the recipients frozen when
it was given (the learner, then their supervisors of that day)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models import atomic
from models.calendar import reminder_window
from models.org import MAX_CHAIN, Department, User, members_named
from models.people.profiles import Profile
from models.sql import insert_once


class Reason(StrEnum):
    PREJOB = "prejob"          # a new hire's 岗前培训
    POST = "post"              # a new post, or back after a year away (第十七条)
    YEARLY = "yearly"          # the post's required courses this year
    ASSIGNED = "assigned"      # 布置培训
    CATCHUP = "catchup"        # 补强课程 for a weak group
    RETAKE = "retake"          # a failed practical check

    @property
    def label(self) -> str:
        return {"prejob": "岗前培训", "post": "转岗培训", "yearly": "年度必修",
                "assigned": "培训任务", "catchup": "补强课程", "retake": "补考重学"}[self.value]


class EnrolmentStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Enrolment(Model):
    id = fields.BigIntField(primary_key=True)
    person_id = fields.CharField(max_length=64)
    course = fields.CharField(max_length=32)
    reason = fields.CharEnumField(Reason, max_length=10)
    key = fields.CharField(max_length=200, unique=True)    # what makes giving it twice a no-op
    assignment_id = fields.BigIntField(null=True)
    due_on = fields.DateField(null=True)
    # The supervisors when it was given, nearest first.
    chain: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    status = fields.CharEnumField(EnrolmentStatus, max_length=4, default=EnrolmentStatus.OPEN)
    done_on = fields.DateField(null=True)
    next_on = fields.DateField(null=True)        # its next reminder or escalation, if any
    sent: list[str] = fields.JSONField(default=list)   # type: ignore[assignment]  # r3, e1 …
    created_at = fields.DatetimeField()

    class Meta:
        table = "training_enrolment"
        indexes = (("person_id", "status"), ("status", "next_on"), ("assignment_id",))


class Assignment(Model):
    """`布置培训 …` or a weak group's catch-up course: who gave which course to whom, and why."""

    id = fields.BigIntField(primary_key=True)
    course = fields.CharField(max_length=32)
    target = fields.CharField(max_length=200)    # as given: 维修部, 电工, 张三 李四 …
    due_on = fields.DateField()
    by = fields.CharField(max_length=64)         # a person, or "scheduler"
    reason = fields.CharEnumField(Reason, max_length=10)
    why = fields.TextField(default="")           # a catch-up course: the figures that made it
    people = fields.IntField(default=0)
    created_at = fields.DatetimeField()

    class Meta:
        table = "training_assignment"


class PackState(Model):
    """What a person's packs were last given for (post, hire and post dates, the year, the
    courses): the daily job gives packs only to the people whose state changed."""

    person_id = fields.CharField(max_length=64, primary_key=True)
    signature = fields.CharField(max_length=200)

    class Meta:
        table = "training_pack"


@dataclass(frozen=True)
class NewEnrolment:
    person_id: str
    course: str
    reason: Reason
    key: str
    due_on: date | None
    chain: Sequence[str] = ()
    assignment_id: int | None = None


def steps(due_on: date | None, remind: Sequence[int], escalate: Sequence[int]
          ) -> list[tuple[str, date]]:
    """The reminder (`r<days before>`) and escalation (`e<level>`) steps of a deadline, by day."""
    if due_on is None:
        return []
    found = [(f"r{d}", due_on - timedelta(days=d)) for d in remind]
    found += [(f"e{n}", due_on + timedelta(days=d)) for n, d in enumerate(escalate, 1)]
    return sorted(found, key=lambda s: (s[1], s[0]))


def next_step_day(due_on: date | None, sent: Sequence[str], remind: Sequence[int],
                  escalate: Sequence[int]) -> date | None:
    return next((day for name, day in steps(due_on, remind, escalate) if name not in sent),
                None)


async def enrol(new: Sequence[NewEnrolment], now: datetime, remind: Sequence[int],
                escalate: Sequence[int]) -> list[str]:
    """Give the courses not given yet (by key); the keys of the new enrolments."""
    rows: list[dict[str, Any]] = [
        {"person_id": n.person_id, "course": n.course, "reason": n.reason.value, "key": n.key,
         "assignment_id": n.assignment_id, "due_on": n.due_on, "chain": list(n.chain),
         "status": EnrolmentStatus.OPEN.value, "done_on": None,
         "next_on": next_step_day(n.due_on, (), remind, escalate), "sent": [],
         "created_at": now} for n in new]
    async with atomic():
        return list(await insert_once(Enrolment, rows, unique="key"))


async def chains_of(people: Sequence[str]) -> dict[str, list[str]]:
    """Each person's supervisors, nearest first, as the roster stands (one query a level)."""
    found: dict[str, list[str]] = {p: [] for p in people}
    current = {p: p for p in people}       # whose supervisor to read next, by person
    for _ in range(MAX_CHAIN):
        above = dict(await User.filter(id__in=list(set(current.values()))
                                       ).values_list("id", "supervisor_id"))
        nxt = {}
        for person, at in current.items():
            boss = above.get(at)
            if boss and boss != person and boss not in found[person]:
                found[person].append(boss)
                nxt[person] = boss
        if not nxt:
            break
        current = nxt
    return found


async def open_enrolments(person_id: str) -> list[Enrolment]:
    return await Enrolment.filter(person_id=person_id, status=EnrolmentStatus.OPEN).order_by(
        "due_on", "id")


async def enrolments_since(person_id: str, since: date) -> list[Enrolment]:
    return await Enrolment.filter(person_id=person_id, done_on__gte=since).order_by("done_on")


async def complete(person_id: str, course: str, today: date) -> int:
    """The person passed `course`: every open enrolment of it is done."""
    return await Enrolment.filter(person_id=person_id, course=course,
                                  status=EnrolmentStatus.OPEN).update(
        status=EnrolmentStatus.DONE, done_on=today, next_on=None)


async def open_courses_of(people: Sequence[str]) -> set[tuple[str, str]]:
    """(person, course) of every open enrolment of these people."""
    return set(await Enrolment.filter(person_id__in=list(people), status=EnrolmentStatus.OPEN
                                      ).values_list("person_id", "course"))


async def create_assignment(course: str, target: str, due_on: date, by: str, reason: Reason,
                            why: str, people: Sequence[str], now: datetime,
                            remind: Sequence[int], escalate: Sequence[int]) -> list[str]:
    """The assignment and its enrolments, for the people without the course open already
    (whom it leaves out); the people given it."""
    async with atomic():
        taken = {p for p, c in await open_courses_of(people) if c == course}
        given = [p for p in people if p not in taken]
        assignment = await Assignment.create(course=course, target=target, due_on=due_on,
                                             by=by, reason=reason, why=why, people=len(given),
                                             created_at=now)
        chains = await chains_of(given)
        await enrol([NewEnrolment(p, course, reason, f"a{assignment.id}:{p}", due_on,
                                  chains[p], assignment.id) for p in given],
                    now, remind, escalate)
    return given


async def due_steps(today: date, limit: int) -> list[Enrolment]:
    return await Enrolment.filter(status=EnrolmentStatus.OPEN, next_on__lte=today).order_by(
        "next_on", "id").limit(limit)


def steps_today(row: Enrolment, today: date, remind: Sequence[int],
                escalate: Sequence[int]) -> list[str]:
    """The steps of `row` to send today: the latest reminder whose window has begun (one missed
    on a holiday is not sent late), and every escalation due and not sent."""
    if row.due_on is None:
        return []
    found = []
    before = reminder_window(row.due_on, today, remind)
    if before is not None and f"r{before}" not in row.sent:
        found.append(f"r{before}")
    found += [name for name, day in steps(row.due_on, (), escalate)
              if day <= today and name not in row.sent]
    return found


async def mark_steps(done: Sequence[tuple[Enrolment, list[str]]], today: date,
                     remind: Sequence[int], escalate: Sequence[int]) -> None:
    """Record the steps sent (and the reminders passed over), and each row's next day."""
    for row, sent in done:
        passed = [name for name, day in steps(row.due_on, remind, ()) if day <= today]
        now_sent = sorted({*row.sent, *sent, *passed})
        await Enrolment.filter(id=row.id).update(
            sent=now_sent, next_on=next_step_day(row.due_on, now_sent, remind, escalate))


async def overdue(today: date, limit: int = 1000) -> list[Enrolment]:
    return await Enrolment.filter(status=EnrolmentStatus.OPEN, due_on__lt=today).order_by(
        "due_on", "id").limit(limit)


async def pack_signatures() -> dict[str, str]:
    return dict(await PackState.all().values_list("person_id", "signature"))


async def set_pack_signatures(changed: dict[str, str]) -> None:
    async with atomic():
        await PackState.filter(person_id__in=list(changed)).delete()
        await PackState.bulk_create([PackState(person_id=p, signature=s)
                                     for p, s in changed.items()])


async def people_of_targets(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The active people a list of words names — departments by name, posts, people by name or
    id — and the words that name nothing."""
    departments = dict(await Department.filter(name__in=list(words)).values_list("name", "id"))
    posts = set(await Profile.filter(post__in=list(words)).values_list("post", flat=True))
    named = await members_named([w for w in words if w not in departments and w not in posts])
    unknown = [w for w in words if w not in departments and w not in posts and w not in named]
    people: set[str] = {u.id for u in named.values()}
    if departments:
        people |= {str(p) for p in await User.filter(active=True, department_id__in=list(
            departments.values())).values_list("id", flat=True)}
    if posts:
        holders = await Profile.filter(post__in=list(posts)).values_list("person_id", flat=True)
        people |= {str(p) for p in await User.filter(active=True, id__in=list(
            holders)).values_list("id", flat=True)}
    return sorted(people), unknown
