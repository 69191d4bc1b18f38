"""Courses as loaded from their files (`safetybot load-training`): the row keeps the parsed
course whole, so a lesson or a question is read as it was when loaded, and a course file changed
later changes the next attempt, not one under way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models import atomic

LETTERS = "ABCDEF"


class QuestionType(StrEnum):
    SINGLE = "single"        # 单选
    MULTIPLE = "multiple"    # 多选
    JUDGE = "judge"          # 判断

    @property
    def label(self) -> str:
        return {"single": "单选题", "multiple": "多选题", "judge": "判断题"}[self.value]


JUDGE_OPTIONS = ("对", "错")


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    text: str
    options: tuple[str, ...]     # a judge question's are 对 and 错
    answer: str                  # the right options' letters, in order: "B", "ACD"
    explain: str


@dataclass(frozen=True)
class Screen:
    text: str
    image: str = ""              # its picture's hash in the media store


@dataclass(frozen=True)
class Lesson:
    title: str
    minutes: int
    screens: tuple[Screen, ...]
    video: str = ""


@dataclass(frozen=True)
class Level:
    title: str
    lessons: tuple[Lesson, ...]
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class CourseSpec:
    code: str
    title: str
    summary: str
    posts: tuple[str, ...]       # "*": everyone
    required: bool
    credit: float
    hours: float
    pass_mark: int
    levels: tuple[Level, ...]
    practical: bool = False
    stage: str = ""              # 厂级 / 车间级 / 班组级 (三级安全教育)
    prejob: bool = False
    catchup: str = ""            # the code of its 补强课程
    catchup_only: bool = False   # given to weak groups only

    def for_post(self, post: str) -> bool:
        return "*" in self.posts or post in self.posts

    def question(self, level: int, qid: str) -> Question:
        return next(q for q in self.levels[level].questions if q.id == qid)


class Course(Model):
    code = fields.CharField(max_length=32, primary_key=True)
    title = fields.CharField(max_length=100, unique=True)
    content: dict[str, Any] = fields.JSONField()  # type: ignore[assignment]
    active = fields.BooleanField(default=True)     # gone from the files: kept for the ledger
    loaded_at = fields.DatetimeField()

    class Meta:
        table = "course"

    @property
    def spec(self) -> CourseSpec:
        return spec_of(self.content)


def spec_of(content: dict[str, Any]) -> CourseSpec:
    levels = tuple(Level(
        title=lv["title"],
        lessons=tuple(Lesson(title=ls["title"], minutes=ls["minutes"], video=ls["video"],
                             screens=tuple(Screen(**s) for s in ls["screens"]))
                      for ls in lv["lessons"]),
        questions=tuple(Question(id=q["id"], type=QuestionType(q["type"]), text=q["text"],
                                 options=tuple(q["options"]), answer=q["answer"],
                                 explain=q["explain"]) for q in lv["questions"]))
        for lv in content["levels"])
    plain = {k: v for k, v in content.items() if k != "levels"}
    return CourseSpec(**{**plain, "posts": tuple(plain["posts"])}, levels=levels)


@dataclass(frozen=True)
class LoadReport:
    added: int
    changed: int
    unchanged: int
    retired: int

    def summary(self) -> str:
        return (f"courses: {self.added} added, {self.changed} changed, {self.unchanged} "
                f"unchanged, {self.retired} retired")


async def store_courses(specs: Sequence[CourseSpec], now: datetime) -> LoadReport:
    """The courses of the files, in one transaction: new ones added, changed ones replaced,
    and the ones no longer in the files retired (kept, for the records that name them)."""
    added = changed = unchanged = 0
    async with atomic():
        stored = {c.code: c for c in await Course.all()}
        for spec in specs:
            content = json.loads(json.dumps(asdict(spec), ensure_ascii=False))   # as stored
            row = stored.pop(spec.code, None)
            if row is None:
                await Course.create(code=spec.code, title=spec.title, content=content,
                                    loaded_at=now)
                added += 1
            elif row.content != content or not row.active or row.title != spec.title:
                await Course.filter(code=spec.code).update(
                    title=spec.title, content=content, active=True, loaded_at=now)
                changed += 1
            else:
                unchanged += 1
        retired = [code for code, row in stored.items() if row.active]
        await Course.filter(code__in=retired).update(active=False)
    return LoadReport(added, changed, unchanged, len(retired))


async def active_courses() -> list[CourseSpec]:
    return [row.spec for row in await Course.filter(active=True).order_by("code")]


# Courses as parsed, by code, with the load they came from: every quiz answer reads its course,
# and reading and parsing the whole file's JSON each time cost a twentieth of the worker's CPU
# (benchmarks/README.md, Training benchmark). A load writes a new `loaded_at`.
_parsed: dict[str, tuple[datetime, CourseSpec]] = {}


async def course_by_code(code: str) -> CourseSpec | None:
    loaded = await Course.filter(code=code).values_list("loaded_at", flat=True)
    if not loaded:
        return None
    kept = _parsed.get(code)
    if kept is not None and kept[0] == loaded[0]:
        return kept[1]
    row = await Course.get(code=code)
    _parsed[code] = (row.loaded_at, row.spec)
    return row.spec


async def course_named(text: str) -> CourseSpec | None:
    """An active course by its title or code, as someone types it (《》 and blanks ignored)."""
    name = text.strip().strip("《》").strip()
    row = (await Course.filter(title=name, active=True).first()
           or await Course.filter(code=name.upper(), active=True).first())
    return row.spec if row is not None else None


async def course_titles() -> set[str]:
    return {str(t) for t in await Course.all().values_list("title", flat=True)}
