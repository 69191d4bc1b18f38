"""The training module end to end on the demo plant, through the simulators: a new hire gets the
pre-job pack, reads the lessons, fails a level, retries after the wait and passes the course,
whose hours and credit show in 我的培训, the person's file and the ledger's xlsx; an assignment
is reminded and escalated as the clock moves; a practical check is drawn and failed, sending the
person back to the course; a weak group is found and given its catch-up course.

The service's clock runs with the wall clock; ticks go to 09:00 of days to come, after the
digest time, in a calendar where every day is a working day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from tortoise.context import TortoiseContext

from bot.media import open_store, opened
from bot.settings import SHIPPED_CONFIG
from bot.training import load_training
from models.people.profiles import Profile
from models.people.records import RecordKind, records_of, verify
from models.training.courses import JUDGE_OPTIONS, LETTERS, QuestionType, course_by_code
from models.training.enrolments import Enrolment, EnrolmentStatus, Reason
from models.training.learning import Answer, Asked, Attempt, Phase, Progress, asked
from models.training.practical import PracticalCheck, PracticalStatus
from models.training.records import TrainingRecord
from tests.harness import Service, cli, settled
from tests.plant import PLATFORMS, Person, Phone, Seen, around_the_clock, phone_of, plant

TZ = ZoneInfo("Asia/Shanghai")


def nine_am(service: Service, days: int = 1) -> datetime:
    """09:00 local, `days` days after the service's today."""
    today = service.clock().astimezone(TZ).date()
    return datetime.combine(today + timedelta(days=days), time(9), TZ)


async def courses_loaded(service: Service) -> None:
    async with opened(open_store(service.settings)) as media:
        await load_training(SHIPPED_CONFIG / "training", 80, media, service.clock())


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    async with plant(database_url, media_dir, platform=request.param,
                     **around_the_clock(tmp_path)) as (sim, service):
        await courses_loaded(service)
        yield phone_of(sim), service


@pytest.fixture
async def wecom(db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path
                ) -> AsyncIterator[tuple[Phone[Any], Service]]:
    rules = tmp_path / "training.toml"
    rules.write_text((SHIPPED_CONFIG / "training.toml").read_text(encoding="utf-8").replace(
        "min_attempts = 5", "min_attempts = 2").replace("retry_wait_minutes = 30",
                                                         "retry_wait_minutes = 0"),
        encoding="utf-8")
    async with plant(database_url, media_dir, training_rules_file=rules,
                     **around_the_clock(tmp_path)) as (sim, service):
        await courses_loaded(service)
        yield phone_of(sim), service


async def question(person: Person) -> tuple[Seen, Attempt, Asked]:
    """The question card the person has just been sent, its attempt, and how it was shown."""
    card = await person.expect("题 · ")
    attempt = await Attempt.filter(person_id=person.id, finished_at=None).order_by("-id").get()
    spec = await course_by_code(attempt.course)
    assert spec is not None
    return card, attempt, asked(spec, attempt, attempt.at)


async def answers(person: Person, right: bool) -> Seen:
    """Answer the open question, rightly or not: a press for single choice and 对/错, typed
    letters for multiple choice. Returns the card."""
    card, _, shown = await question(person)
    correct = shown.shown_letters(shown.question.answer)
    letters = correct if right else next(c for c in LETTERS[:len(shown.options)]
                                         if c not in correct)
    if shown.question.type is QuestionType.MULTIPLE:
        await person.says(letters.lower() if right else letters)
    else:
        label = (JUDGE_OPTIONS[LETTERS.index(letters)]
                 if shown.question.type is QuestionType.JUDGE else letters)
        await person.clicks(card, label)
    await person.expect("✅ 回答正确" if right else "❌ 回答错误", "解析：")
    return card


async def reads_lessons(person: Person) -> None:
    """下一页 until the level's quiz starts."""
    while True:
        page = await person.expect("回复“下一页”")
        await person.says("下一页")
        if "开始本关测验" in page.text:
            await person.expect("测验开始")
            return


