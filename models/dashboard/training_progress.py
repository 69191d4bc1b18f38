"""The training page's figures: each course's enrolments (given, done, overdue) and the year's
training hours by department."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from tortoise.functions import Count, Sum

from models.org import Department, User
from models.training.courses import Course
from models.training.enrolments import Enrolment, EnrolmentStatus
from models.training.records import TrainingRecord

NO_DEPARTMENT = "未分部门"


@dataclass(frozen=True)
class CourseProgress:
    code: str
    title: str
    enrolled: int
    done: int
    overdue: int               # open past its deadline


@dataclass(frozen=True)
class DepartmentHours:
    department: str
    people: int                # with any hours this year
    hours: float


async def course_progress(today: date) -> list[CourseProgress]:
    """Every course with enrolments, the most overdue first: two grouped counts."""
    counts = await Enrolment.annotate(n=Count("id")).group_by("course", "status").values_list(
        "course", "status", "n")
    late = dict(await Enrolment.filter(status=EnrolmentStatus.OPEN, due_on__lt=today).annotate(
        n=Count("id")).group_by("course").values_list("course", "n"))
    titles = dict(await Course.all().values_list("code", "title"))
    given: dict[str, int] = defaultdict(int)
    done: dict[str, int] = defaultdict(int)
    for course, status, n in counts:
        given[str(course)] += int(n)
        if str(status) == EnrolmentStatus.DONE.value:
            done[str(course)] += int(n)
    found = [CourseProgress(c, str(titles.get(c, c)), given[c], done[c], int(late.get(c, 0)))
             for c in given]
    return sorted(found, key=lambda p: (-p.overdue, -p.enrolled, p.code))


async def hours_by_department(year: int) -> list[DepartmentHours]:
    """The training hours recorded in `year`, summed by person in the database, then by their
    department."""
    per_person = await TrainingRecord.filter(
        on__gte=date(year, 1, 1), on__lte=date(year, 12, 31)).annotate(
        total=Sum("hours")).group_by("person_id").values_list("person_id", "total")
    departments = dict(await User.filter(
        id__in=[str(p) for p, _ in per_person]).values_list("id", "department_id"))
    names = dict(await Department.all().values_list("id", "name"))
    people: dict[str, int] = defaultdict(int)
    hours: dict[str, float] = defaultdict(float)
    for person, total in per_person:
        department = departments.get(str(person))
        name = str(names.get(department, NO_DEPARTMENT)) if department else NO_DEPARTMENT
        people[name] += 1
        hours[name] += float(total or 0)
    return sorted((DepartmentHours(d, people[d], round(hours[d], 1)) for d in hours),
                  key=lambda d: (-d.hours, d.department))
