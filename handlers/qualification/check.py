"""开工前资格校验: `开工 动火作业 3号车间 张三 李四` checks every person named (certificates,
training, hours, suspension, blacklist, a contractor's admission) and answers at once, in one
message for the whole crew. A refusal can be passed to the safety managers (通知安全员); a
refusal for a missing or lapsed special-operations certificate is proposed to them as a 重大
ticket, which one of them confirms or dismisses by card."""

from __future__ import annotations

from handlers.hazard.cards import plan_cards
from handlers.router import Context, Router
from handlers.words import after, people_named, starts_with, typed
from models.hazard import Refused
from models.inbound import InboundKind
from models.org import Area, Role, area_names, every_area, people_with
from models.outgoing import Button, Card, Markdown, Text, fit
from models.people.checks import (
    Proposal,
    QualificationCheck,
    decide_proposal,
    file_unlicensed,
    judge,
    mark_notified,
    record_check,
    unlicensed_description,
)
from models.people.rules import WorkType

router = Router()
starts = Router()
COMMAND = starts_with("开工", "开工校验")
MENU_KEY = "check"      # the app menu's 开工校验
USAGE = "请按“开工 作业类型 区域 人员”发送，例如：开工 动火作业 3号车间 张三 李四"


@starts.on(lambda e: e.kind is InboundKind.MENU and e.event_key == MENU_KEY)
async def from_menu(ctx: Context) -> None:
    """The menu cannot name the crew: it says how to."""
    known = "、".join(ctx.rules.qualification.work_types)
    await ctx.reply(Text(f"开工前资格校验：{USAGE}\n可校验的作业：{known}。"))


@router.on(typed(COMMAND))
async def start_check(ctx: Context) -> None:
    words = after(ctx, COMMAND)
    rules = ctx.rules.qualification
    work = next((w for word in words if (w := rules.work_type(word)) is not None), None)
    if work is None:
        known = "、".join(rules.work_types)
        await ctx.reply(Text(f"没有识别出作业类型。可校验的作业：{known}。\n{USAGE}"))
        return
    areas = await every_area()
    area = next((a for word in words if (a := _area(word, areas)) is not None), None)
    if area is None:
        await ctx.reply(Text(f"请写明作业区域。{USAGE}"))
        return
    names = [w for w in words if rules.work_type(w) is not work and _area(w, areas) is None]
    if not names:
        await ctx.reply(Text(f"请写明作业人员。{USAGE}"))
        return
    if len(set(names)) > rules.crew_max:
        await ctx.reply(Text(f"一次最多校验{rules.crew_max}人，本次{len(set(names))}人，"
                             "请分批发送。"))
        return
    people, unknown = await people_named(names)
    if unknown:
        await ctx.reply(Text(f"名册中没有：{'、'.join(unknown)}。请核对姓名后重新发送，"
                             "本次未校验任何人。承包商人员须先由安全管理员登记。"))
        return
    today = ctx.local(ctx.now).date()
    verdicts = await judge(people, work, rules, today)
    check = await record_check(ctx.me.id, work, area.code, verdicts, ctx.now)
    await ctx.reply(Markdown(_answer(check, work, area, ctx.limits.message_bytes)))
    if check.refused:
        await ctx.reply(Card(
            task_id=f"kg-{check.id}-ask", title=f"{check.label} 有{check.refused}人不可开工",
            description=f"{work.name}，{area.name}",
            body="不可开工的人员不得进入作业现场。需要安全员到场或协调，请点“通知安全员”。",
            buttons=(Button("通知安全员", _key("notify", check)),)))
    if check.proposal is Proposal.PROPOSED:
        await _propose(ctx, check, area)


def _area(word: str, areas: tuple[Area, ...]) -> Area | None:
    return next((a for a in areas if word.upper() == a.code.upper()
                 or word in (a.name, *a.aliases)), None)


def _key(action: str, check: QualificationCheck) -> str:
    return f"qual:{action}:{check.id}:{check.token}"