async def takes_level(person: Person, wrong: int = 0) -> str:
    """Answer the rest of a level's quiz, the questions before the `wrong`th wrongly; the
    closing words."""
    attempt = await Attempt.filter(person_id=person.id, finished_at=None).order_by("-id").get()
    for n in range(attempt.at, attempt.size):
        await answers(person, right=n >= wrong)
    return (await person.expect("测验结束")).text


async def passes_course(person: Person, title: str) -> None:
    await person.says(f"学习 {title}")
    while True:
        await reads_lessons(person)
        closing = await takes_level(person)
        if "恭喜通过" in closing:
            return
        assert "本关通过" in closing
        await person.says("学习")


async def test_a_new_hire_learns_fails_a_level_retries_and_passes(
        world: tuple[Phone[Any], Service], tmp_path: Path, database_url: str) -> None:
    phone, service = world
    zhaolei = Person(phone, "zhaolei")
    first_day = nine_am(service).date()
    await Profile.update_or_create(person_id="zhaolei",
                                   defaults={"post": "操作工", "hired_on": first_day})

    # The first morning: the pre-job pack, once.
    await service.tick_at(nine_am(service))
    welcome = await zhaolei.expect("【岗前培训】", "《三级安全教育·车间级》")
    assert f"截止{first_day + timedelta(days=7):%m月%d日}" in welcome.text
    await service.tick_at(datetime.combine(first_day + timedelta(days=1), time(9), TZ))
    await settled()
    assert not [m for m in zhaolei.unread() if "岗前培训" in m.text]

    await zhaolei.says("我的培训")
    mine = await zhaolei.expect("我的培训 · 赵磊")
    assert "《三级安全教育·车间级》岗前培训" in mine.text and "学时：0/24" in mine.text

    # The lessons, screen by screen; a word that is not 下一页 is told how to go on.
    await zhaolei.says("学习")
    await zhaolei.expect("《三级安全教育·车间级》", "第1/")
    await zhaolei.says("知道了")
    await zhaolei.expect("请回复“下一页”继续阅读")
    await zhaolei.says("下一页")
    await reads_lessons(zhaolei)

    # Level 1 failed: a typed answer that names no option is asked again, a second press of
    # the same card is answered 已作答 and counted once.
    card, attempt, shown = await question(zhaolei)
    await zhaolei.says("Z")
    await zhaolei.expect("没有这个选项")
    await zhaolei.expect("题 · ")
    wrong = next(c for c in LETTERS[:len(shown.options)]
                 if c not in shown.shown_letters(shown.question.answer))
    if shown.question.type is QuestionType.MULTIPLE:
        await zhaolei.says(wrong)
        await zhaolei.expect("❌ 回答错误")
        await zhaolei.expect("第1关 第2/")
    else:
        label = (JUDGE_OPTIONS[LETTERS.index(wrong)]
                 if shown.question.type is QuestionType.JUDGE else wrong)
        await zhaolei.clicks(card, label)
        await zhaolei.expect("❌ 回答错误")
        await zhaolei.expect("第1关 第2/")
        await zhaolei.clicks(card, label)
        await zhaolei.expect("该题已作答")
    assert await Answer.filter(attempt_id=attempt.id).count() == 1
    await zhaolei.says("学习")              # the question open is sent again
    await zhaolei.expect("继续上次的测验：第2/")
    closing = await takes_level(zhaolei, wrong=attempt.size)   # the rest wrong too
    assert "得分0分" in closing and "本关未通过" in closing
    await zhaolei.says("学习")
    await zhaolei.expect("第1关未通过", "后可以重考")

    # After the wait, the same questions in a new attempt.
    await service.time_passes(service.clock() + timedelta(minutes=31))
    await zhaolei.says("学习")
    await zhaolei.expect("测验开始")
    retry = await Attempt.filter(person_id="zhaolei", finished_at=None).get()
    assert retry.number == 2
    assert sorted(q for q, _ in retry.order) == sorted(q for q, _ in attempt.order)
    assert "本关通过" in await takes_level(zhaolei, wrong=1)

    # Levels 2 and 3, and the course is passed.
    for _ in range(2):
        await zhaolei.says("学习")
        await reads_lessons(zhaolei)
        closing = await takes_level(zhaolei)
    assert "恭喜通过《三级安全教育·车间级》，获得8学时、8学分" in closing
    [record] = await TrainingRecord.filter(person_id="zhaolei")
    assert (record.course, record.hours, record.credit, record.source) == (
        "三级安全教育·车间级", 8, 8, "chat")
    assert record.score is not None and record.score >= 80
    prejob = await Enrolment.get(person_id="zhaolei", reason=Reason.PREJOB)
    assert prejob.status is EnrolmentStatus.DONE
    assert prejob.done_on == service.clock().astimezone(TZ).date()
    assert (await Progress.get(person_id="zhaolei")).phase is Phase.DONE

    # 我的培训, the person's file and its xlsx show the hours and the credit.
    await zhaolei.says("我的培训")
    mine = await zhaolei.expect("我的培训 · 赵磊")
    assert "学时：8/24" in mine.text and "学分：8/12" in mine.text
    assert "三级安全教育·车间级 8学时 8学分" in mine.text and "（线上）" in mine.text
    await zhaolei.says("我的档案")
    file = await zhaolei.expect("一人一档 · 赵磊")
    assert "三级安全教育·车间级 8学时 8学分" in file.text
    [chained] = await records_of("zhaolei", RecordKind.TRAINING)
    assert chained.data["credit"] == 8 and chained.data["source"] == "chat"
    assert (await verify())[2] == []
    out = tmp_path / "export"
    done = cli("export-training", "--out", str(out),
               env={"SAFETYBOT_DATABASE_URL": database_url})
    assert done.returncode == 0, done.stderr
    book = load_workbook(next(out.glob("培训台账-*.xlsx")), read_only=True)
    rows = [r for r in book["培训记录"].iter_rows(values_only=True) if r[0] == "zhaolei"]
    assert [(r[5], r[6], r[7], r[10]) for r in rows] == [("三级安全教育·车间级", 8, 8, "线上")]
    [summary] = [r for r in book["学时汇总"].iter_rows(values_only=True) if r[0] == "zhaolei"]
    assert summary[4:8] == (8, 20, 8, 12)


