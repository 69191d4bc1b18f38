"""Emergencies: 一键报警, 启动预案 with a confirmation, the broadcast, each responder's 收到, the
commander's board, 结束预案, 应急状态 and 已上报.

Information goes to the plan's group chats; buttons go to each person (WeCom cannot put buttons
in group chats). Everything here is queued with emergency priority, ahead of every routine
message, and never waits for quiet hours. Typed commands are answered even in the middle of
another question.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from handlers.router import Context, Router
from models.audit import record
from models.catalog import area_in_text
from models.dialog import Dialog, close_dialog, open_dialog
from models.emergency import (
    ANSWERS,
    Activation,
    ActivationStatus,
    Plan,
    Responder,
    board,
    broadcast_text,
    call,
    callees,
    commanders,
    headline,
    may_activate,
    move,
    summary,
)
from models.emergency import audit as audit_activation
from models.inbound import InboundKind
from models.org import Area, User, every_area
from models.outbox import Queued, enqueue_many
from models.outgoing import Button, Card, CardUpdate, Outgoing, Priority, Selection, Text

router = Router()      # typed commands, answered before any open question
clicks = Router()      # the emg:… card buttons and the broadcast's second step
KIND = "emergency"
MENU_KEY = "alarm"           # the app menu's 一键报警
PLAN_MENU_KEY = "emergency"  # the app menu's 启动预案

START = re.compile(r"^(启动预案|启动演练|预案演练|演练)\s*(.*)$")
CLOSE = re.compile(r"^结束(预案|演练|应急)\s*(.*)$")
ALARM = re.compile(r"^(一键报警|报警)\s*(.*)$")
LEVEL = re.compile(r"([一二三四1-4])级")
ARABIC = str.maketrans("1234", "一二三四")
ACK_WORDS = {"收到": "ok", "无法到场": "no", "不能到场": "no"}
FIRST_BOARD = timedelta(seconds=15)   # the first board waits for the broadcast's results


async def _send(ctx: Context, message: Outgoing, to: list[str]) -> None:
    await ctx.send(message, to_users=to, priority=Priority.EMERGENCY)


async def _say(ctx: Context, text: str) -> None:
    await _send(ctx, Text(text), [ctx.me.id])


# ---------------------------------------------------------------------------------------------
# 一键报警: anyone raises it, the duty commander confirms or dismisses


@router.on(lambda e: (e.kind is InboundKind.TEXT and ALARM.match(e.text.strip()) is not None)
           or (e.kind is InboundKind.MENU and e.event_key == MENU_KEY))
async def raise_alarm(ctx: Context) -> None:
    found = ALARM.match(ctx.event.text.strip())
    note = found.group(2).strip() if found else ""
    on_duty = await commanders()
    if not on_duty:
        await _say(ctx, "名册中没有值班长（应急指挥），请立即拨打厂内应急电话。")
        return
    area = area_in_text(note, await every_area())
    plans = await Plan.filter(active=True)
    plan = _plan_in(note, plans)
    alarm = await Activation.create(
        status=ActivationStatus.ALARM, plan_id=plan.code if plan else None,
        area_id=area[0].code if area else None, token=secrets.token_hex(8),
        raised_by=ctx.me.id, note=note, created_at=ctx.now)
    await audit_activation(alarm, ctx.me.id, "alarm_raised", ctx.now, note=note)
    key = f"emg:alarm:{alarm.id}:{alarm.token}"
    await _send(ctx, Card(
        task_id=f"emga-{alarm.id}-{alarm.token}", title="【一键报警】请立即确认",
        description=f"{ctx.me.name} {ctx.local(ctx.now):%H:%M:%S} 报警",
        fields=(("报警人", ctx.me.name), ("区域", area[0].name if area else "未说明"),
                ("情况", note or "未说明")),
        buttons=(Button("启动预案", f"{key}:go", 1), Button("误报", f"{key}:no", 2)),
    ), on_duty)
    names = "、".join(u.name for u in await User.filter(id__in=on_duty).order_by("id"))
    await _say(ctx, f"已向值班长（{names}）报警，时间 {ctx.local(ctx.now):%H:%M:%S}。"
                    "请注意自身安全，听从现场指挥。")


async def _alarm_click(ctx: Context, alarm: Activation, answer: str) -> None:
    if ctx.me.id not in await commanders():
        await _refuse(ctx, alarm, "只有值班长（应急指挥）可以处理报警。")
        return
    if answer == "no":
        if not await move(alarm, ActivationStatus.ALARM, ActivationStatus.DISMISSED, ctx.me.id,
                          "alarm_dismissed", ctx.now, commander=ctx.me.id):
            await _already(ctx, alarm)
            return
        await _grey(ctx, f"已由{ctx.me.name}确认为误报")
        await _send(ctx, Text(f"您 {ctx.local(alarm.created_at):%H:%M} 的报警已由{ctx.me.name}"
                              "确认为误报，谢谢您的警惕。"), [alarm.raised_by])
        return
    if not await move(alarm, ActivationStatus.ALARM, ActivationStatus.CONFIRMING, ctx.me.id,
                      "alarm_confirmed", ctx.now, commander=ctx.me.id):
        await _already(ctx, alarm)
        return
    await _grey(ctx, f"已由{ctx.me.name}处理")
    await _next_question(ctx, alarm)


# ---------------------------------------------------------------------------------------------
# 启动预案 氨泄漏 二级 3号车间 → questions for what is missing → 确认启动


@router.on(lambda e: (e.kind is InboundKind.TEXT and START.match(e.text.strip()) is not None)
           or (e.kind is InboundKind.MENU and e.event_key == PLAN_MENU_KEY))
async def start(ctx: Context) -> None:
    found = START.match(ctx.event.text.strip() or "启动预案")
    assert found is not None
    if not may_activate(ctx.me):
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="activation",
                     subject_id="-", note=f"启动预案: {ctx.event.text.strip()[:200]}")
        await _say(ctx, "只有应急指挥、安全管理员和主要负责人可以启动预案。"
                        "如遇紧急情况，请发送“一键报警”通知值班长。")
        return
    rest = found.group(2)
    plans = await Plan.filter(active=True).order_by("code")
    if not plans:
        await _say(ctx, "尚未配置应急预案，请联系安全管理员。")
        return
    plan = _plan_in(rest, plans)
    level = _level_in(rest, plan)
    area = area_in_text(rest, await every_area())
    activation = await Activation.create(
        status=ActivationStatus.CONFIRMING, plan_id=plan.code if plan else None,
        level=level, area_id=area[0].code if area else None,
        drill="演练" in found.group(1) or "演练" in rest, token=secrets.token_hex(8),
        raised_by=ctx.me.id, commander=ctx.me.id, note=rest, created_at=ctx.now)
    await audit_activation(activation, ctx.me.id, "requested", ctx.now, note=rest)
    hint = f"没有找到与“{rest.strip()}”对应的预案。" if rest.strip() and plan is None else ""
    await _next_question(ctx, activation, hint)


def _plan_in(text: str, plans: list[Plan]) -> Plan | None:
    """The plan whose code, name or trigger word the text names (the longest match wins)."""
    found = [(len(word), plan) for plan in plans
             for word in (plan.code, plan.name, *plan.triggers) if word and word in text]
    return max(found, key=lambda f: f[0])[1] if found else None


def _level_in(text: str, plan: Plan | None) -> str:
    found = LEVEL.search(text)
    if found is None:
        return ""
    name = found.group(1).translate(ARABIC) + "级"
    return name if plan is None or name in plan.level_names else ""


async def _next_question(ctx: Context, activation: Activation, hint: str = "") -> None:
    """Ask for the plan, then the level; with both, the confirmation card."""
    plans = await Plan.filter(active=True).order_by("code")
    plan = next((p for p in plans if p.code == activation.plan_id), None)
    data = {"activation": activation.id}
    if plan is None:
        await open_dialog(ctx.me.id, ctx.event.platform, KIND, "plan", ctx.now,
                          ctx.rules.draft_idle, data=data)
        choices = "\n".join(f"{n}. {p.name}" for n, p in enumerate(plans, 1))
        await _say(ctx, f"{hint}请回复序号选择要启动的预案：\n{choices}\n回复“取消”放弃。")
        await _send(ctx, _pick_card(activation, plans), [ctx.me.id])
        return
    if not activation.level:
        await open_dialog(ctx.me.id, ctx.event.platform, KIND, "level", ctx.now,
                          ctx.rules.draft_idle, data=data)
        choices = "\n".join(f"{n}. {name}" for n, name in enumerate(plan.level_names, 1))
        await _say(ctx, f"{hint}{plan.name}：请回复序号选择响应级别：\n{choices}\n"
                        "回复“取消”放弃。")
        return
    await close_dialog(ctx.me.id)
    area = await Area.get_or_none(code=activation.area_id or "")
    key = f"emg:{{}}:{activation.id}:{activation.token}"
    await _send(ctx, Card(
        task_id=f"emgc-{activation.id}-{activation.token}", title="请确认启动预案",
        description=headline(activation, plan),
        fields=(("预案", plan.name), ("级别", activation.level),
                ("区域", area.name if area else "全厂"),
                ("性质", "演练" if activation.drill else "实战")),
        buttons=(Button("确认启动", key.format("go"), 1), Button("取消", key.format("stop"), 2)),
    ), [ctx.me.id])


def _pick_card(activation: Activation, plans: list[Plan]) -> Card:
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


async def _picked(ctx: Context, activation: Activation, answer: str) -> None:
    chosen = ctx.event.selected.get("plan", [])
    plan = await Plan.get_or_none(code=chosen[0], active=True) if chosen else None
    if plan is None:
        await _say(ctx, "请先在下拉框中选择预案，再点响应级别。")
        return
    levels = list(dict.fromkeys(
        name for p in await Plan.filter(active=True).order_by("code") for name in p.level_names))
    level = levels[int(answer) - 1] if answer.isdigit() and 0 < int(answer) <= len(levels) else ""
    if level not in plan.level_names:
        await _say(ctx, f"{plan.name}没有{level or '这个'}响应级别，请重新选择。")
        return
    await Activation.filter(id=activation.id).update(plan_id=plan.code, level=level)
    activation.plan_id, activation.level = plan.code, level
    await _grey(ctx, f"已选择{plan.name} {level}")
    await _next_question(ctx, activation)


async def on_dialog(ctx: Context, dialog: Dialog) -> None:
    """The answer to "which plan?" or "which level?"."""
    activation = await Activation.get_or_none(id=dialog.data.get("activation", 0))
    text = ctx.event.text.strip()
    if activation is None or activation.status is not ActivationStatus.CONFIRMING:
        await close_dialog(ctx.me.id)
        return
    if ctx.event.kind is InboundKind.TEXT and text in ("取消", "返回"):
        await close_dialog(ctx.me.id)
        await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.DISMISSED,
                   ctx.me.id, "withdrawn", ctx.now)
        await _say(ctx, "已取消，预案未启动。")
        return
    plans = await Plan.filter(active=True).order_by("code")
    if dialog.step == "plan":
        plan = (plans[int(text) - 1] if text.isdigit() and 1 <= int(text) <= len(plans)
                else _plan_in(text, plans))
        if plan is None:
            await _next_question(ctx, activation, "没有这个预案。")
            return
        await Activation.filter(id=activation.id).update(plan_id=plan.code)
        activation.plan_id = plan.code
    else:
        plan = next(p for p in plans if p.code == activation.plan_id)
        names = plan.level_names
        level = (names[int(text) - 1] if text.isdigit() and 1 <= int(text) <= len(names)
                 else _level_in(text, plan) or (text if text in names else ""))
        if not level:
            await _next_question(ctx, activation, "没有这个级别。")
            return
        await Activation.filter(id=activation.id).update(level=level)
        activation.level = level
    await _next_question(ctx, activation)


async def put_aside(ctx: Context, dialog: Dialog) -> None:
    """Nobody answered the plan or level question: the request lapses, said plainly."""
    await close_dialog(ctx.me.id)
    activation = await Activation.get_or_none(id=dialog.data.get("activation", 0))
    if activation is not None and await move(
            activation, ActivationStatus.CONFIRMING, ActivationStatus.DISMISSED, "system",
            "lapsed", ctx.now):
        await _say(ctx, "启动预案的请求长时间未确认，已作废。如需启动，请重新发送“启动预案”。")


async def _confirm(ctx: Context, activation: Activation) -> None:
    """确认启动: join an activation of the same plan and area made minutes ago, or broadcast."""
    plan = await Plan.filter(code=activation.plan_id or "").select_for_update().first()
    if plan is None:
        await _already(ctx, activation)
        return
    policy = ctx.rules.emergency
    earlier = await Activation.filter(
        status=ActivationStatus.ACTIVE, plan_id=plan.code, area_id=activation.area_id,
        drill=activation.drill, activated_at__gte=ctx.now - policy.join_within,
    ).exclude(id=activation.id).order_by("id").first()
    if earlier is not None:
        if await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.JOINED,
                      ctx.me.id, "joined", ctx.now, joined_to=earlier.id):
            await _grey(ctx, "已并入进行中的应急响应")
            who = await User.get_or_none(id=earlier.commander)
            name = who.name if who else earlier.commander
            await _say(ctx, f"{headline(earlier, plan)}已于"
                            f"{ctx.local(earlier.activated_at or ctx.now):%H:%M}由{name}启动，"
                            "本次并入，不重复通知。")
            if earlier.commander != ctx.me.id:
                await _send(ctx, Text(f"{ctx.me.name}也启动了{headline(earlier, plan)}，"
                                      "已并入您指挥的响应。"), [earlier.commander])
        return
    report = (not activation.drill and bool(plan.report_level)
              and plan.at_or_above(activation.level, plan.report_level))
    if not await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.ACTIVE,
                      ctx.me.id, "activated", ctx.now, activated_at=ctx.now,
                      commander=activation.commander or ctx.me.id,
                      report_due_at=ctx.now + policy.report_within if report else None,
                      board_due_at=ctx.now + FIRST_BOARD):
        await _already(ctx, activation)
        return
    await _grey(ctx, f"已由{ctx.me.name}确认启动")
    # The groups now; the cards to everyone (ten thousand rows) in a step of their own, so the
    # decision commits and the groups hear of it without waiting for them.
    text = await broadcast_text(activation, plan, ctx.rules.tz)
    await enqueue_many([Queued(f"emg:{activation.id}:group:{group}", text, to_chat=group)
                        for group in plan.groups], now=ctx.now, platform=ctx.event.platform,
                       priority=Priority.EMERGENCY)
    await ctx.follow_up(f"emg:call:{activation.id}")


@clicks.follow_up("emg:call")
async def call_responders(ctx: Context) -> None:
    """确认启动's second step: a card to each person the level calls; the commander is told."""
    activation = await Activation.get(id=int(ctx.event.event_key.rsplit(":", 1)[1]))
    if activation.status is not ActivationStatus.ACTIVE:
        return      # closed already: nobody is called to a response that is over
    plan = await Plan.get(code=activation.plan_id or "")
    level = plan.level(activation.level)
    assert level is not None
    called = await call(activation, plan, await callees(level), ctx.now,
                        ctx.event.platform, ctx.rules.emergency.remind_every)
    lines = [f"{headline(activation, plan)}已启动：已向{called}人发送确认卡片，"
             f"向{len(plan.groups)}个群发送处置要点。应急看板将随确认情况更新，"
             "发送“应急状态”可随时查看，发送“结束预案”结束响应。"]
    if activation.report_due_at:
        lines.append(f"请在{ctx.local(activation.report_due_at):%H:%M}前（启动后1小时内）"
                     "按规定向属地应急管理部门报告事故情况，报告后回复“已上报”。")
    await _send(ctx, Text("\n".join(lines)), [activation.commander])
    if activation.raised_by != activation.commander:
        await _send(ctx, Text(f"您报告的情况已启动{headline(activation, plan)}。"),
                    [activation.raised_by])


