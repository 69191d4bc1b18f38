"""Area dynamic risk status (高 / 中 / 低), recomputed daily from ticket history by the rules in
configuration. It never touches the inherent colour from the risk assessment; a change is
announced to the area's group chats."""

from __future__ import annotations

from datetime import datetime, timedelta

from models.area_counts import risk_counts
from models.org import every_area, set_risk_status
from models.outbox import Queued, enqueue_many
from models.outgoing import Text
from scheduler.policy import RiskRule


async def _counts(rule: RiskRule, now: datetime) -> dict[str, int]:
    """Tickets per area that the rule counts."""
    since = None if rule.within_days is None else now - timedelta(days=rule.within_days)
    return await risk_counts(rule.grade, rule.open, since)


async def update_risk_status(rules: tuple[RiskRule, ...], now: datetime, platform: str) -> int:
    """Give every area the status of the first rule that holds; returns how many changed."""
    counts = [await _counts(rule, now) if rule.at_least is not None or rule.at_most is not None
              else {} for rule in rules]
    announcements: list[Queued] = []
    changed = 0
    for area in await every_area():
        rule = next(r for r, c in zip(rules, counts, strict=True)
                    if r.holds(c.get(area.code, 0)))
        if (area.risk_status, area.risk_reason) == (rule.status, rule.reason):
            continue
        changed += 1
        before = area.risk_status
        await set_risk_status(area, rule.status, rule.reason, now)
        if before and before != rule.status:
            text = Text(f"【区域风险动态】{area.name}的动态风险状态由“{before}”调整为"
                        f"“{rule.status}”：{rule.reason}。（固有风险等级：{area.risk_color.value}）")
            announcements += [Queued(f"risk:{area.code}:{now.date()}:{group}", text,
                                     to_chat=group) for group in area.groups]
    await enqueue_many(announcements, now=now, platform=platform)
    return changed
