"""`学习` (or the menu's 学习): the next lesson of the course due first, screen after screen
(下一页), then the level's quiz, one question a card, the explanation after each answer and the
score at the end. Where the person stopped is in the database, so a restart or a day away
resumes there (or, as configured, a quiz left too long starts its level again)."""

from __future__ import annotations

import re

from handlers.dialog import Dialog, Reask, Step
from handlers.router import Context, Router
from handlers.words import after, starts_with, typed
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog
from models.inbound import InboundKind
from models.outgoing import Button, Card, CardUpdate, Image, Markdown, Text
from models.people.profiles import profile_of
from models.training.courses import (
    JUDGE_OPTIONS,
    LETTERS,
    CourseSpec,
    QuestionType,
    active_courses,
    course_by_code,
    course_named,
)
from models.training.enrolments import open_enrolments
from models.training.learning import (
    Asked,
    Attempt,
    Phase,
    Progress,
    Result,
    abandon,
    asked,
    attempt_by_id,
    begin,
    new_attempt,
    open_attempt,
    progress_of,
    progresses_of,
    stale,
    take_answer,
    turn_page,
)

router = Router()
starts = Router()
LEARN = starts_with("学习")
MENU_KEY = "learn"               # the app menu's 学习
NEXT_WORDS = ("下一页", "继续", "下一步", "好", "好的", "n", "N")
JUDGE_WORDS = {"对": "A", "正确": "A", "√": "A", "是": "A", "错": "B", "错误": "B", "×": "B",
               "否": "B"}
SPACES = re.compile(r"[\s,，、.。;；]+")


@router.on(typed(LEARN))
async def learn(ctx: Context) -> None:
    await _learn(ctx, " ".join(after(ctx, LEARN)))


@starts.on(lambda e: e.kind is InboundKind.MENU and e.event_key == MENU_KEY)
async def from_menu(ctx: Context) -> None:
    await _learn(ctx, "")


async def _learn(ctx: Context, named: str) -> None:
    """Typed in the middle of another question (a report half-told), 学习 leaves it alone."""
    row = await ctx.dialog()
    if row is not None and row.kind not in (LessonDialog.kind, QuizDialog.kind):
        await ctx.reply(Text("您还有未完成的操作，请先完成，或回复“取消”后再发送“学习”。"))
        return
    spec = await _course_for(ctx, named)
    if spec is not None:
        await resume(ctx, spec)


async def _course_for(ctx: Context, named: str) -> CourseSpec | None:
    """The course named, or the one last under way, or the open course due first; None, and
    the person told what there is, when there is none."""
    if named:
        spec = await course_named(named)
        if spec is None:
            await ctx.reply(Text(f"没有找到课程“{named}”。发送“我的培训”查看可学的课程。"))
        return spec
    due = await open_enrolments(ctx.me.id)
    started = await progresses_of(ctx.me.id)
    under_way = sorted((p for p in started.values() if p.phase is not Phase.DONE),
                       key=lambda p: p.updated_at, reverse=True)
    code = under_way[0].course if under_way else due[0].course if due else None
    spec = await course_by_code(code) if code else None
    if spec is None:
        offered = [c.title for c in await active_courses() if not c.catchup_only]
        await ctx.reply(Text("您目前没有待完成的培训任务。可自学的课程："
                             + "、".join(f"《{t}》" for t in offered)
                             + "。发送“学习 课程名”开始，例如：学习 " + (offered[0] if offered
                                                                           else "")))
    return spec


async def resume(ctx: Context, spec: CourseSpec, progress: Progress | None = None) -> None:
    """Where the person is in `spec` (`progress`, when the caller has just read it): the lesson
    screen, or the quiz's question. Opening the next question replaces the open one."""
    progress = progress or await begin(ctx.me.id, spec.code, ctx.now)
    if progress.phase is Phase.LESSON:
        await LessonDialog.open(ctx, "page", data={"course": spec.code})
        await _screen_image(ctx, spec, progress)
        await ctx.reply(_screen(spec, progress))
        return
    if progress.retry_at is not None and progress.retry_at > ctx.now:
        at = ctx.local(progress.retry_at)
        await ctx.reply(Text(f"《{spec.title}》第{progress.level + 1}关未通过，"
                             f"{at:%m月%d日 %H:%M}后可以重考，请先回顾本关的错题解析。"))
        return
    attempt = await open_attempt(progress)
    lead = ""
    if attempt is not None and stale(attempt, ctx.now, ctx.rules.training.restart_after):
        await abandon(attempt, ctx.now)
        attempt = None
        lead = "上次的测验中断太久，本关从第一题重新开始。"
    if attempt is None:
        profile = await profile_of(ctx.me.id)
        attempt = await new_attempt(progress, spec, ctx.me.department_id, profile.post,
                                    ctx.now)
        level = spec.levels[progress.level]
        lead = lead or (f"《{spec.title}》{level.title}测验开始，共{attempt.size}题，"
                        f"{spec.pass_mark}分及格。")
    elif not lead:
        lead = f"继续上次的测验：第{attempt.at + 1}/{attempt.size}题。"
    await QuizDialog.open(ctx, "question", data={"attempt": attempt.id})
    await ctx.reply(Text(lead))
    await ctx.reply(question_card(spec, attempt, ctx.event_id))