# ---------------------------------------------------------------------------------------------
# Card buttons: emg:<action>:<activation>:<token>[:<answer>]


@clicks.card_action("emg")
async def clicked(ctx: Context) -> None:
    parts = ctx.event.event_key.split(":")
    activation = None
    if len(parts) in (4, 5) and parts[2].isdigit():
        activation = await Activation.get_or_none(id=int(parts[2]))
    if activation is None or not secrets.compare_digest(activation.token, parts[3]):
        await record(at=ctx.now, actor=ctx.me.id, action="refused", subject_type="card",
                     subject_id=ctx.event.task_id[:64],
                     note=f"unknown key {ctx.event.event_key[:400]}")
        await _say(ctx, "无法识别这个操作，请使用最新收到的卡片。")
        return
    action, answer = parts[1], (parts[4] if len(parts) == 5 else "")
    if action == "alarm" and answer in ("go", "no"):
        await _alarm_click(ctx, activation, answer)
    elif action == "ack" and answer in ANSWERS:
        await acknowledge(ctx, activation, answer)
    elif action in ("go", "stop", "pick") and ctx.me.id in (activation.raised_by,
                                                            activation.commander):
        if activation.status is not ActivationStatus.CONFIRMING:
            await _already(ctx, activation)
        elif action == "pick":
            await _picked(ctx, activation, answer)
        elif action == "go":
            await close_dialog(ctx.me.id)
            await _confirm(ctx, activation)
        elif await move(activation, ActivationStatus.CONFIRMING, ActivationStatus.DISMISSED,
                        ctx.me.id, "withdrawn", ctx.now):
            await _grey(ctx, "已取消")
            await _say(ctx, "已取消，预案未启动。")
    else:
        await _refuse(ctx, activation, "这张卡片不是发给您的，无法操作。")


