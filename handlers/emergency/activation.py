"""启动预案 氨泄漏 二级 3号车间: questions for what is missing (plan, level), a confirmation card,
the broadcast to the plan's groups and a card to each responder; then 结束预案 and 已上报."""

from __future__ import annotations

import re
from datetime import timedelta

from handlers.dialog import Dialog, Reask, Step
from handlers.emergency.board import mine
from handlers.emergency.review import assign_review
from handlers.emergency.speak import already, grey, say, send
from handlers.router import Context, Router
from models.audit import record
from models.catalog import area_in_text
from models.dialog import Dialog as DialogRow
from models.dialog import close_dialog
from models.emergency import (
    Activation,
    ActivationStatus,
    Plan,
    activation_by_id,
    active_plan,
    active_plans,
    broadcast,
    call,
    callees,
    choose,
    headline,
    joinable,
    lock_plan,
    may_activate,
    move,
    new_activation,
    plan_of,
    plans_of,
    stop_reminders,
    summary,
)
from models.emergency import audit as audit_activation
from models.emergency_due import mark_reported, report_awaited
from models.inbound import InboundKind
from models.org import area_by_code, every_area, person
from models.outbox import Queued, enqueue_many
from models.outgoing import Button, Card, Priority, Selection, Text

router = Router()      # typed commands, answered before any open question
follow_ups = Router()  # the broadcast's second step
PLAN_MENU_KEY = "emergency"  # the app menu's 启动预案
START = re.compile(r"^(启动预案|启动演练|预案演练|演练)\s*(.*)$")
CLOSE = re.compile(r"^结束(预案|演练|应急)\s*(.*)$")
LEVEL = re.compile(r"([一二三四1-4])级")
ARABIC = str.maketrans("1234", "一二三四")
FIRST_BOARD = timedelta(seconds=15)   # the first board waits for the broadcast's results


@router.on(lambda e: (e.kind is InboundKind.TEXT and START.match(e.text.strip()) is not None)
           or (e.kind is InboundKind.MENU and e.event_key == PLAN_MENU_KEY))
async def start(ctx: Context) -> None:
    found = START.match(ctx.event.text.strip() or "启动预案")
    assert found is not None
    if not may_activate(ctx.me):
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="activation",
                     subject_id="-", note=f"启动预案: {ctx.event.text.strip()[:200]}")
        await say(ctx, "只有应急指挥、安全管理员和主要负责人可以启动预案。"
                        "如遇紧急情况，请发送“一键报警”通知值班长。")
        return
    rest = found.group(2)
    plans = await active_plans()
    if not plans:
        await say(ctx, "尚未配置应急预案，请联系安全管理员。")
        return
    plan = plan_in(rest, plans)
    level = level_in(rest, plan)
    area = area_in_text(rest, await every_area())
    activation = await new_activation(
        ActivationStatus.CONFIRMING, ctx.me.id, rest, ctx.now,
        plan_id=plan.code if plan else None, area_id=area[0].code if area else None,
        level=level, drill="演练" in found.group(1) or "演练" in rest, commander=ctx.me.id)
    await audit_activation(activation, ctx.me.id, "requested", ctx.now, note=rest)
    hint = f"没有找到与“{rest.strip()}”对应的预案。" if rest.strip() and plan is None else ""
    await next_question(ctx, activation, hint)


def plan_in(text: str, plans: list[Plan]) -> Plan | None:
    """The plan whose code, name or trigger word the text names (the longest match wins)."""
    found = [(len(word), plan) for plan in plans
             for word in (plan.code, plan.name, *plan.triggers) if word and word in text]
    return max(found, key=lambda f: f[0])[1] if found else None


def level_in(text: str, plan: Plan | None) -> str:
    found = LEVEL.search(text)
    if found is None:
        return ""
    name = found.group(1).translate(ARABIC) + "级"
    return name if plan is None or name in plan.level_names else ""


