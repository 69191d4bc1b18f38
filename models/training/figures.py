"""The training numbers of the safety managers' daily digest (overdue courses) and of the
monthly report (courses passed, hours, quizzes, practical checks, catch-up courses)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tortoise.functions import Count

from models.org import User
from models.training.courses import Course
from models.training.enrolments import Assignment, Enrolment, EnrolmentStatus, Reason
from models.training.learning import Attempt
from models.training.practical import PracticalCheck, PracticalStatus
from models.training.records import TrainingRecord


@dataclass(frozen=True)
class Overdue:
    title: str
    people: int
    names: tuple[str, ...]       # a few of them


async def overdue_courses(today: date, named: int = 3) -> list[Overdue]:
    """Open enrolments past their deadline, by course, the most people first."""
    counts = await Enrolment.filter(status=EnrolmentStatus.OPEN, due_on__lt=today).annotate(
        n=Count("id")).group_by("course").values_list("course", "n")
    titles = dict(await Course.all().values_list("code", "title"))
    found = []
    for course, n in sorted(counts, key=lambda c: (-c[1], c[0])):
        people = await Enrolment.filter(status=EnrolmentStatus.OPEN, due_on__lt=today,
                                        course=course).order_by("due_on", "id").limit(
            named).values_list("person_id", flat=True)
        names = dict(await User.filter(id__in=list(people)).values_list("id", "name"))
        found.append(Overdue(titles.get(course, course), n,
                             tuple(names.get(p, p) for p in people)))
    return found


async def practicals_waiting() -> int:
    return await PracticalCheck.filter(status=PracticalStatus.ASKED).count()


@dataclass(frozen=True)
class TrainingMonth:
    courses_passed: int
    people: int
    hours: float
    quizzes: int
    quizzes_passed: int
    practical_passed: int
    practical_failed: int
    catchups: int
    overdue: int

    @property
    def empty(self) -> bool:
        return not (self.courses_passed or self.quizzes or self.practical_passed
                    or self.practical_failed or self.catchups or self.overdue)


async def month_figures(start: datetime, end: datetime, first: date, last: date,
                        today: date) -> TrainingMonth:
    """The month [start, end) (its days `first`..`last`); overdue as of `today`."""
    passed = TrainingRecord.filter(passed=True, on__gte=first, on__lte=last)
    rows = await passed.values_list("person_id", "hours")
    quizzes = Attempt.filter(finished_at__gte=start, finished_at__lt=end, score__isnull=False)
    checked = PracticalCheck.filter(checked_at__gte=start, checked_at__lt=end)
    return TrainingMonth(
        courses_passed=len(rows), people=len({p for p, _ in rows}),
        hours=sum(h for _, h in rows),
        quizzes=await quizzes.count(), quizzes_passed=await quizzes.filter(passed=True).count(),
        practical_passed=await checked.filter(status=PracticalStatus.PASSED).count(),
        practical_failed=await checked.filter(status=PracticalStatus.FAILED).count(),
        catchups=await Assignment.filter(reason=Reason.CATCHUP, created_at__gte=start,
                                         created_at__lt=end).count(),
        overdue=await Enrolment.filter(status=EnrolmentStatus.OPEN, due_on__lt=today).count())