async def _refuse(ctx: Context, activation: Activation, reason: str) -> None:
    await audit_activation(activation, ctx.me.id, "refused", ctx.now,
                           from_state=activation.status.value, note=reason)
    await _say(ctx, reason)


async def _already(ctx: Context, activation: Activation) -> None:
    word = {ActivationStatus.ACTIVE: "已启动", ActivationStatus.CLOSED: "已结束",
            ActivationStatus.DISMISSED: "已取消", ActivationStatus.JOINED: "已并入"}.get(
        activation.status, "已处理")
    await _say(ctx, f"该事项{word}，无需再次操作。")


async def _grey(ctx: Context, text: str) -> None:
    """Grey out the clicked card for everyone who got it."""
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, text), priority=Priority.EMERGENCY)


# ---------------------------------------------------------------------------------------------
# 收到 / 无法到场, by card or typed


@router.on(lambda e: e.kind is InboundKind.TEXT and e.text.strip() in ACK_WORDS)
async def typed_answer(ctx: Context) -> None:
    row = await Responder.filter(user_id=ctx.me.id, answer="",
                                 activation__status=ActivationStatus.ACTIVE).order_by(
        "-id").first()
    if row is None:
        await _say(ctx, "您目前没有需要确认的应急通知。")
        return
    await acknowledge(ctx, await Activation.get(id=row.activation_id),
                      ACK_WORDS[ctx.event.text.strip()])


