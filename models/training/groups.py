"""The week's figures per group (a department's post) and course: the quizzes finished, how many
passed, the mean score, the completion of the courses already due, and the questions most often
missed. Three grouped statements over indexed ranges, whatever the number of answers stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tortoise.expressions import Subquery

from models.org import User
from models.people.profiles import Profile
from models.training.learning import Answer, Attempt
from models.training.rules import WeakThresholds

MISSED = 3       # questions named per group


@dataclass
class GroupFigures:
    department_id: str | None
    post: str
    course: str
    attempts: int = 0
    passed: int = 0
    score_sum: float = 0.0
    due: int = 0              # enrolments whose deadline passed this year
    done: int = 0
    missed: list[tuple[str, int]] = field(default_factory=list)   # (question id, times)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.attempts if self.attempts else 1.0

    @property
    def mean(self) -> float:
        return self.score_sum / self.attempts if self.attempts else 100.0

    @property
    def completion(self) -> float:
        return self.done / self.due if self.due else 1.0

    def weak(self, t: WeakThresholds) -> list[str]:
        """Why the group is weak, a phrase each; empty when it is not."""
        found = []
        if self.attempts >= t.min_attempts:
            if self.pass_rate < t.pass_rate:
                found.append(f"通过率{self.pass_rate:.0%}（要求不低于{t.pass_rate:.0%}）")
            if self.mean < t.mean_score:
                found.append(f"平均分{self.mean:.0f}分（要求不低于{t.mean_score:g}分）")
        if self.due >= t.min_attempts and self.completion < t.completion:
            found.append(f"到期培训完成率{self.completion:.0%}（要求不低于{t.completion:.0%}）")
        return found


Key = tuple[str | None, str, str]


async def week_figures(start: datetime, end: datetime, today: date) -> list[GroupFigures]:
    """The groups with quizzes finished in [start, end), or with courses due this year."""
    db = Attempt._meta.db
    mark = (lambda n: f"${n}") if db.capabilities.dialect == "postgres" else (lambda n: "?")
    when = [_db_time(start), _db_time(end)]
    groups: dict[Key, GroupFigures] = {}

    def group(row: dict[str, Any]) -> GroupFigures:
        key = (row["department_id"], row["post"] or "", row["course"])
        if key not in groups:
            groups[key] = GroupFigures(*key)
        return groups[key]

    for row in await db.execute_query_dict(
            f"SELECT department_id, post, course, COUNT(*) AS n, "
            f"SUM(CASE WHEN passed THEN 1 ELSE 0 END) AS p, SUM(score) AS s "
            f"FROM {Attempt._meta.db_table} WHERE finished_at >= {mark(1)} "
            f"AND finished_at < {mark(2)} AND score IS NOT NULL "
            f"GROUP BY department_id, post, course", when):
        g = group(row)
        g.attempts, g.passed, g.score_sum = int(row["n"]), int(row["p"] or 0), float(row["s"])
    missed: dict[Key, list[tuple[str, int]]] = {}
    for row in await db.execute_query_dict(
            f"SELECT department_id, post, course, question, COUNT(*) AS n "
            f"FROM {Answer._meta.db_table} WHERE at >= {mark(1)} AND at < {mark(2)} "
            f"AND NOT correct GROUP BY department_id, post, course, question", when):
        key = (row["department_id"], row["post"] or "", row["course"])
        missed.setdefault(key, []).append((row["question"], int(row["n"])))
    for key, found in missed.items():
        if key in groups:
            groups[key].missed = sorted(found, key=lambda m: (-m[1], m[0]))[:MISSED]
    for row in await db.execute_query_dict(
            f"SELECT u.department_id AS department_id, COALESCE(p.post, '') AS post, "
            f"e.course AS course, COUNT(*) AS n, "
            f"SUM(CASE WHEN e.status = 'done' THEN 1 ELSE 0 END) AS d "
            f"FROM training_enrolment e JOIN {User._meta.db_table} u ON u.id = e.person_id "
            f"LEFT JOIN {Profile._meta.db_table} p ON p.person_id = e.person_id "
            f"WHERE u.active AND e.due_on >= {mark(1)} AND e.due_on < {mark(2)} "
            f"GROUP BY u.department_id, COALESCE(p.post, ''), e.course",
            [date(today.year, 1, 1), today]):
        g = group(row)
        g.due, g.done = int(row["n"]), int(row["d"] or 0)
    return sorted(groups.values(), key=lambda g: (g.department_id or "", g.post, g.course))


def _db_time(moment: datetime) -> Any:
    return Attempt._meta.fields_map["finished_at"].to_db_value(moment, Attempt)


async def members(department_id: str | None, post: str) -> list[str]:
    """The active people of a group: the department's people of the post or, for the group
    without one (未定岗位, post ""), its people whose profile names no post, as the figures
    count them. One statement: the post's holders are not read plant-wide."""
    people = User.filter(active=True, department_id=department_id)
    if post:
        people = people.filter(id__in=Subquery(Profile.filter(post=post).values("person_id")))
    else:
        people = people.exclude(id__in=Subquery(Profile.exclude(post="").values("person_id")))
    return [str(p) for p in await people.order_by("id").values_list("id", flat=True)]


async def supervisors_of(people: Sequence[str]) -> list[str]:
    """The people's supervisors, outside the group."""
    found = await User.filter(id__in=list(people)).values_list("supervisor_id", flat=True)
    return sorted({str(s) for s in found if s and s not in people})