def _screen(spec: CourseSpec, progress: Progress) -> Markdown:
    level = spec.levels[progress.level]
    lesson = level.lessons[progress.lesson]
    screens = lesson.screens
    last = (progress.lesson + 1 == len(level.lessons)
            and progress.screen + 1 == len(screens))
    then = "开始本关测验" if last else "继续"
    video = f"\n\n视频：[{lesson.title}]({lesson.video})" if lesson.video else ""
    return Markdown(
        f"**《{spec.title}》{level.title}**\n"
        f"> {lesson.title}（约{lesson.minutes}分钟）　第{progress.screen + 1}/{len(screens)}页\n\n"
        f"{screens[progress.screen].text}{video if progress.screen == 0 else ''}\n\n"
        f"回复“下一页”{then}，回复“取消”暂停（进度会保存）。")


async def _screen_image(ctx: Context, spec: CourseSpec, progress: Progress) -> None:
    image = spec.levels[progress.level].lessons[progress.lesson].screens[progress.screen].image
    if image:
        await ctx.reply(Image(image, about=spec.title))


def question_card(spec: CourseSpec, attempt: Attempt, event_id: int) -> Card:
    """The question being asked, its options as buttons (a multiple-choice one's are typed);
    the card is named by the event that sends it, as a question may be sent again."""
    shown = asked(spec, attempt, attempt.at)
    q = shown.question
    how = ("请回复全部正确选项的字母，例如 AC" if q.type is QuestionType.MULTIPLE
           else "请点击选项作答，也可以直接回复字母")
    buttons = () if q.type is QuestionType.MULTIPLE else tuple(
        Button(JUDGE_OPTIONS[i] if q.type is QuestionType.JUDGE else LETTERS[i],
               f"train:quiz:{attempt.id}:{attempt.at}:{attempt.token}:{LETTERS[i]}")
        for i in range(len(shown.options)))
    return Card(
        task_id=f"quiz-{attempt.id}-{attempt.at}-{event_id}",
        title=f"第{attempt.level + 1}关 第{attempt.at + 1}/{attempt.size}题 · {q.type.label}",
        description=how, body=q.text,
        fields=() if q.type is QuestionType.JUDGE else tuple(
            (LETTERS[i], text) for i, text in enumerate(shown.options)),
        buttons=buttons)


def _answer_words(shown: Asked, letters: str) -> str:
    if shown.question.type is QuestionType.JUDGE:
        return JUDGE_OPTIONS[LETTERS.index(letters)]
    return letters


async def take(ctx: Context, spec: CourseSpec, attempt: Attempt, position: int,
               letters: str) -> None:
    """Keep the answer, say whether it was right and why, then the next question or the
    score. A question answered already is answered 已作答 and kept as it was."""
    progress = await progress_of(attempt.person_id, attempt.course)
    result = None if progress is None else await take_answer(
        attempt, position, letters, spec, progress, ctx.rules.training.retry_wait, ctx.now,
        ctx.local(ctx.now).date())
    if result is None:
        await ctx.reply(Text("该题已作答，请看最新的题目。"))
        return
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code,
                                  f"已作答：{_answer_words(result.asked, letters)}"))
    right = result.asked.shown_letters(result.asked.question.answer)
    verdict = ("✅ 回答正确。" if result.correct else
               f"❌ 回答错误，正确答案：{_answer_words(result.asked, right)}。")
    await ctx.reply(Text(f"{verdict}\n解析：{result.asked.question.explain}"))
    if not result.finished:
        # The quiz's question stays open: its idle time starts again with each answer.
        await QuizDialog.open(ctx, "question", data={"attempt": attempt.id})
        await ctx.reply(question_card(spec, attempt, ctx.event_id))
        return
    await close_dialog(ctx.me.id)
    await ctx.reply(Text(_score_words(spec, attempt, result, ctx)))


