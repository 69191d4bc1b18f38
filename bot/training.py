"""The training module's files: config/training.toml (the rules) and the course files of
config/training/ (one TOML file a course), checked whole before anything is stored. A bad entry
stops `safetybot load-training` (and start-up, for the rules) with one line naming the file and
the entry, as a bad roster or plan does. The lessons' pictures go into the media store."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.loading import Entry, read_toml_file, show
from bot.media import MediaStore, MediaUnavailable, content_type
from models.training.courses import (
    JUDGE_OPTIONS,
    LETTERS,
    CourseSpec,
    Lesson,
    Level,
    LoadReport,
    Question,
    QuestionType,
    Screen,
    store_courses,
)
from models.training.rules import TrainingRules, WeakThresholds

CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")
IMAGE_TYPES = ("image/png", "image/jpeg")
IMAGE_MAX_BYTES = 10 * 1024 * 1024      # WeCom's media/upload for an image
LESSON_MINUTES = 8                      # a lesson is read in a break
SCREEN_CHARS = 500                      # one phone screen, inside a 2,048-byte message
QUESTION_CHARS = 160                    # a card's body
OPTION_CHARS = 40
COURSE_KEYS = ("code", "title", "summary", "posts", "required", "credit", "hours", "pass_mark",
               "practical", "stage", "prejob", "catchup", "catchup_only", "levels")
STAGES = ("厂级", "车间级", "班组级")


class TrainingConfigError(Exception):
    """A course or rules file that cannot be used; the message names the file and entry."""


# ---------------------------------------------------------------------------------------------
# The rules


def load_training_rules(path: Path) -> TrainingRules:
    data = _toml(path)
    t = Entry(path.name, data, ("pass_mark", "retry_wait_minutes", "restart_quiz_after_hours",
                                "remind_days", "escalate_days", "prejob_days", "retrain_days",
                                "practical", "weak", "credit_targets", "classroom"),
              error=TrainingConfigError, shape="a table")
    practical = Entry(f"{path.name}: practical", data.get("practical", {}), ("share", "days"),
                      error=TrainingConfigError, shape="a table")
    weak = Entry(f"{path.name}: weak", data.get("weak", {}),
                 ("pass_rate", "mean_score", "completion", "min_attempts", "catchup_days"),
                 error=TrainingConfigError, shape="a table")
    targets = data.get("credit_targets", {"*": 12})
    if not isinstance(targets, dict) or not all(
            _number(v) and v >= 0 for v in targets.values()):
        raise TrainingConfigError(f"{path.name}: credit_targets must map posts (\"*\" for the "
                                  "rest) to credits, 0 or more")
    restart = _whole(t, "restart_quiz_after_hours", 0, 0, 24 * 90)
    return TrainingRules(
        pass_mark=_whole(t, "pass_mark", 80, 1, 100),
        retry_wait=timedelta(minutes=_whole(t, "retry_wait_minutes", 30, 0, 7 * 24 * 60)),
        restart_after=timedelta(hours=restart) if restart else None,
        remind_days=_days(t, "remind_days", (3, 1)),
        escalate_days=_days(t, "escalate_days", (1, 3)),
        prejob_days=_whole(t, "prejob_days", 7, 1, 365),
        retrain_days=_whole(t, "retrain_days", 14, 1, 365),
        practical_share=_share(practical, "share", 0.2),
        practical_days=_whole(practical, "days", 7, 1, 60),
        weak=WeakThresholds(
            pass_rate=_share(weak, "pass_rate", 0.7), mean_score=_share(weak, "mean_score", 75,
                                                                       top=100),
            completion=_share(weak, "completion", 0.8),
            min_attempts=_whole(weak, "min_attempts", 5, 1, 10_000),
            catchup_days=_whole(weak, "catchup_days", 14, 1, 365)),
        credit_targets={str(k): float(v) for k, v in targets.items()},
        classroom=t.strings("classroom"))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(t: Entry, key: str, default: int, low: int, high: int) -> int:
    value = t.raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        t.fail(f"{key} must be a whole number from {low} to {high}")
    return value


def _share(t: Entry, key: str, default: float, top: float = 1.0) -> float:
    value = t.raw.get(key, default)
    if not _number(value) or not 0 <= value <= top:
        t.fail(f"{key} must be a number from 0 to {top:g}")
    return float(value)


def _days(t: Entry, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = t.raw.get(key, list(default))
    if not isinstance(value, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 365 for d in value):
        t.fail(f"{key} must be a list of days from 0 to 365")
    return tuple(sorted(set(value), reverse=key == "remind_days"))


def _toml(path: Path) -> dict[str, Any]:
    return read_toml_file(path, TrainingConfigError)


# ---------------------------------------------------------------------------------------------
# The courses


def parse_courses(directory: Path, pass_mark: int) -> tuple[list[CourseSpec], dict[str, Path]]:
    """Every course file of `directory`, checked alone and against each other; the courses and
    the pictures their screens name (by the name the screen gives, resolved to a file)."""
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if not files:
        raise TrainingConfigError(f"{directory}: no course files (*.toml)")
    courses: list[CourseSpec] = []
    images: dict[str, Path] = {}
    for path in files:
        course = _course(path, _toml(path), pass_mark, images)
        for other in courses:
            if other.code == course.code or other.title == course.title:
                raise TrainingConfigError(f"{path.name}: code {show(course.code)} or title "
                                          f"{show(course.title)} is used by another course")
        courses.append(course)
    codes = {c.code: c for c in courses}
    for course in courses:
        if course.catchup and (course.catchup not in codes or course.catchup == course.code):
            raise TrainingConfigError(f"{course.code}: catchup {show(course.catchup)} is not "
                                      "another course of the folder")
    return courses, images


def _course(path: Path, data: dict[str, Any], pass_mark: int, images: dict[str, Path]
            ) -> CourseSpec:
    t = Entry(path.name, data, COURSE_KEYS, error=TrainingConfigError, shape="a course")
    code = t.required("code", 32)
    if not CODE.fullmatch(code):
        t.fail(f"code {show(code)} must be capital letters, digits and -")
    stage = t.optional("stage") or ""
    if stage:
        t.choices("stage", stage, STAGES)
    raw_levels = data.get("levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        t.fail("levels must be at least one [[levels]] table")
    seen: set[str] = set()
    levels = tuple(_level(path, i, raw, seen, images) for i, raw in enumerate(raw_levels, 1))
    return CourseSpec(
        code=code, title=t.required("title", 100), summary=t.optional("summary", 60) or "",
        posts=t.strings("posts"), required=_flag(t, "required"),
        credit=_amount(t, "credit"), hours=_amount(t, "hours"),
        pass_mark=_whole(t, "pass_mark", pass_mark, 1, 100), levels=levels,
        practical=_flag(t, "practical"), stage=stage, prejob=_flag(t, "prejob"),
        catchup=t.optional("catchup", 32) or "", catchup_only=_flag(t, "catchup_only"))


def _flag(t: Entry, key: str) -> bool:
    value = t.raw.get(key, False)
    if not isinstance(value, bool):
        t.fail(f"{key} must be true or false")
    return value


def _amount(t: Entry, key: str) -> float:
    value = t.raw.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 200:
        t.fail(f"{key} must be a number above 0 (at most 200)")
    return float(value)


def _level(path: Path, n: int, raw: object, seen: set[str], images: dict[str, Path]) -> Level:
    where = f"{path.name}: levels[{n}]"
    t = Entry(where, raw, ("title", "lessons", "questions"), error=TrainingConfigError,
              shape="a level")
    lessons = t.raw.get("lessons", [])
    questions = t.raw.get("questions", [])
    if (not isinstance(lessons, list) or not lessons or not isinstance(questions, list)
            or not questions):
        t.fail("needs at least one [[levels.lessons]] and one [[levels.questions]]")
    return Level(
        title=t.required("title", 40),
        lessons=tuple(_lesson(path, f"{where}.lessons[{i}]", raw, images)
                      for i, raw in enumerate(lessons, 1)),
        questions=tuple(_question(f"{where}.questions[{i}]", raw, seen)
                        for i, raw in enumerate(questions, 1)))


def _lesson(path: Path, where: str, raw: object, images: dict[str, Path]) -> Lesson:
    t = Entry(where, raw, ("title", "minutes", "video", "screens"), error=TrainingConfigError,
              shape="a lesson")
    minutes = _whole(t, "minutes", 5, 1, LESSON_MINUTES)
    video = t.optional("video", 300) or ""
    if video and not video.startswith("https://"):
        t.fail("video must be an https:// link")
    raw_screens = t.raw.get("screens")
    if not isinstance(raw_screens, list) or not raw_screens:
        t.fail("needs at least one [[levels.lessons.screens]]")
    screens = []
    for i, screen in enumerate(raw_screens, 1):
        s = Entry(f"{where}.screens[{i}]", screen, ("text", "image"),
                  error=TrainingConfigError, shape="a screen")
        text = s.required("text", SCREEN_CHARS).strip()
        image = s.optional("image", 200) or ""
        if image:
            file = (path.parent / image).resolve()
            if not file.is_file():
                s.fail(f"image {show(image)} does not exist")
            images[image] = file
        screens.append(Screen(text=text, image=image))
    return Lesson(title=t.required("title", 40), minutes=minutes, screens=tuple(screens),
                  video=video)


def _question(where: str, raw: object, seen: set[str]) -> Question:
    t = Entry(where, raw, ("id", "type", "text", "options", "answer", "explain"),
              error=TrainingConfigError, shape="a question")
    qid = t.required("id", 32)
    t.where = f"{where} ({qid})"
    if qid in seen:
        t.fail(f"id {show(qid)} is used by another question of the course")
    seen.add(qid)
    kind = t.required("type")
    t.choices("type", kind, [k.value for k in QuestionType])
    qtype = QuestionType(kind)
    if "answer" not in t.raw:
        t.fail("has no answer")
    answer = t.raw["answer"]
    if qtype is QuestionType.JUDGE:
        if "options" in t.raw:
            t.fail("a judge question has no options (they are 对 and 错)")
        if isinstance(answer, bool):
            answer = "对" if answer else "错"
        if answer not in JUDGE_OPTIONS:
            t.fail(f"answer {show(answer)} must be 对 or 错")
        options: tuple[str, ...] = JUDGE_OPTIONS
        letters = LETTERS[JUDGE_OPTIONS.index(answer)]
    else:
        options = t.strings("options")
        if not 2 <= len(options) <= len(LETTERS):
            t.fail(f"needs 2 to {len(LETTERS)} options")
        if any(len(o) > OPTION_CHARS for o in options):
            t.fail(f"an option is longer than {OPTION_CHARS} characters")
        if not isinstance(answer, str) or not answer.strip():
            t.fail("has no answer")
        letters = "".join(sorted(set(answer.strip().upper())))
        wrong = [c for c in letters if c not in LETTERS[:len(options)]]
        if wrong:
            t.fail(f"answer {show(answer)} is not among its {len(options)} options "
                   f"({LETTERS[0]}–{LETTERS[len(options) - 1]})")
        if qtype is QuestionType.SINGLE and len(letters) != 1:
            t.fail(f"a single-choice answer is one letter, not {show(answer)}")
        if qtype is QuestionType.MULTIPLE and len(letters) < 2:
            t.fail(f"a multiple-choice answer names two options or more, not {show(answer)}")
    return Question(id=qid, type=qtype, text=t.required("text", QUESTION_CHARS),
                    options=options, answer=letters, explain=t.required("explain", 200))


async def load_training(directory: Path, pass_mark: int, media: MediaStore, now: datetime
                        ) -> LoadReport:
    """Check every course file, keep the pictures, then store the courses in one transaction."""
    courses, images = parse_courses(directory, pass_mark)
    kept = await _keep_images(images, media)
    return await store_courses([_with_images(c, kept) for c in courses], now)


async def _keep_images(images: dict[str, Path], media: MediaStore) -> dict[str, str]:
    data: dict[str, bytes] = {}
    for name, path in images.items():
        body = await asyncio.to_thread(path.read_bytes)
        if len(body) > IMAGE_MAX_BYTES or content_type(body[:16]) not in IMAGE_TYPES:
            raise TrainingConfigError(f"image {show(name)}: must be a PNG or JPEG of at most "
                                      f"{IMAGE_MAX_BYTES // 1024 // 1024} MB")
        data[name] = body
    try:
        return {name: await media.put(body) for name, body in data.items()}
    except (MediaUnavailable, OSError) as exc:
        raise TrainingConfigError(f"cannot keep the lesson pictures in the media store "
                                  f"{media.url}: {exc}") from None


def _with_images(course: CourseSpec, kept: dict[str, str]) -> CourseSpec:
    """The course with each screen's picture named by its hash in the media store."""
    def level(lv: Level) -> Level:
        return replace(lv, lessons=tuple(replace(ls, screens=tuple(
            replace(s, image=kept[s.image]) if s.image else s for s in ls.screens))
            for ls in lv.lessons))

    return replace(course, levels=tuple(level(lv) for lv in course.levels))