def _answer(check: QualificationCheck, work: WorkType, area: Area, room: int) -> str:
    results = check.results
    allowed = [v.name for v in results if v.ok]
    lines = [f"**开工前资格校验 {check.label}**",
             f"> 作业：{work.name}　区域：{area.name}"
             + (f"　作业票：{work.permit}" if work.permit else ""),
             f"> 可以开工（{len(allowed)}人）：{'、'.join(allowed) or '无'}"]
    refused = [v for v in results if not v.ok]
    if refused:
        lines.append(f"> 不可开工（{len(refused)}人）：")
        lines += [f"> {v.name}：{'；'.join(v.reasons)}" for v in refused]
        lines.append("不可开工的人员请勿进入作业现场。")
    elif work.permit:
        lines.append(f"全部人员资格校验通过。请按规定办理{work.permit}后开工。")
    else:
        lines.append("全部人员资格校验通过，可以开工。")
    return fit(lines, room=room)


async def _propose(ctx: Context, check: QualificationCheck, area: Area) -> None:
    """The safety managers' card: confirm the 重大 ticket, or dismiss it."""
    to = await people_with(Role.SAFETY_MANAGER)
    if not to:
        return
    rules = ctx.rules.qualification
    await ctx.send(Card(
        task_id=f"kg-{check.id}-major", title="【建议立案】特种作业人员未持证上岗",
        description=f"{check.label} {check.work_type}，{area.name}",
        fields=(("人员", "、".join(f"{v.name}（{'、'.join(v.unlicensed)}证）"
                                   for v in check.results if v.unlicensed)),
                ("校验人", ctx.me.name), ("建议等级", "重大隐患")),
        body=(rules.major_basis or unlicensed_description(check))[:160],
        buttons=(Button("确认为重大隐患", _key("major", check), 1),
                 Button("不予立案", _key("dismiss", check), 2))), to_users=to)


async def notify_clicked(ctx: Context, check: QualificationCheck) -> None:
    """通知安全员, by the person who ran the check, once."""
    if ctx.me.id != check.asked_by:
        await ctx.reply(Text("只有发起校验的人可以通知安全员。"))
        return
    if not await mark_notified(check):
        await ctx.reply(Text(f"已就 {check.label} 通知过安全员，无需重复操作。"))
        return
    to = [p for p in await people_with(Role.SAFETY_MANAGER) if p != ctx.me.id]
    refused = "；".join(f"{v.name}（{v.reasons[0]}）" for v in check.results if not v.ok)
    area = (await area_names([check.area_id or ""])).get(check.area_id or "", "")
    await ctx.send(Text(f"【开工校验未通过】{ctx.me.name}在{area}准备{check.work_type}，"
                        f"{check.label} 有{check.refused}人不可开工：{refused}。"
                        "请到场核实、协调。"),
                   to_users=to)
    await ctx.reply(Text(f"已通知安全员（{len(to)}人）。"))


async def proposal_clicked(ctx: Context, check: QualificationCheck, confirm: bool) -> None:
    """确认为重大隐患 / 不予立案, by a safety manager; the first decision stands."""
    if not ctx.me.has_role(Role.SAFETY_MANAGER):
        await ctx.reply(Text("该建议由安全管理员确认。"))
        return
    if check.proposal is not Proposal.PROPOSED:
        await ctx.reply(Text(_decided(check)))
        return
    if not confirm:
        if await decide_proposal(check, False, ctx.me.id):
            await ctx.reply(Text(f"已记录：{check.label} 的建议不予立案。"))
        else:
            await ctx.reply(Text(_decided(check)))
        return
    category = ctx.rules.catalog.get(ctx.rules.qualification.major_category)
    if category is None:
        await ctx.reply(Text("隐患类别库中没有配置的类别，无法立案，请联系管理员。"))
        return
    try:
        ticket = await file_unlicensed(check, ctx.me, ctx.rules.qualification, category,
                                       ctx.rules.calendar, ctx.now,
                                       ctx.local(ctx.now).strftime("%Y%m%d"))
    except Refused as refused:
        await ctx.reply(Text(refused.reason))
        return
    if ticket is None:
        await ctx.reply(Text(_decided(check)))
        return
    await plan_cards(ctx, ticket)
    await ctx.reply(Text(f"已立案，编号 {ticket.number}（重大隐患），"
                         "已请主要负责人组织制定治理方案。"))


def _decided(check: QualificationCheck) -> str:
    if check.proposal is Proposal.CONFIRMED:
        return f"{check.label} 的建议已确认立案，无需再次操作。"
    return f"{check.label} 的建议已处理，无需再次操作。"
