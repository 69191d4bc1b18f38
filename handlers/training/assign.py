"""`布置培训 动火作业安全 维修部 12月20日`: a safety manager gives a course to departments, posts
or people by a deadline. Each learner is told at once; the scheduler reminds them before the
deadline and tells their supervisors after it."""

from __future__ import annotations

import re
from datetime import date

from handlers.router import Context, Router
from handlers.words import after, managers_only, parse_day, starts_with, typed
from models.outgoing import Text
from models.training.courses import course_named
from models.training.enrolments import Reason, create_assignment, people_of_targets

router = Router()
ASSIGN = starts_with("布置培训")
MONTH_DAY = re.compile(r"^(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
HOW = ("请发送“布置培训 课程 部门、岗位或人员 截止日期”，"
       "例如：布置培训 动火作业安全 设备部 12月20日。")


@router.on(typed(ASSIGN))
async def assign(ctx: Context) -> None:
    if not await managers_only(ctx, "布置培训"):
        return
    words = after(ctx, ASSIGN)
    if len(words) < 3:
        await ctx.reply(Text(HOW))
        return
    today = ctx.local(ctx.now).date()
    spec = await course_named(words[0])
    due_on = deadline(words[-1], today)
    if spec is None or due_on is None:
        problem = (f"没有找到课程“{words[0]}”。" if spec is None
                   else f"“{words[-1]}”不是日期。")
        await ctx.reply(Text(problem + HOW))
        return
    if due_on < today:
        await ctx.reply(Text(f"截止日期{due_on:%Y-%m-%d}已经过去，请重新发送。"))
        return
    targets = words[1:-1]
    people, unknown = await people_of_targets(targets)
    if unknown or not people:
        await ctx.reply(Text((f"名册中没有部门、岗位或人员“{'、'.join(unknown)}”，"
                              if unknown else "所列部门、岗位中没有在册人员，")
                             + "未布置，请核对后重新发送。"))
        return
    rules = ctx.rules.training
    given = await create_assignment(spec.code, " ".join(targets), due_on, ctx.me.id,
                                       Reason.ASSIGNED, "", people, ctx.now, rules.remind_days,
                                       rules.escalate_days)
    already = len(people) - len(given)
    await ctx.reply(Text(
        f"已向{'、'.join(targets)}共{len(given)}人布置《{spec.title}》，截止{due_on:%Y年%m月%d日}。"
        + (f"另有{already}人已有该课程的未完成任务，未重复布置。" if already else "")
        + f"截止前{'、'.join(str(d) for d in rules.remind_days)}天提醒本人，"
        f"逾期后告知其上级。"))
    if given:
        await ctx.send(Text(f"【培训任务】{ctx.me.name}为您布置了《{spec.title}》"
                            f"（{spec.hours:g}学时），请在{due_on:%m月%d日}前完成。"
                            "发送“学习”开始。"), to_users=given)


def deadline(text: str, today: date) -> date | None:
    """2026-12-20, 2026年12月20日, or 12月20日 / 12-20 (this year, or next when it is past)."""
    day = parse_day(text)
    if day is not None:
        return day
    found = MONTH_DAY.match(text.strip())
    if found is None:
        return None
    try:
        day = date(today.year, int(found.group(1)), int(found.group(2)))
    except ValueError:
        return None
    return day if day >= today else day.replace(year=today.year + 1)
