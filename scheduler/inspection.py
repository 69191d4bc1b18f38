"""Patrol rounds on the clock, every tick: each plan's round opened when its window begins (the
patrollers told, once each), reminded before the window ends when not finished, and at the end
marked missed with the patrollers' supervisors told (a safety manager for someone without one).
Recipients are frozen when the round opens. A by-risk plan's frequency is read from its route's
areas at each opening, so a change of status shows in the next round. And the inspection lines
of the digest and the monthly report."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from models.inspection.figures import month_figures
from models.inspection.rounds import (
    NewRound,
    Round,
    at_minute,
    existing_keys,
    mark_missed,
    mark_reminded,
    missed_between,
    open_rounds,
    period_of,
    rounds_past_window,
    rounds_to_remind,
)
from models.inspection.rules import InspectionRules
from models.inspection.sites import (
    Frequency,
    PatrolPlan,
    active_plans,
    checkpoint_names,
    route_areas,
    routes_by_code,
    supervisors,
    walkers,
)
from models.inspection.visits import Source, reached_in
from models.org import Role, every_area, people_with, user_names
from models.outbox import Queued, enqueue_many
from models.outgoing import Text

SOURCE_WORDS = {Source.SCAN: "扫码", Source.PHOTO: "拍标签", Source.TYPED: "手输编号"}
BATCH = 500
LISTED = 8          # checkpoints named in a notice


async def run_rounds(rules: InspectionRules, now: datetime, tz: ZoneInfo, platform: str
                     ) -> int:
    """Open, remind and close what is due as of `now`; how many messages were queued."""
    messages = await _open(rules, now, tz)
    messages += await _remind(now, tz)
    messages += await _close(now)
    messages = [m for m in messages if m.to_users]     # nobody to tell: a plant without managers
    return await enqueue_many(messages, now=now, platform=platform) if messages else 0


async def due_rounds(rules: InspectionRules, now: datetime, tz: ZoneInfo
                     ) -> list[tuple[PatrolPlan, Frequency, datetime, datetime]]:
    """The plans whose window has begun today with no round for its period yet: each with the
    frequency it runs at now and the round's start and end."""
    plans = await active_plans()
    if not plans:
        return []
    today = now.astimezone(tz).date()
    by_risk = [p for p in plans if p.frequency is Frequency.BY_RISK]
    statuses: dict[str, tuple[str, str]] = {}
    areas_of: dict[str, set[str]] = {}
    if by_risk:
        statuses = {a.code: (a.risk_status, a.risk_color.value) for a in await every_area()}
        areas_of = await route_areas(list((await routes_by_code(
            {p.route_id for p in by_risk})).values()))
    due = []
    for plan in plans:
        frequency = (rules.frequency([statuses[a] for a in areas_of.get(plan.route_id, ())
                                      if a in statuses])
                     if plan.frequency is Frequency.BY_RISK else plan.frequency)
        period = period_of(frequency, today)
        opens = at_minute(today, plan.starts, tz)
        closes = at_minute(period.last, plan.ends, tz)
        if opens <= now < closes:
            due.append((plan, frequency, opens, closes))
    taken = await existing_keys([f"{p.code}:{period_of(f, today).key}" for p, f, _, _ in due])
    return [d for d in due if f"{d[0].code}:{period_of(d[1], today).key}" not in taken]


async def _open(rules: InspectionRules, now: datetime, tz: ZoneInfo) -> list[Queued]:
    due = await due_rounds(rules, now, tz)
    if not due:
        return []
    today = now.astimezone(tz).date()
    routes = await routes_by_code({p.route_id for p, _, _, _ in due})
    who = await walkers([p for p, _, _, _ in due])
    bosses = await supervisors(sorted({x for people in who.values() for x in people}))
    managers = await people_with(Role.SAFETY_MANAGER)
    new = []
    for plan, frequency, opens, closes in due:
        route = routes[plan.route_id]
        people = who[plan.code]
        above = sorted({bosses[p] for p in people if p in bosses} - set(people))
        if not people or any(p not in bosses for p in people):
            above = sorted({*above, *managers} - set(people))
        new.append(NewRound(plan, frequency, period_of(frequency, today), route.code,
                            route.name, list(route.checkpoints), people, above, opens, closes))
    made = await open_rounds(new, rules.remind_before, rules.late)
    names = await checkpoint_names({c for r in new for c in r.checkpoints})
    messages = []
    for r in new:
        if r.key not in made:
            continue
        if not r.patrollers:       # nobody holds the plan's role or post: its supervisors know
            messages.append(Queued(f"insp:{made[r.key]}:nobody", Text(
                f"【巡检任务】“{r.route_name}”（{r.plan.code}）本期没有可安排的巡检人员，"
                "请在巡检配置中指定人员、角色或岗位。"), r.supervisors))
            continue
        when = (f"今天{r.plan.window}" if r.period.first == r.period.last
                else f"{r.period.last:%m月%d日}前，每天{r.plan.window}")
        stops = " → ".join(f"{c} {names.get(c, '')}" for c in r.checkpoints[:LISTED])
        more = f" 等{len(r.checkpoints)}个" if len(r.checkpoints) > LISTED else ""
        messages.append(Queued(f"insp:{made[r.key]}:open", Text(
            f"【巡检任务】请于{when}完成“{r.route_name}”（{r.frequency.label}），"
            f"共{len(r.checkpoints)}个巡检点：{stops}{more}。到达后扫描巡检点二维码，或发送标签上"
            "的编号开始检查；发送“巡检”查看进度。"), r.patrollers))
    return messages