async def acknowledge(ctx: Context, activation: Activation, answer: str) -> None:
    row = await Responder.get_or_none(activation_id=activation.id, user_id=ctx.me.id)
    if row is None or (ctx.event.task_id and row.task_id != ctx.event.task_id):
        await _refuse(ctx, activation, "这张卡片不是发给您的，无法操作。")
        return
    word = ANSWERS[answer]
    if row.answer and not row.late:
        await _say(ctx, f"您已于{ctx.local(row.answered_at or ctx.now):%H:%M:%S}回复“"
                        f"{row.answer}”，无需重复确认。")
        return
    if activation.status is not ActivationStatus.ACTIVE:
        # After the close: kept on record as late, the board and summary stay as they were.
        await Responder.filter(id=row.id, answer="").update(
            answer=word, answered_at=ctx.now, late=True, next_remind_at=None)
        await _say(ctx, "该应急响应已结束，您的回复已记录。")
        return
    if not await Responder.filter(id=row.id, answer="").update(
            answer=word, answered_at=ctx.now, next_remind_at=None):
        return
    await audit_activation(activation, ctx.me.id, f"ack_{answer}", ctx.now,
                           from_state=activation.status.value)
    # A pressed card is answered by greying out that person's card alone; a typed answer has
    # no card to grey, so it gets a line. At ten thousand answers, one message each, and behind
    # the cards and the board (urgent, not emergency).
    at = ctx.local(ctx.now)
    if ctx.event.response_code:
        await ctx.send(CardUpdate(ctx.event.response_code, f"已回复{word} {at:%H:%M:%S}",
                                  users=(ctx.me.id,)), priority=Priority.URGENT)
    else:
        await ctx.send(Text(f"已记录：{word}（{at:%H:%M:%S}）。" + (
            "请按预案行动，注意安全。" if answer == "ok" else "指挥会安排他人。")),
            to_users=[ctx.me.id], priority=Priority.URGENT)
    plan = await Plan.get(code=activation.plan_id or "")
    if answer == "no":
        level = plan.level(activation.level)
        deputy = level.deputy_of(ctx.me.id) if level else ""
        if deputy:
            await call(activation, plan, [deputy], ctx.now, ctx.event.platform,
                       ctx.rules.emergency.remind_every, deputy_for={deputy: ctx.me.id})
    await _board_soon(ctx, activation, plan)