def _score_words(spec: CourseSpec, attempt: Attempt, result: Result, ctx: Context) -> str:
    level = spec.levels[attempt.level]
    head = (f"{level.title}测验结束：答对{attempt.correct}/{attempt.size}题，"
            f"得分{result.score:g}分。")
    if result.course_passed:
        return (f"{head}\n🎉 恭喜通过《{spec.title}》，获得{spec.hours:g}学时、{spec.credit:g}"
                "学分，已记入培训档案。发送“我的培训”查看。")
    if result.passed:
        return (f"{head}\n本关通过！第{attempt.level + 2}关已解锁，发送“学习”继续。")
    wait = ctx.rules.training.retry_wait
    when = (f"{ctx.local(ctx.now + wait):%H:%M}后" if wait.total_seconds() else "现在")
    return (f"{head}\n未达到{spec.pass_mark}分，本关未通过。{when}可发送“学习”重考本关，"
            "题目和选项顺序会重新排列。")


def parse_letters(shown: Asked, text: str) -> str:
    """A typed answer as the shown letters: `B`, `a c`, `AC`, an option's own words, or 对/错;
    `Reask` when it names no option."""
    q = shown.question
    words = text.strip()
    if q.type is QuestionType.JUDGE and words in JUDGE_WORDS:
        return JUDGE_WORDS[words]
    if words in shown.options:
        return LETTERS[shown.options.index(words)]
    letters = SPACES.sub("", words).upper()
    valid = LETTERS[:len(shown.options)]
    if letters and all(c in valid for c in letters) and len(set(letters)) == len(letters):
        if q.type is not QuestionType.MULTIPLE and len(letters) != 1:
            raise Reask("这是单选题，请只回复一个选项。")
        return "".join(sorted(letters))
    hint = ("请回复“对”或“错”。" if q.type is QuestionType.JUDGE
            else f"请回复选项字母（{valid[0]}–{valid[-1]}）。")
    raise Reask(f"没有这个选项。{hint}")


class LessonDialog(Dialog[CourseSpec]):
    """Reading a lesson: each 下一页 turns one screen; after the level's last, its quiz."""

    kind = "lesson"

    async def _ask(self) -> None:
        """The screen is sent by `resume`; a wrong answer only says how to go on."""
        if self.lead:
            await self.say(Text(self.lead))

    async def _page(self, text: str) -> None:
        if text not in NEXT_WORDS:
            raise Reask("请回复“下一页”继续阅读，或回复“取消”暂停。")
        progress = await begin(self.ctx.me.id, self.subject.code, self.ctx.now)
        await turn_page(progress, self.subject, self.ctx.now)
        self.moved = True
        await resume(self.ctx, self.subject, progress)

    page = Step(_ask, _page)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> CourseSpec | None:
        return await course_by_code(str(row.data.get("course", "")))

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        await close_dialog(row.user_id)
        await ctx.reply(Text("学习已暂停，进度已保存。发送“学习”可从这一页继续。"))

    async def cancel(self) -> None:
        await self.close()
        await self.say(Text("学习已暂停，进度已保存。发送“学习”可从这一页继续。"))

    async def finish(self) -> None:
        """Never reached: each page closes the dialog and `resume` opens the next."""


class QuizDialog(Dialog[Attempt]):
    """A level's quiz: a typed answer is taken like a pressed button."""

    kind = "quiz"

    async def _ask(self) -> None:
        if self.lead:
            await self.say(Text(self.lead))
        spec = await course_by_code(self.subject.course)
        if spec is not None:
            await self.say(question_card(spec, self.subject, self.ctx.event_id))

    async def _answer(self, text: str) -> None:
        spec = await course_by_code(self.subject.course)
        if spec is None:
            await self.close()
            return
        letters = parse_letters(asked(spec, self.subject, self.subject.at), text)
        self.moved = True
        await take(self.ctx, spec, self.subject, self.subject.at, letters)

    question = Step(_ask, _answer)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> Attempt | None:
        attempt = await attempt_by_id(int(row.data.get("attempt", 0)))
        return attempt if attempt is not None and attempt.finished_at is None else None

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        await close_dialog(row.user_id)
        await ctx.reply(Text("测验已暂停，已答的题目已保存。发送“学习”可从下一题继续。"))

    async def cancel(self) -> None:
        await self.close()
        await self.say(Text("测验已暂停，已答的题目已保存。发送“学习”可从下一题继续。"))

    async def finish(self) -> None:
        """Never reached: the quiz's last answer closes the dialog."""