async def _remind(now: datetime, tz: ZoneInfo) -> list[Queued]:
    messages = []
    while rounds := await rounds_to_remind(now, BATCH):
        reached = await reached_in([r.id for r in rounds])
        for r in rounds:
            left = [c for c in r.checkpoints if c not in reached[r.id]]
            if not left:
                continue
            messages.append(Queued(f"insp:{r.id}:remind", Text(
                f"【巡检提醒】“{r.route_name}”将于{r.closes_at.astimezone(tz):%H:%M}截止，"
                f"还有{len(left)}个巡检点未完成：{'、'.join(left[:LISTED])}"
                f"{'等' if len(left) > LISTED else ''}。"), r.patrollers))
        await mark_reminded([r.id for r in rounds])
    return messages


async def _close(now: datetime) -> list[Queued]:
    messages = []
    while rounds := await rounds_past_window(now, BATCH):
        reached = await reached_in([r.id for r in rounds])
        names = await user_names({p for r in rounds for p in r.patrollers})
        for r in rounds:
            done = len(reached[r.id])
            who = "、".join(names.get(p, p) for p in r.patrollers) or "（无人）"
            messages.append(Queued(f"insp:{r.id}:missed", Text(
                f"【巡检漏检】{who}未在规定时段内完成“{r.route_name}”（{_period(r)}），"
                f"已完成{done}/{len(r.checkpoints)}个巡检点。请督促补检并查明原因。"),
                r.supervisors))
            if r.patrollers:
                messages.append(Queued(f"insp:{r.id}:missed-self", Text(
                    f"【巡检漏检】“{r.route_name}”巡检时段已结束，您完成了{done}/"
                    f"{len(r.checkpoints)}个巡检点，已告知您的上级。"), r.patrollers))
        await mark_missed([r.id for r in rounds])
    return messages


def _period(r: Round) -> str:
    return f"{r.period}，{r.window}"


# ---------------------------------------------------------------------------------------------
# Reports


async def digest_lines(start: datetime, end: datetime) -> list[str]:
    """For the safety managers' digest: the rounds missed in [start, end)."""
    missed = await missed_between(start, end)
    if not missed:
        return []
    names = await user_names({p for r in missed for p in r.patrollers})
    by_route: dict[str, list[Round]] = defaultdict(list)
    for r in missed:
        by_route[r.route_name].append(r)
    lines = [f"> 昨日漏检：{len(missed)}轮"]
    lines += [f"> {route}：" + "、".join(
        "、".join(names.get(p, p) for p in r.patrollers) or "无人" for r in found)
        for route, found in list(by_route.items())[:5]]
    return ["**巡检**", *lines]


async def month_lines(start: datetime, end: datetime, suspicious_seconds: int) -> list[str]:
    m = await month_figures(start, end, suspicious_seconds)
    if not m.rounds:
        return []
    lines = ["**巡检**",
             f"> 巡检轮次：{m.rounds}轮，按时完成{m.done}，逾期完成{m.late}，漏检{m.missed}",
             f"> 发现异常：{m.findings}项（读数超限{m.out_of_range}项），平均每个巡检点间隔"
             + (f"{m.mean_gap_seconds / 60:.1f}分钟" if m.mean_gap_seconds is not None else "—")]
    if m.by_source:
        lines.append("> 到达方式：" + "，".join(f"{SOURCE_WORDS[s]}{n}次"
                                            for s, n in sorted(m.by_source.items())))
    lines += [f"> 路线 {name}：完成{done}，逾期{late}，漏检{missed}"
              for name, done, late, missed in m.by_route[:8]]
    lines += [f"> 区域 {name}：完成{done}，逾期{late}，漏检{missed}"
              for name, done, late, missed in m.by_area[:8]]
    if m.by_checkpoint:
        lines.append("> 异常最多的巡检点：" + "、".join(
            f"{c}（{n}项）" for c, n in m.by_checkpoint[:5]))
    if m.suspicious:
        lines.append("> 用时异常短的轮次（疑似未到场）：" + "；".join(m.suspicious[:5]))
    return lines