class ActivationDialog(Dialog[Activation]):
    """Which plan, then which level, each asked only while missing; then the confirmation
    card. 取消 or 返回 withdraws the request."""

    kind = "emergency"
    priority = Priority.EMERGENCY

    async def _ask_plan(self) -> None:
        plans = await active_plans()
        choices = "\n".join(f"{n}. {p.name}" for n, p in enumerate(plans, 1))
        await self.say(Text(f"{self.lead}请回复序号选择要启动的预案：\n{choices}\n"
                            "回复“取消”放弃。"))
        await self.say(pick_card(self.subject, plans))

    async def _ask_level(self) -> None:
        plan = await plan_of(self.subject)
        choices = "\n".join(f"{n}. {name}" for n, name in enumerate(plan.level_names, 1))
        await self.say(Text(f"{self.lead}{plan.name}：请回复序号选择响应级别：\n{choices}\n"
                            "回复“取消”放弃。"))

    async def _plan(self, text: str) -> None:
        plans = await active_plans()
        plan = (plans[int(text) - 1] if text.isdigit() and 1 <= int(text) <= len(plans)
                else plan_in(text, plans))
        if plan is None:
            raise Reask("没有这个预案。")
        await choose(self.subject, plan_id=plan.code)

    async def _level(self, text: str) -> None:
        plan = await plan_of(self.subject)
        names = plan.level_names
        level = (names[int(text) - 1] if text.isdigit() and 1 <= int(text) <= len(names)
                 else level_in(text, plan) or (text if text in names else ""))
        if not level:
            raise Reask("没有这个级别。")
        await choose(self.subject, level=level)

    plan = Step(_ask_plan, _plan)
    level = Step(_ask_level, _level)

    @classmethod
    async def load(cls, ctx: Context, row: DialogRow) -> Activation | None:
        activation = await activation_by_id(row.data.get("activation", 0))
        if activation is None or activation.status is not ActivationStatus.CONFIRMING:
            return None
        return activation

    @classmethod
    async def expire(cls, ctx: Context, row: DialogRow) -> None:
        """Nobody answered the plan or level question: the request lapses, said plainly."""
        await close_dialog(row.user_id)
        activation = await activation_by_id(row.data.get("activation", 0))
        if activation is not None and await move(
                activation, ActivationStatus.CONFIRMING, ActivationStatus.DISMISSED, "system",
                "lapsed", ctx.now):
            await say(ctx, "启动预案的请求长时间未确认，已作废。如需启动，请重新发送“启动预案”。")

    def next_step(self) -> str | None:
        if not self.subject.plan_id:
            return "plan"
        return None if self.subject.level else "level"

    async def cancel(self) -> None:
        await self.close()
        await move(self.subject, ActivationStatus.CONFIRMING, ActivationStatus.DISMISSED,
                   self.ctx.me.id, "withdrawn", self.ctx.now)
        await say(self.ctx, "已取消，预案未启动。")

    async def back(self) -> None:
        await self.cancel()

    back_allowed = True

    async def finish(self) -> None:
        """Plan and level known: the confirmation card."""
        ctx, activation = self.ctx, self.subject
        await self.close()
        plan = await plan_of(activation)
        area = await area_by_code(activation.area_id)
        key = f"emg:{{}}:{activation.id}:{activation.token}"
        await send(ctx, Card(
            task_id=f"emgc-{activation.id}-{activation.token}", title="请确认启动预案",
            description=headline(activation, plan),
            fields=(("预案", plan.name), ("级别", activation.level),
                    ("区域", area.name if area else "全厂"),
                    ("性质", "演练" if activation.drill else "实战")),
            buttons=(Button("确认启动", key.format("go"), 1),
                     Button("取消", key.format("stop"), 2)),
        ), [ctx.me.id])


async def next_question(ctx: Context, activation: Activation, hint: str = "") -> None:
    """Ask for the plan, then the level; with both, the confirmation card."""
    row = await ActivationDialog.open(ctx, "plan", data={"activation": activation.id})
    await ActivationDialog(ctx, row, activation).advance(hint)


