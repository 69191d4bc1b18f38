"""The emergency side of each tick: remind responders who have not answered and then call their
deputies, send the commander's board when answers came in since the last one, count down the
one-hour 事故上报. All of it goes with emergency priority and ignores quiet hours. (The review
after the close is a task with the tickets' ladder, models/emergency_review.py.)"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from models import transaction
from models.emergency import (
    Activation,
    EmergencyPolicy,
    Plan,
    Responder,
    activations_by_id,
    call,
    commander_board,
    handed_over,
    headline,
    plan_of,
    plans_of,
    reminded,
    responders_to_remind,
)
from models.emergency_due import (
    boards_due,
    due_board_sent,
    report_reminded,
    reports_due,
)
from models.org import user_names
from models.outbox import Queued, enqueue_many
from models.outgoing import Priority, Text
from scheduler.digest import safety_managers

BATCH = 5000
REPORT_STAGES = (timedelta(minutes=30), timedelta(minutes=10), timedelta(0))  # before due


async def run_emergency(policy: EmergencyPolicy, now: datetime, platform: str,
                        tz: ZoneInfo) -> int:
    """Everything due; returns how many messages it queued."""
    sent = await _remind(policy, now, platform)
    sent += await _boards(now, platform, tz)
    sent += await _report_countdown(now, platform, tz)
    return sent


async def _remind(policy: EmergencyPolicy, now: datetime, platform: str) -> int:
    async with transaction():
        rows = await responders_to_remind(now, BATCH)
        if not rows:
            return 0
        activations = await activations_by_id({r.activation_id for r in rows})
        plans = await plans_of(activations.values())
        remind = [r for r in rows if r.reminders < policy.reminders_before_deputy]
        handover = [r for r in rows if r.reminders >= policy.reminders_before_deputy]
        titles = {a.id: headline(a, plans[a.plan_id or ""]) for a in activations.values()}
        queued = [Queued(
            f"emg:{r.activation_id}:remind:{r.user_id}:{r.reminders + 1}",
            Text(f"{titles[r.activation_id]}：请立即确认，点卡片上的“收到”或直接回复“收到”；"
                 f"无法到场请回复“无法到场”。（第{r.reminders + 1}次提醒）"),
            to_users=[r.user_id]) for r in remind]
        await reminded([r.id for r in remind], now + policy.remind_every)
        await handed_over([r.id for r in handover])
        queued += await _call_deputies(handover, activations, plans, now, platform, policy)
        await enqueue_many(queued, now=now, platform=platform, priority=Priority.EMERGENCY)
    return len(queued)


async def _call_deputies(silent: list[Responder], activations: dict[int, Activation],
                         plans: dict[str, Plan], now: datetime, platform: str,
                         policy: EmergencyPolicy) -> list[Queued]:
    """Call each silent person's deputy, and tell the commander who was replaced by whom."""
    by_activation: dict[int, list[Responder]] = defaultdict(list)
    for row in silent:
        by_activation[row.activation_id].append(row)
    notes = []
    for activation_id, rows in by_activation.items():
        activation = activations[activation_id]
        plan = plans[activation.plan_id or ""]
        level = plan.level(activation.level)
        deputies = {r.user_id: level.deputy_of(r.user_id) if level else "" for r in rows}
        called = {d: p for p, d in deputies.items() if d}
        if called:
            await call(activation, plan, list(called), now, platform, policy.remind_every,
                       deputy_for=called)
        names = await user_names([*deputies, *called])
        parts = [f"{names.get(p, p)}（" + (f"已通知替补{names.get(d, d)}" if d else "无替补")
                 + "）" for p, d in deputies.items()]
        notes.append(Queued(
            f"emg:{activation_id}:deputies:{min(r.id for r in rows)}:{len(rows)}",
            Text(f"{headline(activation, plan)}：以下人员多次提醒仍未确认：" + "、".join(parts)),
            to_users=[activation.commander]))
    return notes


async def _boards(now: datetime, platform: str, tz: ZoneInfo) -> int:
    """Answers arrived since the last board: the commander gets a fresh one."""
    queued = []
    for activation in await boards_due(now):
        if not await due_board_sent(activation, now):
            continue
        plan = await plan_of(activation)
        messages = await commander_board(activation, plan, now, tz)
        queued += [Queued(f"emg:{activation.id}:board:{now.isoformat()}" + (f":{n}" if n else ""),
                          message, to_users=[activation.commander])
                   for n, message in enumerate(messages)]
    await enqueue_many(queued, now=now, platform=platform, priority=Priority.EMERGENCY)
    return len(queued)


async def _report_countdown(now: datetime, platform: str, tz: ZoneInfo) -> int:
    """30 and 10 minutes before the one-hour 事故上报 limit, and when it passes."""
    due = await reports_due(now + REPORT_STAGES[0], len(REPORT_STAGES))
    managers = await safety_managers()
    queued = []
    for activation in due:
        assert activation.report_due_at is not None
        stage = sum(activation.report_due_at - before <= now for before in REPORT_STAGES)
        if stage <= activation.report_reminders or not await report_reminded(activation, stage):
            continue
        plan = await plan_of(activation)
        left = int((activation.report_due_at - now).total_seconds() // 60)
        text = (f"事故上报提醒：{headline(activation, plan)}须在"
                f"{activation.report_due_at.astimezone(tz):%H:%M}前向属地应急管理部门报告"
                + (f"，还有{left}分钟。" if left > 0 else "，现已超过1小时时限，请立即报告。")
                + "报告后请回复“已上报”。")
        queued.append(Queued(f"emg:{activation.id}:report:{stage}", Text(text),
                             to_users=sorted({activation.commander, *managers})))
    await enqueue_many(queued, now=now, platform=platform, priority=Priority.EMERGENCY)
    return len(queued)
