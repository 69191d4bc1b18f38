"""The README's walk-through of training, in the local web chat on the demo plant as `make run`
leaves it (the demo roster, the courses and the demo training ledger loaded by the CLI): 孙丽
gives 设备部 动火作业安全; 高峰 reads the lessons, fails the first level, passes it after the wait
and the rest, and sees the hours and credit; the next morning's tick draws his practical check,
which 徐明 fails with a photo and a note, sending him back to the course."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp

from models.training.courses import JUDGE_OPTIONS, LETTERS, QuestionType, course_by_code
from models.training.enrolments import Enrolment, Reason
from models.training.learning import Attempt, asked
from simulator.photos import photo
from tests.harness import Service
from tests.webchat_client import Line, Person, upload, words

TZ = ZoneInfo("Asia/Shanghai")



async def answers(person: Person, right: bool) -> None:
    """The open question answered as the page does: a press, or typed letters for multiple
    choice (the right ones, or a wrong one)."""
    card = await person.next("题 · ")
    attempt = await Attempt.filter(person_id=person.user, finished_at=None).get()
    spec = await course_by_code(attempt.course)
    assert spec is not None
    shown = asked(spec, attempt, attempt.at)
    correct = shown.shown_letters(shown.question.answer)
    letters = correct if right else next(c for c in LETTERS[:len(shown.options)]
                                         if c not in correct)
    if shown.question.type is QuestionType.MULTIPLE:
        await person.says(letters)
    else:
        await person.presses(card, JUDGE_OPTIONS[LETTERS.index(letters)]
                             if shown.question.type is QuestionType.JUDGE else letters)
    await person.next("回答正确" if right else "回答错误", "解析：")


async def level(person: Person, wrong: int = 0) -> Line:
    """下一页 through the level's lessons, then its quiz, the first `wrong` answers wrong."""
    while "开始本关测验" not in words(page := await person.next("回复“下一页”")):
        await person.says("下一页")
    await person.says("下一页")
    start = await person.next("测验开始，共")
    size = int(words(start).split("共")[1].split("题")[0])
    for n in range(size):
        await answers(person, right=n >= wrong)
    assert page
    return await person.next("测验结束")


async def test_the_readme_walk_through_of_training(
        web_chat_demo: tuple[aiohttp.ClientSession, Service]) -> None:
    http, service = web_chat_demo
    sunli, gaofeng, xuming = (Person(http, service, p) for p in ("sunli", "gaofeng", "xuming"))
    await sunli.says("布置培训 动火作业安全 设备部 12月20日")
    await sunli.sees("已向设备部共3人布置《动火作业安全》")
    await gaofeng.sees("【培训任务】孙丽为您布置了《动火作业安全》")
    await gaofeng.says("我的培训")
    mine = await gaofeng.next("我的培训 · 高峰")
    assert "《动火作业安全》培训任务" in words(mine)

    await gaofeng.says("学习")
    assert "本关未通过" in words(await level(gaofeng, wrong=6))
    await gaofeng.says("学习")
    await gaofeng.next("后可以重考")
    await service.time_passes(service.clock() + timedelta(minutes=31))
    await gaofeng.says("学习")
    await gaofeng.next("测验开始")
    for _ in range(6):
        await answers(gaofeng, right=True)
    await gaofeng.next("本关通过")
    for _ in range(2):
        await gaofeng.says("学习")
        closing = await level(gaofeng)
    assert "恭喜通过《动火作业安全》，获得2学时、2学分" in words(closing)

    await gaofeng.says("我的培训")
    mine = await gaofeng.next("我的培训 · 高峰")
    assert "动火作业安全 2学时 2学分" in words(mine) and "（线上）" in words(mine)
    await gaofeng.says("我的档案")
    assert "动火作业安全 2学时 2学分" in words(await gaofeng.next("一人一档 · 高峰"))

    # The next working morning: the practical check, failed with a photo and a note.
    today = service.clock().astimezone(TZ).date()
    await service.tick_at(datetime.combine(today + timedelta(days=1), time(9), TZ))
    card = await xuming.next("实操抽查", "高峰", "动火作业安全")
    await xuming.presses(card, "不合格")
    await xuming.next("请发送现场实操的照片")
    status, _ = await upload(http, service.url, "xuming", photo(7))
    assert status == 200
    await xuming.next("请说明不合格之处")
    await xuming.says("动火前未复测可燃气体")
    await xuming.next("已记录：高峰《动火作业安全》实操抽查不合格")
    await gaofeng.next("实操抽查不合格：动火前未复测可燃气体")
    await gaofeng.says("我的培训")
    assert "《动火作业安全》补考重学" in words(await gaofeng.next("我的培训 · 高峰"))
    assert await Enrolment.filter(person_id="gaofeng", reason=Reason.RETAKE).count() == 1
    for person in (sunli, gaofeng, xuming):
        if person.socket is not None:
            await person.socket.close()