async def _board_soon(ctx: Context, activation: Activation, plan: Plan) -> None:
    """At most one board per interval: now if the last one is old enough, else the scheduler
    sends it when the interval is up."""
    every = ctx.rules.emergency.board_every
    last = activation.board_sent_at
    if last is None or ctx.now - last >= every:
        sent = await Activation.filter(id=activation.id, board_sent_at=last).update(
            board_sent_at=ctx.now, board_due_at=None)
        if sent:
            await _send(ctx, await board(activation, plan, ctx.now, ctx.rules.tz),
                        [activation.commander])
        return
    await Activation.filter(id=activation.id, board_due_at__isnull=True).update(
        board_due_at=last + every)


# ---------------------------------------------------------------------------------------------
# 结束预案, 应急状态, 已上报


async def _mine(ctx: Context) -> list[Activation]:
    """The active responses this person may run: their own, or all for managers."""
    active = Activation.filter(status=ActivationStatus.ACTIVE).order_by("id")
    if may_activate(ctx.me):
        return list(await active)
    return list(await active.filter(commander=ctx.me.id))


@router.on(lambda e: e.kind is InboundKind.TEXT and CLOSE.match(e.text.strip()) is not None)
async def close(ctx: Context) -> None:
    found = CLOSE.match(ctx.event.text.strip())
    assert found is not None
    active = await _mine(ctx)
    if not active:
        await _say(ctx, "目前没有您可以结束的应急响应。")
        return
    rest = found.group(2).strip()
    number = re.search(r"\d+", rest)
    plans = {p.code: p for p in await Plan.filter(code__in=[a.plan_id for a in active])}
    named = _plan_in(rest, list(plans.values()))
    chosen = [a for a in active if (number and a.id == int(number.group()))
              or (not number and named and a.plan_id == named.code)]
    if not chosen and len(active) == 1 and not rest:
        chosen = active
    if len(chosen) != 1:
        lines = "\n".join(f"结束预案 {a.id}：{headline(a, plans[a.plan_id or ''])}"
                          for a in active)
        await _say(ctx, f"请指明要结束哪一项，回复：\n{lines}")
        return
    activation = chosen[0]
    policy = ctx.rules.emergency
    if not await move(activation, ActivationStatus.ACTIVE, ActivationStatus.CLOSED, ctx.me.id,
                      "closed", ctx.now, closed_at=ctx.now, closed_by=ctx.me.id,
                      board_due_at=None,
                      review_due_at=ctx.now + policy.review_after if activation.drill else None):
        await _already(ctx, activation)
        return
    await Responder.filter(activation_id=activation.id).update(next_remind_at=None)
    plan = plans[activation.plan_id or ""]
    text = await summary(activation, plan, ctx.rules.tz)
    await enqueue_many([Queued(f"emg:{activation.id}:summary:{group}", text, to_chat=group)
                        for group in plan.groups], now=ctx.now, platform=ctx.event.platform,
                       priority=Priority.EMERGENCY)
    await _send(ctx, text, sorted({activation.commander, ctx.me.id}))
    if activation.drill:
        await _say(ctx, f"演练已结束。{policy.review_after.total_seconds() / 3600:.0f}小时后将"
                        "提醒组织演练评估。")


