"""A person's way through a course: the lesson screen they are on, then each level's quiz (闯关),
one attempt at a time, the questions in a new order and the options shuffled for each. Every
answer is a row of its own, kept once; a level passed opens the next, and the last one passed
puts the course's hours and credit in the ledger."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from tortoise import fields
from tortoise.expressions import F
from tortoise.models import Model

from models import atomic
from models.people.records import NewRecord, RecordKind, append_many
from models.sql import insert_once
from models.training.courses import LETTERS, CourseSpec, Question, QuestionType
from models.training.enrolments import NewEnrolment, Reason, chains_of, complete, enrol
from models.training.practical import PracticalCheck, add_pending, record_result
from models.training.records import Taken, add_training

_shuffle = random.SystemRandom().shuffle


class Phase(StrEnum):
    LESSON = "lesson"      # reading the level's lessons
    QUIZ = "quiz"          # the level's quiz: an attempt open, or the next one waiting
    DONE = "done"          # every level passed


class Progress(Model):
    id = fields.BigIntField(primary_key=True)
    person_id = fields.CharField(max_length=64)
    course = fields.CharField(max_length=32)
    level = fields.SmallIntField(default=0)
    lesson = fields.SmallIntField(default=0)
    screen = fields.SmallIntField(default=0)
    phase = fields.CharEnumField(Phase, max_length=8, default=Phase.LESSON)
    retry_at = fields.DatetimeField(null=True)      # a failed level's next attempt, not before
    scores: list[float] = fields.JSONField(default=list)  # type: ignore[assignment]  # by level
    started_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    passed_on = fields.DateField(null=True)

    class Meta:
        table = "training_progress"
        unique_together = (("person_id", "course"),)


class Attempt(Model):
    """One try of a level's quiz. `order` is the questions as asked: each id with its options'
    original positions in the order shown ("2031": shown A is the original C …)."""

    id = fields.BigIntField(primary_key=True)
    person_id = fields.CharField(max_length=64)
    course = fields.CharField(max_length=32)
    level = fields.SmallIntField()
    number = fields.SmallIntField()                 # 1 for the first try of the level
    token = fields.CharField(max_length=16)         # in its cards' keys
    order: list[list[str]] = fields.JSONField()  # type: ignore[assignment]
    at = fields.SmallIntField(default=0)            # the question being asked
    correct = fields.SmallIntField(default=0)
    department_id = fields.CharField(max_length=64, null=True)   # for the weekly groups
    post = fields.CharField(max_length=32, default="")
    started_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    score = fields.FloatField(null=True)            # None: abandoned (restarted)
    passed = fields.BooleanField(null=True)

    class Meta:
        table = "training_attempt"
        indexes = (("person_id", "course"), ("finished_at",))

    @property
    def size(self) -> int:
        return len(self.order)


class Answer(Model):
    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=40, unique=True)    # attempt:position: kept once
    attempt_id = fields.BigIntField()
    person_id = fields.CharField(max_length=64)
    course = fields.CharField(max_length=32)
    question = fields.CharField(max_length=32)
    department_id = fields.CharField(max_length=64, null=True)
    post = fields.CharField(max_length=32, default="")
    chosen = fields.CharField(max_length=8)               # the original letters
    correct = fields.BooleanField()
    at = fields.DatetimeField()

    class Meta:
        table = "training_answer"
        indexes = (("at",),)


@dataclass(frozen=True)
class Asked:
    """A question as shown in an attempt: its options in their shuffled order."""

    question: Question
    options: tuple[str, ...]
    shown: str                   # the original positions of the options shown, e.g. "2031"

    def original(self, letters: str) -> str:
        """The original letters of options picked by their shown letters."""
        return "".join(sorted(LETTERS[int(self.shown[LETTERS.index(c)])] for c in letters))

    def shown_letters(self, original: str) -> str:
        return "".join(sorted(LETTERS[self.shown.index(str(LETTERS.index(c)))]
                              for c in original))


def asked(spec: CourseSpec, attempt: Attempt, position: int) -> Asked:
    qid, shown = attempt.order[position]
    question = spec.question(attempt.level, qid)
    return Asked(question, tuple(question.options[int(i)] for i in shown), shown)


@dataclass(frozen=True)
class Result:
    """An answer taken: whether it was right, and where the attempt stands after it."""

    correct: bool
    asked: Asked
    finished: bool
    score: float | None = None
    passed: bool | None = None
    course_passed: bool = False


async def progress_of(person_id: str, course: str) -> Progress | None:
    return await Progress.get_or_none(person_id=person_id, course=course)


async def progresses_of(person_id: str) -> dict[str, Progress]:
    return {p.course: p for p in await Progress.filter(person_id=person_id)}


async def begin(person_id: str, course: str, now: datetime) -> Progress:
    """The person's progress in `course`, started afresh when new or passed before (a course
    taken again: a new year's pack, a retake)."""
    row = await progress_of(person_id, course)
    if row is None:
        return await Progress.create(person_id=person_id, course=course, started_at=now,
                                     updated_at=now)
    if row.phase is Phase.DONE:
        await Progress.filter(id=row.id).update(
            level=0, lesson=0, screen=0, phase=Phase.LESSON, retry_at=None, scores=[],
            started_at=now, updated_at=now, passed_on=None)
        await row.refresh_from_db()
    return row


async def turn_page(progress: Progress, spec: CourseSpec, now: datetime) -> Progress:
    """The next screen, the next lesson, or the quiz once the level's lessons are read."""
    lessons = spec.levels[progress.level].lessons
    screen, lesson, phase = progress.screen + 1, progress.lesson, Phase.LESSON
    if screen >= len(lessons[lesson].screens):
        screen, lesson = 0, lesson + 1
    if lesson >= len(lessons):
        screen, lesson, phase = 0, 0, Phase.QUIZ
    await Progress.filter(id=progress.id).update(screen=screen, lesson=lesson, phase=phase,
                                                 updated_at=now)
    await progress.refresh_from_db()
    return progress


