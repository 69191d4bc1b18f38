"""Commands about tickets anyone can type: 我的隐患, a ticket number (its details, for the
people it concerns), 统计, 取消 HZ-…; and the 查看详情 button of reminder and escalation
cards."""

from __future__ import annotations

import re

from handlers.hazard.cards import guarded
from handlers.hazard.rectify import NUMBER
from handlers.hazard.views import details, facts, line
from handlers.router import Context, Router
from models.audit import history, record
from models.escalation import fired
from models.hazard import (
    ACTIVE,
    LABELS,
    Status,
    cancel,
    check_reader,
    is_manager,
    ticket_numbered,
)
from models.inbound import InboundKind
from models.org import every_area, user_names
from models.outgoing import Markdown, Text, fit
from models.ticket_lists import active_filed, filed_since, reported, to_rectify, to_review

router = Router()
clicks = Router()      # card buttons that only show something

LISTED = 10   # tickets a section of 我的隐患 lists, the newest first
CANCEL = re.compile(r"^取消\s*(HZ-\d{8}-\d{4})\s*(.*)$")


@router.text("我的隐患", "我的上报")
async def mine(ctx: Context) -> None:
    me = ctx.me.id
    sections = (("我负责整改", to_rectify), ("待我复查", to_review), ("我上报的", reported))
    lines = []
    for title, section in sections:
        newest = await section(me, LISTED)
        if newest.total > LISTED:
            title = f"{title}（共{newest.total}项，列出最近{LISTED}项）"
        if newest.tickets:
            lines.append(f"**{title}**")
            lines += [line(await facts(t, ctx.rules.catalog), ctx.rules.tz, ctx.now)
                      for t in newest.tickets]
    if not lines:
        await ctx.reply(Text("目前没有与您有关的隐患。发送照片即可上报。"))
        return
    lines.append("发送编号可查看详情。")
    await ctx.reply(Markdown(fit(lines, room=ctx.limits.message_bytes,
                                 more="……发送编号可查看其他隐患的详情。")))


@router.on(lambda e: e.kind is InboundKind.TEXT and NUMBER.fullmatch(e.text.strip()) is not None)
async def show_ticket(ctx: Context) -> None:
    await _details(ctx, ctx.event.text.strip())


@clicks.card_action("view")
async def view_from_card(ctx: Context) -> None:
    """查看详情 on a reminder or escalation card: the ticket picked in its drop-down, else the
    one the button names. It only shows, like typing the number, so it needs no stored card."""
    picked = ctx.event.selected.get("ticket") or [ctx.event.event_key.split(":")[1]]
    await _details(ctx, picked[0])


async def _details(ctx: Context, number: str) -> None:
    ticket = await ticket_numbered(number)
    if ticket is None:
        await ctx.reply(Text(f"没有找到隐患 {number}。"))
        return
    if not await guarded(ctx, ticket, check_reader(ticket, ctx.me, ctx.now)):
        return
    events = await history("ticket", str(ticket.id))
    alarms = await fired(ticket.id)
    people = {e.actor for e in events}.union(*(a.recipients for a in alarms))
    names = await user_names(people)
    await ctx.reply(details(await facts(ticket, ctx.rules.catalog), events, alarms, names,
                            ctx.rules.tz, ctx.limits.message_bytes))


@router.text("统计")
async def statistics(ctx: Context) -> None:
    if not is_manager(ctx.me):
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="command",
                     subject_id="统计", note="统计: not a safety manager or principal")
        await ctx.reply(Text("统计仅对安全管理员和主要负责人开放。发送“我的隐患”可查看与您有关的"
                             "隐患。"))
        return
    local = ctx.local(ctx.now)
    month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    active = await active_filed()
    overdue = [t for t in active if t.status is Status.OPEN and t.deadline and
               t.deadline < ctx.now]
    this_month = await filed_since(month)
    closed = [t for t in this_month if t.status is Status.CLOSED]
    rate = f"{len(closed) / len(this_month):.0%}" if this_month else "—"
    lines = [f"**隐患统计（截至{local:%m月%d日 %H:%M}）**",
             f"> 未闭环：{len(active)}项（其中超期{len(overdue)}项）",
             f"> 本月上报：{len(this_month)}项，已闭环{len(closed)}项，闭环率{rate}"]
    areas = {a.code: a.name for a in await every_area()}
    by_area: dict[str, int] = {}
    for t in active:
        by_area[areas.get(t.area_id or "", "未填区域")] = by_area.get(
            areas.get(t.area_id or "", "未填区域"), 0) + 1
    if by_area:
        lines.append("**未闭环隐患分布**")
        lines += [f"> {name}：{count}项" for name, count in
                  sorted(by_area.items(), key=lambda kv: -kv[1])]
    by_status = {s: sum(t.status is s for t in active) for s in ACTIVE}
    lines.append("> " + "，".join(f"{LABELS[s]}{n}项" for s, n in by_status.items()))
    await ctx.reply(Markdown(fit(lines, room=ctx.limits.message_bytes)))


@router.on(lambda e: e.kind is InboundKind.TEXT and CANCEL.match(e.text.strip()) is not None)
async def cancel_ticket(ctx: Context) -> None:
    found = CANCEL.match(ctx.event.text.strip())
    assert found is not None
    ticket = await ticket_numbered(found.group(1))
    if ticket is None:
        await ctx.reply(Text(f"没有找到隐患 {found.group(1)}。"))
        return
    if await guarded(ctx, ticket, cancel(ticket, ctx.me, found.group(2).strip(), ctx.now)):
        await ctx.reply(Text(f"已取消 {ticket.number}。"))
        people = {ticket.owner_id or "", ticket.reporter_id} - {ctx.me.id, ""}
        if people:
            await ctx.send(Text(f"{ticket.number} 已由{ctx.me.name}取消，原因："
                                f"{found.group(2).strip()}。"), to_users=sorted(people))