def pick_card(activation: Activation, plans: list[Plan]) -> Card:
    """The same choice in one tap: the plan from the drop-down, then the level's button."""
    levels = list(dict.fromkeys(name for p in plans for name in p.level_names))[:6]
    key = f"emg:pick:{activation.id}:{activation.token}"
    return Card(
        task_id=f"emgp-{activation.id}-{activation.token}", title="选择预案和响应级别",
        description="在下拉框中选择预案，再点响应级别",
        selection=Selection(key="plan", title="预案", options=tuple(
            (p.code, p.name[:16]) for p in plans[:10])),
        buttons=tuple(Button(name, f"{key}:{n}", 1) for n, name in enumerate(levels, 1)),
    )


async def picked(ctx: Context, activation: Activation, answer: str) -> None:
    chosen = ctx.event.selected.get("plan", [])
    plan = await active_plan(chosen[0]) if chosen else None
    if plan is None:
        await say(ctx, "请先在下拉框中选择预案，再点响应级别。")
        return
    levels = list(dict.fromkeys(
        name for p in await active_plans() for name in p.level_names))
    level = levels[int(answer) - 1] if answer.isdigit() and 0 < int(answer) <= len(levels) else ""
    if level not in plan.level_names:
        await say(ctx, f"{plan.name}没有{level or '这个'}响应级别，请重新选择。")
        return
    await choose(activation, plan_id=plan.code, level=level)
    await grey(ctx, f"已选择{plan.name} {level}")
    await next_question(ctx, activation)


async def confirm(ctx: Context, activation: Activation) -> None:
    """确认启动: join an activation of the same plan and area made minutes ago, or broadcast."""
    plan = await lock_plan(activation.plan_id or "")
    if plan is None:
        await already(ctx, activation)
        return
    policy = ctx.rules.emergency
    earlier = await joinable(activation, plan, ctx.now - policy.join_within)
    if earlier is not None:
        if await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.JOINED,
                      ctx.me.id, "joined", ctx.now, joined_to=earlier.id):
            await grey(ctx, "已并入进行中的应急响应")
            who = await person(earlier.commander)
            name = who.name if who else earlier.commander
            await say(ctx, f"{headline(earlier, plan)}已于"
                            f"{ctx.local(earlier.activated_at or ctx.now):%H:%M}由{name}启动，"
                            "本次并入，不重复通知。")
            if earlier.commander != ctx.me.id:
                await send(ctx, Text(f"{ctx.me.name}也启动了{headline(earlier, plan)}，"
                                      "已并入您指挥的响应。"), [earlier.commander])
        return
    report = (not activation.drill and bool(plan.report_level)
              and plan.at_or_above(activation.level, plan.report_level))
    if not await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.ACTIVE,
                      ctx.me.id, "activated", ctx.now, activated_at=ctx.now,
                      commander=activation.commander or ctx.me.id,
                      report_due_at=ctx.now + policy.report_within if report else None,
                      board_due_at=ctx.now + FIRST_BOARD):
        await already(ctx, activation)
        return
    await grey(ctx, f"已由{ctx.me.name}确认启动")
    # The groups now; the cards to everyone (ten thousand rows) in a step of their own, so the
    # decision commits and the groups hear of it without waiting for them.
    # Each group's messages keep their order: the text, then the map.
    messages = await broadcast(activation, plan, ctx.rules.tz)
    await enqueue_many([Queued(f"emg:{activation.id}:group:{group}" + (f":{n}" if n else ""),
                               message, to_chat=group)
                        for group in plan.groups for n, message in enumerate(messages)],
                       now=ctx.now, platform=ctx.rules.home, priority=Priority.EMERGENCY)
    await ctx.follow_up(f"emg:call:{activation.id}")


@follow_ups.follow_up("emg:call")
async def call_responders(ctx: Context) -> None:
    """确认启动's second step: a card to each person the level calls; the commander is told."""
    activation = await activation_by_id(int(ctx.event.event_key.rsplit(":", 1)[1]))
    assert activation is not None       # the key is 确认启动's, of an activation on record
    if activation.status is not ActivationStatus.ACTIVE:
        return      # closed already: nobody is called to a response that is over
    plan = await plan_of(activation)
    level = plan.level(activation.level)
    assert level is not None
    called = await call(activation, plan, await callees(level), ctx.now,
                        ctx.rules.home, ctx.rules.emergency.remind_every)
    lines = [f"{headline(activation, plan)}已启动：已向{called}人发送确认卡片，"
             f"向{len(plan.groups)}个群发送处置要点。应急看板将随确认情况更新，"
             "发送“应急状态”可随时查看，发送“结束预案”结束响应。"]
    if activation.report_due_at:
        lines.append(f"请在{ctx.local(activation.report_due_at):%H:%M}前（启动后1小时内）"
                     "按规定向属地应急管理部门报告事故情况，报告后回复“已上报”。")
    await send(ctx, Text("\n".join(lines)), [activation.commander])
    if activation.raised_by != activation.commander:
        await send(ctx, Text(f"您报告的情况已启动{headline(activation, plan)}。"),
                    [activation.raised_by])


