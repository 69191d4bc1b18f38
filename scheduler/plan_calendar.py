"""Keeping plans drilled and evaluated: reminders before a plan falls due (to the commanders and
safety managers), and the lines the daily digest and the monthly report carry about plans."""

from __future__ import annotations

from datetime import date, datetime

from models.calendar import WorkCalendar, reminder_window
from models.org import Role, people_with
from models.outbox import enqueue
from models.outgoing import Text
from models.plan_calendar import DrillRules, PlanDates, drill_overdue, plan_dates, review_overdue

BASIS = "《生产安全事故应急预案管理办法》"


def _day(day: date | None) -> str:
    return f"{day:%Y年%m月%d日}" if day else "尚无记录"


async def remind_plans(rules: DrillRules, calendar: WorkCalendar, now: datetime,
                       platform: str) -> int:
    """On working days only (what falls due on a holiday is reminded on the next working day,
    as the resource ledger's reminders are), each reminder once: its idempotency key names the
    plan, the date and the days."""
    today = now.astimezone(calendar.tz).date()
    if not calendar.working_day(today):
        return 0
    to = sorted(set(await people_with(Role.COMMANDER)) | set(await people_with(
        Role.SAFETY_MANAGER)))
    due: list[tuple[str, str]] = []
    for d in await plan_dates(rules, calendar.tz, today.year) if to else []:
        if d.drill_due and (days := reminder_window(d.drill_due, today, rules.remind_days)):
            due.append((f"plan-drill:{d.plan.code}:{d.drill_due}:{days}",
                        f"【演练提醒】《{d.plan.name}》（{d.plan.kind.value}，至少每{d.months}"
                        f"个月一次）应于{_day(d.drill_due)}前完成演练，还有"
                        f"{(d.drill_due - today).days}天。上次演练：{_day(d.last_drill)}。"
                        f"发送“启动演练 {d.plan.triggers[0]}”开始。"))
        if d.review_due and reminder_window(d.review_due, today, (rules.review_remind_days,)):
            due.append((f"plan-review:{d.plan.code}:{d.review_due}",
                        f"【预案评估提醒】《{d.plan.name}》上次评审于{_day(d.plan.reviewed_on)}，应于"
                        f"{_day(d.review_due)}前完成评估（{BASIS}第三十五条，每"
                        f"{rules.review_years}年一次），还有{(d.review_due - today).days}天。"))
    sent = 0
    for key, words in due:
        sent += await enqueue(key, Text(words), now=now, platform=platform, to_users=to)
    return sent


def overdue_lines(dates: list[PlanDates], today: date) -> list[str]:
    """For the daily digest: plans past their drill or their evaluation."""
    lines = []
    for d in dates:
        if drill_overdue(d, today):
            lines.append(f"> 《{d.plan.name}》演练已逾期：应于{_day(d.drill_due)}前，上次演练："
                         f"{_day(d.last_drill)}")
        if review_overdue(d, today):
            lines.append(f"> 《{d.plan.name}》超过评估期限：应于{_day(d.review_due)}前评估")
    return ["**应急预案**", *lines] if lines else []


def drill_count_lines(dates: list[PlanDates], year: int) -> list[str]:
    """For the monthly report: drills of each plan so far this year."""
    counts = "，".join(f"《{d.plan.name}》{d.drills}次" for d in dates)
    return [f"**应急演练（{year}年累计）**", f"> {counts}"] if dates else []