async def test_an_assignment_is_reminded_and_escalated(wecom: tuple[Phone[Any], Service]
                                                       ) -> None:
    phone, service = wecom
    sunli, gaofeng, xuming, boss = (Person(phone, p) for p in
                                    ("sunli", "gaofeng", "xuming", "chenjianguo"))
    due = nine_am(service, 5).date()
    # Bad orders are refused and give nothing.
    await Person(phone, "zhangsan").says(f"布置培训 动火作业安全 设备部 {due}")
    await Person(phone, "zhangsan").expect("布置培训由安全管理员操作")
    await sunli.says(f"布置培训 动火作业 设备部 {due}")
    await sunli.expect("没有找到课程“动火作业”")
    await sunli.says("布置培训 动火作业安全 设备部 下周")
    await sunli.expect("“下周”不是日期")
    await sunli.says(f"布置培训 动火作业安全 设备部 维修三部 {due}")
    await sunli.expect("名册中没有部门、岗位或人员“维修三部”")
    assert await Enrolment.filter(reason=Reason.ASSIGNED).count() == 0

    await sunli.says(f"布置培训 《动火作业安全》 设备部 {due:%m月%d日}")
    await sunli.expect("已向设备部共3人布置《动火作业安全》", f"{due:%Y年%m月%d日}")
    told = await gaofeng.expect("【培训任务】孙丽为您布置了《动火作业安全》")
    assert f"{due:%m月%d日}前完成" in told.text
    await sunli.says(f"布置培训 动火作业安全 设备部 {due}")
    await sunli.expect("共0人", "另有3人已有该课程的未完成任务")

    # Three days before: reminded once; after the deadline, the supervisor, then theirs.
    await service.tick_at(datetime.combine(due - timedelta(days=3), time(9), TZ))
    await gaofeng.expect("【培训提醒】《动火作业安全》", "还有3天")
    await service.tick_at(datetime.combine(due - timedelta(days=3), time(15), TZ))
    await service.tick_at(datetime.combine(due + timedelta(days=1), time(9), TZ))
    await gaofeng.expect("【培训逾期】《动火作业安全》", "已告知您的上级")
    late = await xuming.expect("【培训逾期】以下人员未按期完成培训")
    assert "高峰《动火作业安全》" in late.text and "已逾期1天" in late.text
    await service.tick_at(datetime.combine(due + timedelta(days=3), time(9), TZ))
    await boss.expect("【培训逾期】", "徐明《动火作业安全》", "已逾期1天")   # his own
    await boss.expect("【培训逾期】", "高峰《动火作业安全》", "已逾期3天")
    await settled()
    assert not [m for m in gaofeng.unread() if "培训提醒" in m.text]
    assert not [m for m in xuming.unread() if "培训逾期" in m.text]
    row = await Enrolment.filter(person_id="gaofeng", reason=Reason.ASSIGNED).get()
    assert row.sent == ["e1", "e2", "r1", "r3"] and row.next_on is None