@router.on(lambda e: e.kind is InboundKind.TEXT and CLOSE.match(e.text.strip()) is not None)
async def close(ctx: Context) -> None:
    found = CLOSE.match(ctx.event.text.strip())
    assert found is not None
    active = await mine(ctx)
    if not active:
        await say(ctx, "目前没有您可以结束的应急响应。")
        return
    rest = found.group(2).strip()
    number = re.search(r"\d+", rest)
    plans = await plans_of(active)
    named = plan_in(rest, list(plans.values()))
    chosen = [a for a in active if (number and a.id == int(number.group()))
              or (not number and named and a.plan_id == named.code)]
    if not chosen and len(active) == 1 and not rest:
        chosen = active
    if len(chosen) != 1:
        lines = "\n".join(f"结束预案 {a.id}：{headline(a, plans[a.plan_id or ''])}"
                          for a in active)
        await say(ctx, f"请指明要结束哪一项，回复：\n{lines}")
        return
    activation = chosen[0]
    if not await move(activation, ActivationStatus.ACTIVE, ActivationStatus.CLOSED, ctx.me.id,
                      "closed", ctx.now, closed_at=ctx.now, closed_by=ctx.me.id,
                      board_due_at=None):
        await already(ctx, activation)
        return
    # The responders' reminders are stopped in a step of their own: an answer arriving now
    # holds its responder row and then asks for the activation's, which the close holds.
    await ctx.follow_up(f"emg:closed:{activation.id}")
    plan = plans[activation.plan_id or ""]
    text = await summary(activation, plan, ctx.rules.tz)
    await enqueue_many([Queued(f"emg:{activation.id}:summary:{group}", text, to_chat=group)
                        for group in plan.groups], now=ctx.now, platform=ctx.rules.home,
                       priority=Priority.EMERGENCY)
    await send(ctx, text, sorted({activation.commander, ctx.me.id}))
    await assign_review(ctx, activation, plan)


@follow_ups.follow_up("emg:closed")
async def closed(ctx: Context) -> None:
    """结束预案's second step: nobody is reminded of the response any more (the reminders
    already skip a closed one; this keeps their index to the responses still running)."""
    activation = await activation_by_id(int(ctx.event.event_key.rsplit(":", 1)[1]))
    assert activation is not None
    await stop_reminders(activation)


@router.text("已上报", "事故已上报")
async def reported(ctx: Context) -> None:
    if not may_activate(ctx.me):
        await say(ctx, "事故上报由应急指挥或安全管理员记录。")
        return
    activation = await report_awaited()
    if activation is None:
        await say(ctx, "目前没有待上报的事故。")
        return
    await mark_reported(activation, ctx.now)
    await audit_activation(activation, ctx.me.id, "reported", ctx.now,
                           from_state=activation.status.value)
    start = activation.activated_at or ctx.now
    minutes = int((ctx.now - start).total_seconds() // 60)
    overdue = activation.report_due_at is not None and ctx.now > activation.report_due_at
    late = "，已超过1小时时限" if overdue else ""
    await say(ctx, f"已记录事故上报时间 {ctx.local(ctx.now):%H:%M}"
                    f"（启动后{minutes}分钟{late}）。")


async def withdraw(ctx: Context, activation: Activation) -> None:
    """取消 on the confirmation card: the request ends, the plan is not started."""
    if await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.DISMISSED,
                  ctx.me.id, "withdrawn", ctx.now):
        await grey(ctx, "已取消")
        await say(ctx, "已取消，预案未启动。")
