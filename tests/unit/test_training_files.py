"""Course files and the training rules as `load-training` and start-up read them: the shipped
ones load, and each bad file is refused with its file and entry named; a typed answer is read
as the options it names; the packs a person is given; an assignment's steps."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.settings import SHIPPED_CONFIG
from bot.training import TrainingConfigError, load_training_rules, parse_courses
from handlers.dialog import Reask
from handlers.training.assign import deadline
from handlers.training.learn import parse_letters
from models.training.courses import Question, QuestionType
from models.training.enrolments import Reason, steps
from models.training.learning import Asked
from models.training.packs import Person, wants
from models.training.rules import TrainingRules

COURSES = SHIPPED_CONFIG / "training"
GOOD = '''code = "T-1"
title = "测试课程"
posts = ["*"]
required = true
credit = 1
hours = 1

[[levels]]
title = "第一关"

[[levels.lessons]]
title = "第一课"
minutes = 5

[[levels.lessons.screens]]
text = "第一页"
{image}
[[levels.questions]]
id = "Q1"
type = "single"
text = "哪一个对？"
options = ["甲", "乙", "丙"]
{answer}
explain = "因为乙对。"

[[levels.questions]]
id = "{second}"
type = "judge"
text = "这句话对吗？"
answer = "对"
explain = "对的。"
'''


def course_dir(tmp_path: Path, answer: str = 'answer = "B"', second: str = "Q2",
               image: str = "") -> Path:
    folder = tmp_path / "courses"
    folder.mkdir(exist_ok=True)
    (folder / "test.toml").write_text(GOOD.format(answer=answer, second=second, image=image),
                                      encoding="utf-8")
    return folder


def test_the_shipped_courses_and_rules_load() -> None:
    courses, images = parse_courses(COURSES, 80)
    titles = {c.title for c in courses}
    assert {"三级安全教育·车间级", "动火作业安全", "有限空间作业安全"} <= titles
    hot = next(c for c in courses if c.code == "HOT-WORK")
    assert hot.practical and hot.catchup == "HOT-WORK-PLUS" and len(hot.levels) == 3
    assert all(ls.minutes < 8 for c in courses for lv in c.levels for ls in lv.lessons)
    kinds = {q.type for c in courses for lv in c.levels for q in lv.questions}
    assert kinds == set(QuestionType)
    assert images == {}
    rules = load_training_rules(SHIPPED_CONFIG / "training.toml")
    assert rules.pass_mark == 80 and rules.remind_days == (3, 1)
    assert rules.escalate_days == (1, 3) and rules.credit_target("安全管理员") == 16
    assert "承包商入厂安全教育" in rules.classroom


def test_a_good_file_loads(tmp_path: Path) -> None:
    [course], _ = parse_courses(course_dir(tmp_path), 80)
    q1, q2 = course.levels[0].questions
    assert (q1.answer, q2.answer, q2.options) == ("B", "A", ("对", "错"))
    assert course.pass_mark == 80


@pytest.mark.parametrize(("change", "said"), [
    ({"answer": ""}, "test.toml: levels[1].questions[1] (Q1): has no answer"),
    ({"answer": 'answer = "D"'},
     'levels[1].questions[1] (Q1): answer "D" is not among its 3 options (A–C)'),
    ({"answer": 'answer = "AB"'}, 'a single-choice answer is one letter, not "AB"'),
    ({"second": "Q1"},
     'levels[1].questions[2] (Q1): id "Q1" is used by another question of the course'),
    ({"image": 'image = "pictures/permit.png"\n'},
     'levels[1].lessons[1].screens[1]: image "pictures/permit.png" does not exist'),
])
def test_a_bad_course_file_names_the_file_and_the_entry(tmp_path: Path, change: dict[str, str],
                                                       said: str) -> None:
    with pytest.raises(TrainingConfigError) as refused:
        parse_courses(course_dir(tmp_path, **change), 80)
    assert said in str(refused.value)
    assert str(refused.value).startswith("test.toml: ")


def test_a_lesson_image_that_exists_is_kept(tmp_path: Path) -> None:
    folder = course_dir(tmp_path, image='image = "permit.png"\n')
    shutil.copy(SHIPPED_CONFIG / "maps" / "a3-evacuation.png", folder / "permit.png")
    [course], images = parse_courses(folder, 80)
    assert course.levels[0].lessons[0].screens[0].image == "permit.png"
    assert images == {"permit.png": (folder / "permit.png").resolve()}


def test_courses_across_files_are_checked(tmp_path: Path) -> None:
    folder = course_dir(tmp_path)
    (folder / "again.toml").write_text((folder / "test.toml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    with pytest.raises(TrainingConfigError, match="is used by another course"):
        parse_courses(folder, 80)
    (folder / "again.toml").unlink()
    text = (folder / "test.toml").read_text(encoding="utf-8")
    (folder / "test.toml").write_text(text.replace('hours = 1', 'hours = 1\ncatchup = "NONE"'),
                                      encoding="utf-8")
    with pytest.raises(TrainingConfigError, match='catchup "NONE" is not another course'):
        parse_courses(folder, 80)
    with pytest.raises(TrainingConfigError, match="no course files"):
        parse_courses(tmp_path / "nowhere", 80)


def test_bad_rules_are_named(tmp_path: Path) -> None:
    path = tmp_path / "training.toml"
    path.write_text("pass_mark = 120\n", encoding="utf-8")
    with pytest.raises(TrainingConfigError, match="pass_mark must be a whole number from 1"):
        load_training_rules(path)
    path.write_text("[weak]\npass_rate = 2\n", encoding="utf-8")
    with pytest.raises(TrainingConfigError, match="weak: pass_rate must be a number from 0"):
        load_training_rules(path)


def shown(kind: QuestionType, options: tuple[str, ...], answer: str) -> Asked:
    order = "".join(str(i) for i in range(len(options)))[::-1]     # shown reversed
    return Asked(Question("Q", kind, "题", options, answer, ""),
                 tuple(options[int(i)] for i in order), order)


def test_a_typed_answer_names_an_option_or_is_asked_again() -> None:
    single = shown(QuestionType.SINGLE, ("甲", "乙", "丙"), "C")
    assert parse_letters(single, "a") == "A" and parse_letters(single, "乙") == "B"
    assert single.original("A") == "C" and single.shown_letters("C") == "A"
    multiple = shown(QuestionType.MULTIPLE, ("甲", "乙", "丙", "丁"), "AD")
    assert parse_letters(multiple, "d, a") == "AD"
    assert multiple.original("AD") == "AD" and multiple.original("B") == "C"
    judge = shown(QuestionType.JUDGE, ("对", "错"), "A")
    assert parse_letters(judge, "正确") == "A" and parse_letters(judge, "×") == "B"
    for bad, table in (("E", single), ("AB", single), ("AA", multiple), ("好的", judge),
                       ("", single)):
        with pytest.raises(Reask):
            parse_letters(table, bad)


def test_packs_follow_the_post_and_the_dates() -> None:
    courses, _ = parse_courses(COURSES, 80)
    rules = TrainingRules()
    today = date(2026, 12, 7)
    old_hand = Person("a", "焊工", date(2015, 3, 1), None)
    assert {(n.course, n.reason) for n in wants(old_hand, courses, rules, today, set())} == {
        ("HOT-WORK", Reason.YEARLY)}
    # Due at the year's end; given in December, a month after.
    [late] = wants(old_hand, courses, rules, today, set())
    [early] = wants(old_hand, courses, rules, date(2026, 6, 1), set())
    assert (late.due_on, early.due_on) == (date(2027, 1, 6), date(2026, 12, 31))
    new_hire = Person("b", "操作工", today, None)
    given = wants(new_hire, courses, rules, today, set())
    assert {(n.course, n.reason) for n in given} == {
        ("CONFINED", Reason.YEARLY), ("WS-INDUCTION", Reason.PREJOB)}
    assert next(n.due_on for n in given if n.reason is Reason.PREJOB) == today + timedelta(7)
    assert not [n for n in wants(new_hire, courses, rules, today, {"三级安全教育·车间级"})
                if n.reason is Reason.PREJOB]
    moved = Person("c", "电工", date(2012, 8, 1), today - timedelta(days=3))   # 第十七条
    assert ("WS-INDUCTION", Reason.POST) in {
        (n.course, n.reason) for n in wants(moved, courses, rules, today, set())}
    long_ago = Person("d", "电工", date(2012, 8, 1), today - timedelta(days=400))
    assert Reason.POST not in {n.reason for n in wants(long_ago, courses, rules, today, set())}


def test_an_assignments_steps_and_its_deadline() -> None:
    due = date(2026, 12, 20)
    assert steps(due, (3, 1), (1, 3)) == [
        ("r3", date(2026, 12, 17)), ("r1", date(2026, 12, 19)), ("e1", date(2026, 12, 21)),
        ("e2", date(2026, 12, 23))]
    today = date(2026, 12, 7)
    assert deadline("12月20日", today) == due and deadline("2026-12-20", today) == due
    assert deadline("1月5日", today) == date(2027, 1, 5)
    assert deadline("下周", today) is None and deadline("2月30日", today) is None