async def test_a_practical_check_is_drawn_and_failed(wecom: tuple[Phone[Any], Service]
                                                     ) -> None:
    phone, service = wecom
    huangjun, lihua, zhangsan = (Person(phone, p) for p in ("huangjun", "lihua", "zhangsan"))
    await passes_course(huangjun, "动火作业安全")      # a practical course
    [pending] = await PracticalCheck.all()
    assert pending.status is PracticalStatus.PENDING

    await service.tick_at(nine_am(service))
    card = await lihua.expect("实操抽查", "黄军")
    assert card.labels == ["合格", "不合格"]
    await zhangsan.clicks(card, "不合格")      # a card that reached someone else
    await zhangsan.expect("由被抽查人员的上级或安全管理员记录")
    await lihua.clicks(card, "不合格")
    await lihua.expect("1/2 请发送现场实操的照片")
    await lihua.says("气体检测不规范")
    await lihua.expect("请发送现场实操的照片，不是文字")
    await lihua.sends_photo()
    await lihua.expect("2/2 请说明不合格之处")
    await lihua.says("动火前未复测可燃气体")
    await lihua.expect("已记录：黄军《动火作业安全》实操抽查不合格", "重新学习")
    await huangjun.expect("实操抽查不合格：动火前未复测可燃气体", "发送“学习”开始")
    await lihua.clicks(card, "合格")
    await lihua.expect("该实操抽查已记录为“不合格”")

    check = await PracticalCheck.get()
    assert check.status is PracticalStatus.FAILED and check.photo
    [record] = await records_of("huangjun", RecordKind.PRACTICAL)
    assert record.data["passed"] is False
    assert (await Progress.get(person_id="huangjun")).phase is Phase.LESSON
    back = await Enrolment.get(person_id="huangjun", reason=Reason.RETAKE)
    assert back.status is EnrolmentStatus.OPEN and back.chain[0] == "lihua"
    await huangjun.says("我的培训")
    mine = await huangjun.expect("我的培训 · 黄军")
    assert "《动火作业安全》补考重学" in mine.text and "实操抽查 动火作业安全：不合格" in mine.text


async def test_a_weak_group_gets_its_catch_up_course(wecom: tuple[Phone[Any], Service]
                                                     ) -> None:
    phone, service = wecom
    welders = [Person(phone, p) for p in ("huangjun", "wanghaiyan")]
    for welder in welders:               # each fails the first level of 动火作业安全
        await welder.says("学习 动火作业安全")
        await reads_lessons(welder)
        assert "本关未通过" in await takes_level(welder, wrong=4)
    monday = nine_am(service, (7 - service.clock().astimezone(TZ).weekday()) % 7 or 7)
    await service.tick_at(monday)
    told = await Person(phone, "lihua").expect("【培训薄弱】生产部·焊工《动火作业安全》")
    assert "通过率0%（要求不低于70%）" in told.text and "错得最多的题" in told.text
    assert "已为该组2人布置补强课程《动火作业安全·补强》" in told.text
    for welder in welders:
        await welder.expect("【补强课程】", "《动火作业安全·补强》")
    week = await Person(phone, "sunli").expect("培训周报")
    assert "生产部·焊工《动火作业安全》：2 / 0% /" in week.text
    assert await Enrolment.filter(reason=Reason.CATCHUP, course="HOT-WORK-PLUS").count() == 2
    # A second tick the same week gives nothing again.
    await service.tick_at(monday + timedelta(hours=2))
    assert await Enrolment.filter(reason=Reason.CATCHUP).count() == 2


