"""The hours ledger as people and inspectors read it: a person's year (`我的培训`), and every
person's year for the xlsx an inspector asks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from models.org import Department, User
from models.people.profiles import Profile, profile_of
from models.training.courses import Course
from models.training.enrolments import Enrolment, open_enrolments
from models.training.learning import Progress, progresses_of
from models.training.practical import PracticalCheck, practicals_of
from models.training.records import TrainingRecord


@dataclass(frozen=True)
class MyYear:
    post: str
    hired_on: date | None
    due: list[Enrolment]
    titles: dict[str, str]                 # course code → title
    progress: dict[str, Progress]
    records: list[TrainingRecord]          # this year's, oldest first
    practicals: list[PracticalCheck]

    @property
    def hours(self) -> float:
        return sum(r.hours for r in self.records if r.passed)

    @property
    def credit(self) -> float:
        return sum(r.credit for r in self.records if r.passed)


async def my_year(person_id: str, year: int) -> MyYear:
    profile = await profile_of(person_id)
    due = await open_enrolments(person_id)
    records = await TrainingRecord.filter(
        person_id=person_id, on__gte=date(year, 1, 1), on__lte=date(year, 12, 31)).order_by(
        "on", "id")
    return MyYear(post=profile.post, hired_on=profile.hired_on, due=due,
                  titles=dict(await Course.all().values_list("code", "title")),
                  progress=await progresses_of(person_id), records=records,
                  practicals=await practicals_of(person_id))


@dataclass(frozen=True)
class LedgerRow:
    person_id: str
    name: str
    department: str
    post: str
    roles: tuple[str, ...]
    record: TrainingRecord


async def ledger(year: int, department: str | None = None) -> list[LedgerRow]:
    """Every training record of `year` (of one department's people, by name or id), by person
    and day."""
    people = User.all()
    if department:
        found = await Department.filter(name=department).first() or await Department.get_or_none(
            id=department)
        people = people.filter(department_id=found.id if found else "")
    users = {u.id: u for u in await people}
    departments = dict(await Department.all().values_list("id", "name"))
    posts = dict(await Profile.filter(person_id__in=list(users)).values_list("person_id",
                                                                           "post"))
    records = await TrainingRecord.filter(
        person_id__in=list(users), on__gte=date(year, 1, 1), on__lte=date(year, 12, 31)
    ).order_by("person_id", "on", "id")
    return [LedgerRow(r.person_id, users[r.person_id].name,
                      departments.get(users[r.person_id].department_id or "", ""),
                      posts.get(r.person_id, ""), tuple(users[r.person_id].roles), r)
            for r in records]

