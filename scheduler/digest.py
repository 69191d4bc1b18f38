"""The safety managers' daily digest: yesterday's new and closed tickets, what is open and
overdue now, by area, and the areas whose dynamic risk status is 高."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from models.area_counts import day_counts
from models.org import Role, every_area, people_with
from models.outbox import enqueue
from models.outgoing import Markdown

MAX_AREAS = 15          # the rest are summed up in one line, within WeCom's 4,096 bytes


async def safety_managers() -> list[str]:
    return await people_with(Role.SAFETY_MANAGER)


async def send_digest(to: list[str], day_start: datetime, now: datetime, tz: ZoneInfo,
                      platform: str, more: Sequence[str] = ()) -> None:
    """The digest for the local day that ends at `day_start` (yesterday); `more`: other
    modules' lines (the emergency plans overdue, the resources expired, failed or overdue)."""
    since = day_start - timedelta(days=1)
    counts = await day_counts(since, day_start, now)
    total = {name: sum(c.values()) for name, c in counts.items()}
    areas = {a.code: a for a in await every_area()}
    day = since.astimezone(tz)
    lines = [f"**安全日报 {day:%m月%d日}**",
             f"> 新增隐患：{total['new']}项，闭环：{total['closed']}项",
             f"> 未闭环：{total['open']}项，其中超期：{total['overdue']}项"]
    touched = sorted(set().union(*counts.values()),
                     key=lambda code: (-counts["overdue"][code], -counts["open"][code],
                                       code or ""))
    if touched:
        lines.append("**分区域**（新增 / 闭环 / 未闭环 / 超期）")
        for code in touched[:MAX_AREAS]:
            name = areas[code].name if code in areas else "未填区域"
            lines.append(f"> {name}：{counts['new'][code]} / {counts['closed'][code]} / "
                         f"{counts['open'][code]} / {counts['overdue'][code]}")
        if len(touched) > MAX_AREAS:
            lines.append(f"> 其余{len(touched) - MAX_AREAS}个区域略，发送“统计”查看全部。")
    high = sorted((a for a in areas.values() if a.risk_status == "高"), key=lambda a: a.code)
    if high:
        lines.append("**动态风险“高”的区域**")
        lines += [f"> {a.name}：{a.risk_reason}" for a in high[:MAX_AREAS]]
    lines += more
    await enqueue(f"digest:{day:%Y-%m-%d}", Markdown("\n".join(lines)), now=now,
                  platform=platform, to_users=to)
