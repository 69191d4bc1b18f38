"""The review (评估) after an activation closes: the commander gets the task at the close, holds
the review in chat — what went well, what did not, the improvement actions with an owner and a
deadline each — and the actions go to their owners as tickets (改进措施) to be done with evidence
and 复查. What is answered is kept as it is given, so a review left half-way resumes where it
stopped."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from handlers.dialog import Dialog, Retry, Step
from handlers.emergency.speak import say, send
from handlers.hazard.cards import owner_cards
from handlers.hazard.dates import parse_date
from handlers.hazard.views import when
from handlers.router import Context, Router
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog
from models.emergency import Activation, Plan, headline
from models.emergency_review import (
    ActionPlan,
    activation_of,
    keep_draft,
    open_review,
    record_review,
    reviews_waiting,
)
from models.hazard import (
    Refused,
    Stale,
    Status,
    Ticket,
    TicketKind,
    check_review_holder,
    ticket_by_id,
    ticket_numbered,
)
from models.inbound import InboundKind
from models.org import member_named, user_names
from models.outgoing import Button, Card, Text

router = Router()
T = TypeVar("T")
START = re.compile(r"^(应急评估|演练评估|开始评估)\s*(PG-\d{4,})?$")
SEPARATORS = re.compile(r"[\s,，、;；]+")
DONE_WORDS = ("完成", "无", "没有", "结束")
ACTIONS_MAX = 20


async def assign_review(ctx: Context, activation: Activation, plan: Plan) -> None:
    """At the close: the review task, due in 48 hours, and its card to the commander."""
    review = await open_review(activation, plan, ctx.me.id, ctx.now,
                               ctx.rules.emergency.review_after)
    to = review.owner_id or ""
    await send(ctx, Card(
        task_id=f"pg-{activation.id}-{activation.token}", title=f"应急评估 {review.number}",
        description=headline(activation, plan),
        fields=(("期限", when(review.deadline, ctx.rules.tz)),
                ("性质", "演练" if activation.drill else "实战")),
        body="请在期限内组织评估：做得好的方面、存在的问题，以及改进措施（每项有责任人和期限）。"
             "评估完成后，评估报告自动发送给您和安全管理员。",
        buttons=(Button("开始评估", f"emg:review:{activation.id}:{activation.token}", 1),),
    ), [to])
    if to != ctx.me.id:
        names = await user_names([to])
        await say(ctx, f"应急评估任务 {review.number} 已发给{names.get(to, to)}，"
                       f"期限{when(review.deadline, ctx.rules.tz)}。")


@router.on(lambda e: e.kind is InboundKind.TEXT and START.match(e.text.strip()) is not None)
async def typed(ctx: Context) -> None:
    found = START.match(ctx.event.text.strip())
    assert found is not None
    if found.group(2):
        review = await ticket_numbered(found.group(2))
        if review is None or review.kind is not TicketKind.REVIEW:
            await say(ctx, f"没有找到 {found.group(2)}。")
            return
    else:
        waiting = await reviews_waiting(ctx.me.id)
        if not waiting:
            await say(ctx, "您目前没有待完成的应急评估。")
            return
        review = waiting[0]
    await begin(ctx, review)


async def clicked(ctx: Context, activation: Activation) -> None:
    """开始评估 on the review card."""
    waiting = [t for t in await reviews_waiting(ctx.me.id) if t.activation_id == activation.id]
    if not waiting:
        await say(ctx, "该应急评估已完成或不由您负责，无需再次操作。")
        return
    await begin(ctx, waiting[0])


async def begin(ctx: Context, review: Ticket) -> None:
    """Open the review dialog, with what was answered before."""
    async def checked() -> Activation:
        await check_review_holder(review, ctx.me, ctx.now)
        return await activation_of(review)

    activation = await _as_holder(ctx, review, checked())
    if activation is None:
        return
    await ReviewDialog.start(ctx, review, ticket_id=review.id, data=activation.review or {},
                             lead=f"开始应急评估 {review.number}（{activation.label}），"
                                  "随时回复“取消”暂停，已回答的内容会保留。")


async def _as_holder(ctx: Context, review: Ticket, step: Awaitable[T]) -> T | None:
    """A step of holding the review, asked of its holder: someone else's refusal, or a review
    completed meanwhile, is said, and the step gives None."""
    try:
        return await step
    except Refused as refused:
        await say(ctx, refused.reason)
    except Stale:
        await say(ctx, f"{review.number} 已完成，无需再次评估。")
    return None


async def _said(dialog: Dialog[Any], text: str) -> str:
    if len(text) < 1 or len(text) > dialog.ctx.rules.text_max:
        raise Retry(f"请用一两句话回复（不超过{dialog.ctx.rules.text_max}字）。")
    await keep_draft(dialog.subject, {**dialog.data, dialog.step: text})
    return text


class ReviewDialog(Dialog[Ticket]):
    """What went well, what did not, then the actions one message at a time until 完成."""

    kind = "response_review"

    async def _ask_good(self) -> str:
        return "1/3 这次响应中做得好的方面有哪些？"

    async def _ask_problems(self) -> str:
        return "2/3 存在哪些问题？（例如：某岗位响应慢、物资不足、通讯不畅；没有请回复“无”）"

    async def _ask_actions(self) -> str:
        listed = self.data.get("listed", [])
        shown = "".join(f"\n{n}. {a['what']}（{a['name']}，{a['due']}）"
                        for n, a in enumerate(listed, 1))
        return ("3/3 请逐条发送改进措施，每条一行：措施内容 责任人 期限，例如："
                "“增配备用对讲机电池 张三 12月20日”。全部发完后回复“完成”，没有措施请回复“无”。"
                + (f"\n已记下{len(listed)}项：{shown}" if listed else ""))

    async def _actions(self, text: str) -> list[dict[str, str]]:
        listed: list[dict[str, str]] = self.data.get("listed", [])
        if text in DONE_WORDS:
            return listed
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(listed) + len(lines) > ACTIONS_MAX:
            raise Retry(f"一次评估最多登记{ACTIONS_MAX}项改进措施。")
        parsed = [await self._action(line) for line in lines]
        listed = [*listed, *parsed]
        self.remember(listed=listed)
        await keep_draft(self.subject, self.data)
        await self.keep_open()
        await self.say(Text("已记下：" + "；".join(f"{a['what']}（{a['name']}，{a['due']}）"
                                               for a in parsed)
                            + f"。共{len(listed)}项，继续发送下一项，或回复“完成”。"))
        return listed

    async def _action(self, line: str) -> dict[str, str]:
        """措施内容 责任人 期限, in any order, separated by spaces or commas."""
        ctx = self.ctx
        local = ctx.now.astimezone(ctx.rules.tz)
        words = [w for w in SEPARATORS.split(line) if w]
        dated = [w for w in words if parse_date(w, local) is not None]
        owner = None
        for word in words:
            owner = await member_named(word)
            if owner is not None:
                break
        what = " ".join(w for w in words if w not in dated and (owner is None or w not in (
            owner.id, owner.name)))
        if owner is None or not dated or len(what) < 2:
            missing = "责任人" if owner is None else ("期限" if not dated else "措施内容")
            raise Retry(f"“{line}”缺少{missing}。请按“措施内容 责任人 期限”发送，用空格隔开，"
                        "例如：增配备用对讲机电池 张三 12月20日")
        day = parse_date(dated[0], local)
        assert day is not None
        deadline = datetime.combine(day.date(), ctx.rules.calendar.workday_end, ctx.rules.tz)
        if deadline <= ctx.now:
            raise Retry(f"“{line}”的期限已过，请给一个今后的日期。")
        return {"what": what[:ctx.rules.text_max], "owner": owner.id, "name": owner.name,
                "deadline": deadline.isoformat(), "due": f"{deadline:%m月%d日}"}

    good = Step(_ask_good, _said)
    problems = Step(_ask_problems, _said)
    actions = Step(_ask_actions, _actions)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> Ticket | None:
        review = await ticket_by_id(row.ticket_id)
        return review if review is not None and review.status is Status.OPEN else None

    async def cancel(self) -> None:
        await self.close()
        await self.say(Text(f"应急评估 {self.subject.number} 已暂停，已回答的内容已保留。"
                            "发送“应急评估”继续。"))

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        await close_dialog(row.user_id)
        await ctx.reply(Text("应急评估长时间没有回复，已暂停，已回答的内容已保留。"
                             "发送“应急评估”继续。"))

    async def finish(self) -> None:
        ctx, review = self.ctx, self.subject
        actions = [ActionPlan(a["what"], a["owner"], datetime.fromisoformat(a["deadline"]))
                   for a in self.data["actions"]]
        await self.close()
        filed = await _as_holder(ctx, review, record_review(
            review, ctx.me, self.data["good"], self.data["problems"], actions, ctx.now))
        if filed is None:
            return
        for ticket in filed:
            await owner_cards(ctx, ticket, with_photos=False)
        listed = "".join(f"\n{t.number} {a.what}" for t, a in zip(filed, actions, strict=True))
        await say(ctx, f"应急评估 {review.number} 已完成。"
                       + (f"{len(filed)}项改进措施已派发给责任人，完成后由您复查：{listed}"
                          if filed else "没有登记改进措施。")
                       + "\n评估报告将在一分钟内发送给您和安全管理员。")