@router.text("应急状态")
async def status(ctx: Context) -> None:
    active = await _mine(ctx)
    if active:
        plans = {p.code: p for p in await Plan.filter(code__in=[a.plan_id for a in active])}
        for activation in active:
            await _send(ctx, await board(activation, plans[activation.plan_id or ""], ctx.now,
                                         ctx.rules.tz), [ctx.me.id])
        return
    waiting = await Responder.filter(user_id=ctx.me.id, answer="",
                                     activation__status=ActivationStatus.ACTIVE).count()
    await _say(ctx, f"您有{waiting}条应急通知尚未确认，请回复“收到”。" if waiting
               else "目前没有进行中的应急响应。")


@router.text("已上报", "事故已上报")
async def reported(ctx: Context) -> None:
    if not may_activate(ctx.me):
        await _say(ctx, "事故上报由应急指挥或安全管理员记录。")
        return
    activation = await Activation.filter(report_due_at__isnull=False, reported_at__isnull=True
                                         ).order_by("-id").first()
    if activation is None:
        await _say(ctx, "目前没有待上报的事故。")
        return
    await Activation.filter(id=activation.id).update(reported_at=ctx.now)
    await audit_activation(activation, ctx.me.id, "reported", ctx.now,
                           from_state=activation.status.value)
    start = activation.activated_at or ctx.now
    minutes = int((ctx.now - start).total_seconds() // 60)
    overdue = activation.report_due_at is not None and ctx.now > activation.report_due_at
    late = "，已超过1小时时限" if overdue else ""
    await _say(ctx, f"已记录事故上报时间 {ctx.local(ctx.now):%H:%M}"
                    f"（启动后{minutes}分钟{late}）。")
