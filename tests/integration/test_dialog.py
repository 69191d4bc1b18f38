"""The dialog framework with a dialog of the kind the next modules need: a two-question quiz,
declared as a table of steps, run by a real inbox worker against the durable dialog row. Wrong
answers are asked again with a hint, 返回 goes back and forgets, the row outlives the worker,
取消 ends it, and an unanswered question expires once."""

from __future__ import annotations

from pathlib import Path

from tortoise.context import TortoiseContext

from bot.clock import utc_now
from handlers.dialog import Dialog, Dialogs, Reask, Retry, Step
from handlers.router import Context, Router
from models.dialog import Dialog as DialogRow
from models.inbound import Inbound, InboundKind
from models.inbox import inbox_put
from models.outbox import OutboxMessage
from models.outgoing import Text
from tests.harness import drain, text, worker

FIRE = "1. 动火作业前必须办理什么？请回复 A、B 或 C：\nA. 动火作业票\nB. 请假条\nC. 无需办理"
SPACE = "2. 有限空间作业的顺序是？请回复 A 或 B：\nA. 先通风、再检测、后作业\nB. 直接进入"


async def _choice(dialog: Quiz, text: str) -> str:
    letter = text.upper()
    if letter not in ("A", "B", "C"):
        raise Reask("请回复选项字母。")
    if dialog.step == "space" and letter == "C":
        raise Retry("这道题只有 A、B 两个选项。")
    return letter


class Quiz(Dialog[str]):
    """Two questions of a course; the score at the end."""

    kind = "quiz"
    back_allowed = True
    fire = Step(FIRE, _choice)
    space = Step(SPACE, _choice)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> str | None:
        return str(row.data["course"])

    async def finish(self) -> None:
        right = (self.data["fire"] == "A") + (self.data["space"] == "A")
        await self.close()
        await self.ctx.reply(Text(f"{self.subject}测验完成：答对{right}题，共2题。"))


def quiz_router() -> Router:
    dialogs = Dialogs({Quiz.kind: Quiz})
    router = Router()

    @router.text("测验")
    async def start(ctx: Context) -> None:
        await Quiz.start(ctx, "动火作业安全", data={"course": "动火作业安全"})

    router.kind(InboundKind.EXPIRED)(dialogs.expire)
    router.on(lambda e: True)(dialogs.answer)
    return router


async def said(user: str) -> list[str]:
    """The texts the bot queued for `user`, in order."""
    rows = await OutboxMessage.filter(deliveries__recipient=user).order_by("id")
    return [r.message.content for r in rows if isinstance(r.message, Text)]


async def test_a_quiz_is_a_table_of_steps_run_against_the_durable_row(
        db: TortoiseContext, people: None, media_dir: Path, database_url: str) -> None:
    steps = ["测验", "D", "b", "返回", "A", "C", "A"]
    for n, body in enumerate(steps[:4]):
        await inbox_put(text("zhangsan", n, body), utc_now())
    await drain(worker(media_dir, database_url, quiz_router()))
    # A worker that knows nothing of the first one carries on from the row.
    for n, body in enumerate(steps[4:], 4):
        await inbox_put(text("zhangsan", n, body), utc_now())
    await drain(worker(media_dir, database_url, quiz_router()))
    assert await said("zhangsan") == [
        FIRE,
        f"请回复选项字母。\n{FIRE}",        # D: the hint, then the same question
        SPACE,                             # b: kept as B, on to the next
        FIRE,                              # 返回: the first question again, its answer gone
        SPACE,                             # A
        "这道题只有 A、B 两个选项。",        # C: the hint alone, the question stays open
        "动火作业安全测验完成：答对2题，共2题。",
    ]
    assert await DialogRow.filter(user_id="zhangsan").count() == 0


async def test_cancel_ends_it_and_an_unanswered_question_expires_once(
        db: TortoiseContext, people: None, media_dir: Path, database_url: str) -> None:
    w = worker(media_dir, database_url, quiz_router())
    await inbox_put(text("lisi", 0, "测验"), utc_now())
    await inbox_put(text("lisi", 1, "取消"), utc_now())
    await drain(w)
    assert (await said("lisi"))[-1] == "已取消。"
    await inbox_put(text("lisi", 2, "测验"), utc_now())
    await drain(w)
    row = await DialogRow.get(user_id="lisi")
    for attempt in ("a", "b"):     # the expiry job's tick, twice: one event, one answer
        await inbox_put(Inbound(platform="wecom", user_id="lisi", kind=InboundKind.EXPIRED,
                                event_key=row.asked_at.isoformat(), raw_type="dialog_expired",
                                dedup_key=f"expired:lisi:{attempt}"), utc_now())
    await drain(w)
    ended = "刚才的操作长时间没有回复，已结束。如需继续，请重新操作。"
    assert (await said("lisi"))[-1] == ended
    assert (await said("lisi")).count(ended) == 1
    assert await DialogRow.filter(user_id="lisi").count() == 0

