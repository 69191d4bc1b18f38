"""The keepers' commands on the resource ledger: 我的物资 (what they keep, what is due) and
点检 R-A3-01 正常 / 点检 R-A3-01 异常 压力不足 / 点检 R-A3-01 28MPa. Only the keeper or a safety
manager records an inspection; a failed one is told to the safety managers at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from handlers.router import Context, Router
from models.audit import record
from models.inbound import InboundKind
from models.org import Role, people_with
from models.outgoing import Markdown, Text, fit
from models.resources import Resource, Result, inspect, kept_by, resource_by_code

router = Router()
COMMAND = re.compile(r"^点检\s*(.*)$", re.S)
READING = re.compile(r"^(\d+(?:\.\d+)?)\s*([A-Za-z%℃°]*)(?=\s|$)\s*(.*)$", re.S)
HOW = "请回复“点检 物资编号 正常”，有问题回复“点检 物资编号 异常 情况说明”"


@dataclass(frozen=True)
class Confirmation:
    """What a 点检 message says; `problem` when it cannot be read."""

    code: str
    result: Result | None = None
    reading: float | None = None
    unit: str = ""
    note: str = ""
    problem: str = ""


def parse_confirmation(text: str) -> Confirmation:
    """`R-A3-01 正常`, `R-A3-01 异常 压力不足`, `R-A5-02 28MPa`, `R-A5-02 28 MPa 异常 面罩破损`."""
    code, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    code = code.upper()
    if not rest:
        return Confirmation(code)
    reading, unit = None, ""
    found = READING.match(rest)
    if found:
        reading, unit, rest = float(found.group(1)), found.group(2), found.group(3).strip()
    result = next((r for r in Result if rest.startswith(r.value)), None)
    if result is not None:
        rest = rest[len(result.value):].strip()
    elif reading is None:
        word = rest.split()[0]
        return Confirmation(code, problem=f"没有看懂“{word}”。{HOW}；需要读数的物资请填写数字，"
                                          f"例如“点检 {code} 28MPa”。")
    elif rest:
        return Confirmation(code, problem="读数后只能跟“正常”或“异常 情况说明”，"
                                          f"没有看懂“{rest}”。")
    return Confirmation(code, result, reading, unit, rest[:200])


@router.text("我的物资", "物资")
async def my_resources(ctx: Context) -> None:
    kept = await kept_by(ctx.me.id)
    if not kept:
        await ctx.reply(Text("您没有保管的应急物资。"))
        return
    today = ctx.local(ctx.now).date()
    lines = [f"**我保管的应急物资**（{len(kept)}项）",
             *(f"> {r.label}，{r.amount}：{state(r, today)}" for r in kept),
             f"{HOW}；需要读数的物资回复读数，例如“点检 R-A3-01 28MPa”。"]
    await ctx.reply(Markdown(fit(lines, room=ctx.limits.message_bytes)))


def state(r: Resource, today: date) -> str:
    """How a resource stands, worst first, for its keeper's list."""
    if r.expired(today):
        return f"**已过期**（{r.expires_on:%Y年%m月%d日}），请更换"
    if r.failed:
        return "**点检异常**，待修复或更换"
    due = r.due_on
    if due is None:
        words = "无需定期点检"
    elif r.overdue(today):
        words = f"**点检逾期**，应于{due:%m月%d日}前"
    else:
        words = f"下次点检{due:%m月%d日}"
    if r.expires_on is not None:
        words += f"；有效期至{r.expires_on:%Y年%m月%d日}"
    return words


@router.on(lambda e: e.kind is InboundKind.TEXT and COMMAND.match(e.text.strip()) is not None)
async def confirm(ctx: Context) -> None:
    found = COMMAND.match(ctx.event.text.strip())
    assert found is not None
    said = parse_confirmation(found.group(1))
    if not said.code:
        await ctx.reply(Text(f"{HOW}，例如“点检 R-A3-01 正常”。发送“我的物资”查看您保管的物资。"))
        return
    resource = await resource_by_code(said.code)
    if resource is None:
        await ctx.reply(Text(f"没有找到物资 {said.code}，请核对编号。发送“我的物资”查看您保管的"
                             "物资。"))
        return
    if resource.keeper != ctx.me.id and not ctx.me.has_role(Role.SAFETY_MANAGER):
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="resource",
                     subject_id=resource.code, note=f"点检: {ctx.event.text.strip()[:200]}")
        await ctx.reply(Text(f"{resource.code} 由保管人点检，您不是它的保管人。如发现问题，"
                             "请联系保管人或安全管理员。"))
        return
    problem = said.problem or _missing(resource, said)
    if problem:
        await ctx.reply(Text(problem))
        return
    await _record(ctx, resource, said)


def _missing(r: Resource, said: Confirmation) -> str:
    """What the message lacks for this resource, or ""."""
    if said.reading is not None and not r.reading_name:
        return f"{r.code} 无需填写读数。{HOW}。"
    if said.reading is not None and said.unit and said.unit.lower() != r.reading_unit.lower():
        return (f"{r.reading_name}的单位是{r.reading_unit}，"
                f"例如“点检 {r.code} 28{r.reading_unit}”。")
    if r.reading_name and said.reading is None and said.result is not Result.FAILED:
        return (f"{r.code} 需要填写{r.reading_name}读数（{r.reading_rule}），例如"
                f"“点检 {r.code} 28{r.reading_unit}”。")
    if said.result is None and said.reading is None:
        return f"请注明点检结果：“点检 {r.code} 正常”或“点检 {r.code} 异常 情况说明”。"
    if said.result is Result.FAILED and not said.note and said.reading is None:
        return f"请说明异常情况，例如“点检 {r.code} 异常 压力不足”。"
    return ""


async def _record(ctx: Context, r: Resource, said: Confirmation) -> None:
    out_of_rule = said.reading is not None and not r.reading_ok(said.reading)
    result = Result.FAILED if out_of_rule else (said.result or Result.OK)
    today = ctx.local(ctx.now).date()
    done = await inspect(r, ctx.me.id, ctx.now, today, result, said.reading, said.note)
    if done is None:
        await ctx.reply(Text(f"{r.code} 的这次点检已经记录，无需重复提交。"))
        return
    read = (f"{r.reading_name} {said.reading:g}{r.reading_unit}" if said.reading is not None
            else "")
    if out_of_rule:
        read += f"，不符合{r.reading_rule}"
    detail = "，".join(part for part in (read, said.note) if part)
    head = f"{r.label}点检{result.value}" + (
        f"：{detail}" if detail else "")
    if result is Result.FAILED:
        managers = [m for m in await people_with(Role.SAFETY_MANAGER) if m != ctx.me.id]
        if managers:
            await ctx.send(Text(f"【物资点检异常】{head}。点检人：{ctx.me.name}，"
                                f"{ctx.local(ctx.now):%m月%d日 %H:%M}。该物资已不列入应急广播，"
                                "请安排修复或更换。"), to_users=managers)
        await ctx.reply(Text(f"已记录：{head}。已通知安全管理员；修复或更换后请再次点检。"))
        return
    due = r.due_on
    after = f"下次点检：{due:%Y年%m月%d日}前。" if due else ""
    expired = (f"注意：该物资已于{r.expires_on:%Y年%m月%d日}过期，请尽快更换并更新台账。"
               if r.expired(today) else "")
    await ctx.reply(Text(f"已记录：{head}，{ctx.local(ctx.now):%H:%M}。{after}{expired}"))
