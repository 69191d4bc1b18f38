"""一键报警: anyone raises it (typed or from the app menu), the duty commander confirms it — and
goes on to choose the plan — or dismisses it as a false alarm."""

from __future__ import annotations

import re

from handlers.emergency.activation import next_question, plan_in
from handlers.emergency.speak import already, grey, refuse, say, send
from handlers.router import Context, Router
from models.catalog import area_in_text
from models.emergency import (
    Activation,
    ActivationStatus,
    active_plans,
    commanders,
    move,
    new_activation,
)
from models.emergency import audit as audit_activation
from models.inbound import InboundKind
from models.org import every_area, user_names
from models.outgoing import Button, Card, Text

MENU_KEY = "alarm"           # the app menu's 一键报警
ALARM = re.compile(r"^(一键报警|报警)\s*(.*)$")
router = Router()


@router.on(lambda e: (e.kind is InboundKind.TEXT and ALARM.match(e.text.strip()) is not None)
           or (e.kind is InboundKind.MENU and e.event_key == MENU_KEY))
async def raise_alarm(ctx: Context) -> None:
    found = ALARM.match(ctx.event.text.strip())
    note = found.group(2).strip() if found else ""
    on_duty = await commanders()
    if not on_duty:
        await say(ctx, "名册中没有值班长（应急指挥），请立即拨打厂内应急电话。")
        return
    area = area_in_text(note, await every_area())
    plans = list(await active_plans())
    plan = plan_in(note, plans)
    alarm = await new_activation(ActivationStatus.ALARM, ctx.me.id, note, ctx.now,
                                 plan_id=plan.code if plan else None,
                                 area_id=area[0].code if area else None)
    await audit_activation(alarm, ctx.me.id, "alarm_raised", ctx.now, note=note)
    key = f"emg:alarm:{alarm.id}:{alarm.token}"
    await send(ctx, Card(
        task_id=f"emga-{alarm.id}-{alarm.token}", title="【一键报警】请立即确认",
        description=f"{ctx.me.name} {ctx.local(ctx.now):%H:%M:%S} 报警",
        fields=(("报警人", ctx.me.name), ("区域", area[0].name if area else "未说明"),
                ("情况", note or "未说明")),
        buttons=(Button("启动预案", f"{key}:go", 1), Button("误报", f"{key}:no", 2)),
    ), on_duty)
    named = await user_names(on_duty)
    names = "、".join(named[p] for p in on_duty if p in named)    # `commanders` are by id
    await say(ctx, f"已向值班长（{names}）报警，时间 {ctx.local(ctx.now):%H:%M:%S}。"
                    "请注意自身安全，听从现场指挥。")


async def alarm_click(ctx: Context, alarm: Activation, answer: str) -> None:
    if ctx.me.id not in await commanders():
        await refuse(ctx, alarm, "只有值班长（应急指挥）可以处理报警。")
        return
    if answer == "no":
        if not await move(alarm, ActivationStatus.ALARM, ActivationStatus.DISMISSED, ctx.me.id,
                          "alarm_dismissed", ctx.now, commander=ctx.me.id):
            await already(ctx, alarm)
            return
        await grey(ctx, f"已由{ctx.me.name}确认为误报")
        await send(ctx, Text(f"您 {ctx.local(alarm.created_at):%H:%M} 的报警已由{ctx.me.name}"
                              "确认为误报，谢谢您的警惕。"), [alarm.raised_by])
        return
    if not await move(alarm, ActivationStatus.ALARM, ActivationStatus.CONFIRMING, ctx.me.id,
                      "alarm_confirmed", ctx.now, commander=ctx.me.id):
        await already(ctx, alarm)
        return
    await grey(ctx, f"已由{ctx.me.name}处理")
    await next_question(ctx, alarm)