async def test_a_quiz_card_pressed_by_someone_else_changes_nothing(
        wecom: tuple[Phone[Any], Service]) -> None:
    phone, _ = wecom
    gaofeng, zhangsan = Person(phone, "gaofeng"), Person(phone, "zhangsan")
    await gaofeng.says("学习 有限空间作业安全")
    await reads_lessons(gaofeng)
    card, attempt, shown = await question(gaofeng)
    while shown.question.type is QuestionType.MULTIPLE:     # typed: a card without buttons
        await gaofeng.says(shown.shown_letters(shown.question.answer))
        await gaofeng.expect("✅ 回答正确")
        card, attempt, shown = await question(gaofeng)
    answered = attempt.at
    await zhangsan.clicks(card, card.labels[0])
    await zhangsan.expect("这是高峰的测验题")
    assert await Answer.filter(attempt_id=attempt.id).count() == answered
    # A stale card of a finished question: 已作答.
    right = shown.shown_letters(shown.question.answer)
    await gaofeng.clicks(card, JUDGE_OPTIONS[LETTERS.index(right)]
                         if shown.question.type is QuestionType.JUDGE else right)
    await gaofeng.expect("✅ 回答正确")
    await gaofeng.clicks(card, card.labels[0])
    await gaofeng.expect("该题已作答")
    assert await Answer.filter(attempt_id=attempt.id).count() == answered + 1
    assert await Answer.filter(attempt_id=attempt.id, question=shown.question.id).count() == 1
    # A forged key is refused.
    await phone.clicks("gaofeng", card, f"train:quiz:{attempt.id}:1:forged:A")
    await gaofeng.expect("无法识别这个操作")



async def test_a_quiz_left_for_a_day_resumes_where_it_stopped_across_a_restart(
        wecom: tuple[Phone[Any], Service]) -> None:
    phone, service = wecom
    gaofeng = Person(phone, "gaofeng")
    await gaofeng.says("学习 有限空间作业安全")
    await reads_lessons(gaofeng)
    for _ in range(2):
        await answers(gaofeng, right=True)
    await settled()
    await service.stop()
    await service.start()
    await service.tick_at(service.clock() + timedelta(days=1))    # the question expires
    await gaofeng.expect("测验已暂停，已答的题目已保存")
    await gaofeng.says("学习")
    await gaofeng.expect("继续上次的测验：第3/")
    _, attempt, _ = await question(gaofeng)
    assert (attempt.number, attempt.at, attempt.correct) == (1, 2, 2)


async def test_a_quiz_left_too_long_starts_its_level_again(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "training.toml"
    rules.write_text((SHIPPED_CONFIG / "training.toml").read_text(encoding="utf-8").replace(
        "restart_quiz_after_hours = 0", "restart_quiz_after_hours = 12"), encoding="utf-8")
    async with plant(database_url, media_dir, training_rules_file=rules,
                     **around_the_clock(tmp_path)) as (sim, service):
        await courses_loaded(service)
        gaofeng = Person(phone_of(sim), "gaofeng")
        await gaofeng.says("学习 有限空间作业安全")
        await reads_lessons(gaofeng)
        await answers(gaofeng, right=True)
        await service.time_passes(service.clock() + timedelta(hours=13))
        await gaofeng.says("学习")
        await gaofeng.expect("上次的测验中断太久，本关从第一题重新开始")
        _, attempt, _ = await question(gaofeng)
        assert (attempt.number, attempt.at) == (2, 0)
        [left] = await Attempt.filter(person_id="gaofeng", number=1)
        assert left.finished_at is not None and left.score is None
