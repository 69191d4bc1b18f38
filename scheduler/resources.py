"""Keeping the resource ledger current: reminders to keepers when an inspection falls due and
before a resource expires, and the digest's lines on expired, failed and overdue resources."""

from __future__ import annotations

from datetime import datetime

from models.calendar import WorkCalendar, reminder_window
from models.outbox import enqueue
from models.outgoing import Text
from models.resources import Problems, active_resources

EXPIRY_DAYS = (30, 7)   # expiry reminders, days before
LISTED = 5              # resources named per line of the digest


async def remind_resources(calendar: WorkCalendar, now: datetime, platform: str) -> int:
    """On working days only (a keeper is not asked on a holiday; what fell due then is
    reminded on the next working day), each reminder once: its idempotency key names the
    resource, the date and, for expiry, the days before."""
    today = now.astimezone(calendar.tz).date()
    if not calendar.working_day(today):
        return 0
    due: list[tuple[str, str, str]] = []      # (key, words, keeper)
    for r in await active_resources():
        inspect_by = r.due_on
        if inspect_by is not None and inspect_by <= today and not r.expired(today):
            due.append((
                f"res-due:{r.code}:{inspect_by}",
                f"【物资点检提醒】您保管的{r.label}应于{inspect_by:%Y年%m月%d日}前点检（每"
                f"{r.interval_days}天一次）。点检后回复“点检 {r.code} 正常”"
                + (f"，或回复读数，例如“点检 {r.code} 28{r.reading_unit}”" if r.reading_name
                   else "") + f"；有问题回复“点检 {r.code} 异常 情况说明”。", r.keeper))
        if r.expires_on and (days := reminder_window(r.expires_on, today, EXPIRY_DAYS)):
            due.append((
                f"res-expiry:{r.code}:{r.expires_on}:{days}",
                f"【物资到期提醒】您保管的{r.label}将于{r.expires_on:%Y年%m月%d日}到期，还有"
                f"{(r.expires_on - today).days}天。请及时更换，并请安全管理员更新台账。",
                r.keeper))
    sent = 0
    for key, words, keeper in due:
        sent += await enqueue(key, Text(words), now=now, platform=platform, to_users=[keeper])
    return sent


def problem_lines(found: Problems) -> list[str]:
    """For the daily digest: counts, and the first few by code."""
    lines = []
    for title, rows in (("已过期", found.expired), ("点检异常", found.failed),
                        ("点检逾期", found.overdue)):
        if rows:
            named = "、".join(f"{r.code} {r.name}" for r in rows[:LISTED])
            more = "，……" if len(rows) > LISTED else ""
            lines.append(f"> {title}：{len(rows)}项（{named}{more}）")
    return ["**应急物资**", *lines] if lines else []