async def open_attempt(progress: Progress) -> Attempt | None:
    return await Attempt.filter(person_id=progress.person_id, course=progress.course,
                                level=progress.level, finished_at=None).first()


async def attempt_by_id(attempt_id: int) -> Attempt | None:
    return await Attempt.get_or_none(id=attempt_id)


async def new_attempt(progress: Progress, spec: CourseSpec, department_id: str | None,
                      post: str, now: datetime) -> Attempt:
    """The level's questions in a new order, each one's options shuffled (a judge question's
    对 and 错 keep their places)."""
    questions = list(spec.levels[progress.level].questions)
    _shuffle(questions)
    order = []
    for q in questions:
        shown = [str(i) for i in range(len(q.options))]
        if q.type is not QuestionType.JUDGE:
            _shuffle(shown)
        order.append([q.id, "".join(shown)])
    number = await Attempt.filter(person_id=progress.person_id, course=progress.course,
                                  level=progress.level, started_at__gte=progress.started_at
                                  ).count() + 1
    return await Attempt.create(
        person_id=progress.person_id, course=progress.course, level=progress.level,
        number=number, token=secrets.token_hex(4), order=order, department_id=department_id,
        post=post, started_at=now, updated_at=now)


async def abandon(attempt: Attempt, now: datetime) -> None:
    """A quiz left too long: closed without a score; the level starts again."""
    await Attempt.filter(id=attempt.id, finished_at=None).update(finished_at=now)


def stale(attempt: Attempt, now: datetime, restart_after: timedelta | None) -> bool:
    return restart_after is not None and attempt.updated_at < now - restart_after


async def take_answer(attempt: Attempt, position: int, letters: str, spec: CourseSpec,
                      progress: Progress, retry_wait: timedelta, now: datetime, today: date
                      ) -> Result | None:
    """Keep the answer to the question at `position` (shown letters), and move the attempt on;
    None when that question was answered already (a second press, an old card). A level
    failed may be tried again after `retry_wait`."""
    shown = asked(spec, attempt, position)
    chosen = shown.original(letters)
    right = chosen == shown.question.answer
    async with atomic():
        moved = await Attempt.filter(id=attempt.id, at=position, finished_at=None).update(
            at=position + 1, correct=F("correct") + int(right), updated_at=now)
        if not moved:
            return None
        await insert_once(Answer, [{
            "key": f"{attempt.id}:{position}", "attempt_id": attempt.id,
            "person_id": attempt.person_id, "course": attempt.course,
            "question": shown.question.id, "department_id": attempt.department_id,
            "post": attempt.post, "chosen": chosen, "correct": right, "at": now}], "key")
        await attempt.refresh_from_db()
        if attempt.at < attempt.size:
            return Result(right, shown, finished=False)
        return await _finish(attempt, spec, progress, retry_wait, now, today, right, shown)


async def _finish(attempt: Attempt, spec: CourseSpec, progress: Progress, retry_wait: timedelta,
                  now: datetime, today: date, right: bool, shown: Asked) -> Result:
    score = round(100 * attempt.correct / attempt.size, 1)
    passed = score >= spec.pass_mark
    await Attempt.filter(id=attempt.id).update(finished_at=now, score=score, passed=passed)
    if not passed:
        await Progress.filter(id=progress.id).update(retry_at=now + retry_wait, updated_at=now)
        return Result(right, shown, finished=True, score=score, passed=False)
    scores = [*progress.scores, score]
    last = progress.level + 1 >= len(spec.levels)
    await Progress.filter(id=progress.id).update(
        level=progress.level if last else progress.level + 1, lesson=0, screen=0,
        phase=Phase.DONE if last else Phase.LESSON, retry_at=None, scores=scores,
        updated_at=now, passed_on=today if last else None)
    if last:
        mean = round(sum(scores) / len(scores), 1)
        await add_training([Taken(attempt.person_id, spec.title, spec.hours, today, mean, True,
                                  spec.credit)], "chat", attempt.person_id, now)
        await complete(attempt.person_id, spec.code, today)
        if spec.practical:
            await add_pending(attempt.person_id, spec.code, attempt.department_id, today, now)
    return Result(right, shown, finished=True, score=score, passed=True, course_passed=last)


async def conclude_practical(check: PracticalCheck, passed: bool, photo: str, note: str,
                             by: str, spec: CourseSpec, due_on: date, now: datetime,
                             remind: tuple[int, ...], escalate: tuple[int, ...]) -> bool:
    """合格 or 不合格, recorded once (False when it was already) and in the person's file; 不合格
    sends the person back to the course, from its start, by `due_on`."""
    async with atomic():
        if not await record_result(check, passed, photo, note, by, now):
            return False
        await append_many([NewRecord(check.person_id, RecordKind.PRACTICAL, {
            "course": spec.title, "passed": passed, "note": note, "photo": photo})], by, now)
        if not passed:
            await Progress.filter(person_id=check.person_id, course=check.course).update(
                level=0, lesson=0, screen=0, phase=Phase.LESSON, retry_at=None, scores=[],
                started_at=now, updated_at=now, passed_on=None)
            chain = (await chains_of([check.person_id]))[check.person_id]
            await enrol([NewEnrolment(check.person_id, check.course, Reason.RETAKE,
                                      f"practical:{check.id}", due_on, chain)],
                        now, remind, escalate)
    return True
