"""What a safety manager records about a person or a contractor in chat: a violation (违章, also
by the person's supervisors), a suspension (停岗 / 复岗), the blacklist (拉黑 / 移出黑名单). Each
is a record in the holder's chain; the pre-work check reads the suspension and the blacklist."""

from __future__ import annotations

from functools import partial
from re import Pattern

from handlers.router import Context, Router
from handlers.words import (
    after,
    managers_only,
    people_named,
    person_named,
    starts_with,
    typed,
)
from models.org import Role, supervisor_chain
from models.outgoing import Text
from models.people.profiles import (
    contractor_named,
    profile_of,
    record_violation,
    set_blacklisted,
    set_suspended,
)

router = Router()
VIOLATION = starts_with("记录违章", "违章")
SUSPEND = starts_with("停岗")
RESUME = starts_with("复岗")
BLACKLIST = starts_with("拉黑", "列入黑名单")
UNLIST = starts_with("移出黑名单", "解除黑名单")


@router.on(typed(VIOLATION))
async def violation(ctx: Context) -> None:
    words = after(ctx, VIOLATION)
    if len(words) < 2:
        await ctx.reply(Text("请发送“记录违章 姓名 违章情况”，"
                             "例如：记录违章 张三 动火作业未办理作业票"))
        return
    person = await person_named(ctx, words[0])
    if person is None:
        return
    if not (ctx.me.has_role(Role.SAFETY_MANAGER)
            or ctx.me.id in await supervisor_chain(person.id)):
        await ctx.reply(Text("违章由其上级或安全管理员记录。"))
        return
    what = " ".join(words[1:])[:ctx.rules.text_max]
    await record_violation(person.id, what, ctx.me.id, ctx.now)
    await ctx.reply(Text(f"已记入{person.name}的档案：{what}"))


async def _suspension(ctx: Context, pattern: Pattern[str], *, suspend: bool) -> None:
    if not await managers_only(ctx, "停岗、复岗"):
        return
    words = after(ctx, pattern)
    if not words or (suspend and len(words) < 2):
        await ctx.reply(Text("请发送“停岗 姓名 原因”或“复岗 姓名”。"))
        return
    person = await person_named(ctx, words[0])
    if person is None:
        return
    current = (await profile_of(person.id)).suspended
    if not suspend and not current:
        await ctx.reply(Text(f"{person.name}未处于停岗状态。"))
        return
    reason = " ".join(words[1:])[:200] if suspend else ""
    await set_suspended(person.id, reason, ctx.me.id, ctx.now)
    await ctx.reply(Text(f"已将{person.name}停岗：{reason}。开工校验将不予通过，复岗请发送“复岗 "
                         f"{person.name}”。" if suspend else f"{person.name}已复岗。"))


async def _blacklist(ctx: Context, pattern: Pattern[str], *, listing: bool) -> None:
    """A person or a contractor company, by name."""
    if not await managers_only(ctx, "黑名单"):
        return
    words = after(ctx, pattern)
    if not words or (listing and len(words) < 2):
        await ctx.reply(Text("请发送“拉黑 姓名或承包商名称 原因”，"
                             "或“移出黑名单 姓名或承包商名称”。"))
        return
    reason = " ".join(words[1:])[:200] if listing else ""
    company = await contractor_named(words[0])
    people, _ = await people_named(words[:1]) if company is None else ([], [])
    if company is None and not people:
        await ctx.reply(Text(f"名册和承包商名录中都没有“{words[0]}”。"))
        return
    await set_blacklisted(people[0].id if people else None, company, reason, ctx.me.id, ctx.now)
    who = company.name if company else people[0].name
    if listing:
        await ctx.reply(Text(f"已将{who}列入黑名单：{reason}。"
                             + ("其所有人员" if company else "") + "开工校验将一律不予通过。"))
    else:
        await ctx.reply(Text(f"已将{who}移出黑名单。"))


# Each pair of words, one way and back, is one handler.
for _pattern, _on in ((SUSPEND, True), (RESUME, False)):
    router.on(typed(_pattern))(partial(_suspension, pattern=_pattern, suspend=_on))
for _pattern, _on in ((BLACKLIST, True), (UNLIST, False)):
    router.on(typed(_pattern))(partial(_blacklist, pattern=_pattern, listing=_on))
