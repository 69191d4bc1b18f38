"""When each emergency plan must next be drilled and evaluated (《生产安全事故应急预案管理办法》
第三十三条, 第三十五条), from the drills held: what the reminders, the digest, the monthly report
and the regulator's export read."""

from __future__ import annotations

import calendar as months_calendar
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from models.emergency import Activation, ActivationStatus, Plan, PlanKind, Responder
from models.org import area_names, user_names


@dataclass(frozen=True)
class DrillRule:
    kinds: frozenset[PlanKind]
    months: int
    per_plan: bool          # each plan its own drill, or one of the kinds for all


@dataclass(frozen=True)
class DrillRules:
    rules: tuple[DrillRule, ...]
    high_risk_months: int = 6
    high_risk: bool = False
    review_years: int = 3
    remind_days: tuple[int, ...] = (30, 7)
    review_remind_days: int = 60

    def rule_for(self, kind: PlanKind) -> DrillRule | None:
        return next((r for r in self.rules if kind in r.kinds), None)

    def months(self, rule: DrillRule) -> int:
        return min(rule.months, self.high_risk_months) if self.high_risk else rule.months


@dataclass(frozen=True)
class PlanDates:
    plan: Plan
    months: int | None          # the most months between its drills; None: no rule
    last_drill: date | None     # the last drill that counts for it
    drill_due: date | None      # None: never drilled and nothing to count from
    review_due: date | None     # None: no `reviewed_on` in its file
    drills: int                 # drills of this plan in the year asked for


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, months_calendar.monthrange(year, month)[1]))


async def drills_held(tz: ZoneInfo, year: int | None = None) -> list[Activation]:
    """Closed drills (not those joined to another), the oldest first; those activated in the
    local `year` only, when given."""
    rows = await Activation.filter(drill=True, status=ActivationStatus.CLOSED,
                                   activated_at__isnull=False, joined_to__isnull=True
                                   ).order_by("activated_at")
    return [a for a in rows if year is None
            or (a.activated_at is not None and a.activated_at.astimezone(tz).year == year)]


async def plan_dates(rules: DrillRules, tz: ZoneInfo, year: int) -> list[PlanDates]:
    """Every active plan's dates; `drills` counts its drills activated in `year` (local)."""
    plans = await Plan.filter(active=True).order_by("code")
    last: dict[str, date] = {}
    count: dict[str, int] = defaultdict(int)
    for drill in await drills_held(tz):
        if drill.activated_at is None or drill.plan_id is None:
            continue
        day = drill.activated_at.astimezone(tz).date()
        last[drill.plan_id] = day
        count[drill.plan_id] += day.year == year
    kinds = {p.code: p.kind for p in plans}
    dates = []
    for plan in plans:
        rule = rules.rule_for(plan.kind)
        counted = [last[code] for code, kind in kinds.items() if code in last and (
            code == plan.code or (rule is not None and not rule.per_plan and kind in rule.kinds))]
        latest = max(counted, default=None)
        start = latest or plan.reviewed_on
        months = rules.months(rule) if rule else None
        dates.append(PlanDates(
            plan, months, latest,
            add_months(start, months) if months and start else None,
            add_months(plan.reviewed_on, 12 * rules.review_years) if plan.reviewed_on else None,
            count[plan.code]))
    return dates


def drill_overdue(d: PlanDates, today: date) -> bool:
    """Past its drill date, or under a rule and never drilled with nothing to count from."""
    return d.months is not None and (d.drill_due is None or d.drill_due < today)


def review_overdue(d: PlanDates, today: date) -> bool:
    return d.review_due is not None and d.review_due < today


@dataclass(frozen=True)
class DrillRow:
    """One drill as the regulator's filing lists it (local times)."""

    started: datetime
    closed: datetime | None
    plan: str
    kind: str
    level: str
    area: str
    commander: str
    called: int
    answered: int
    median_seconds: float | None       # from the call to the answer
    silent: tuple[str, ...]            # the names of those who never answered


async def drill_rows(tz: ZoneInfo, year: int) -> list[DrillRow]:
    drills = await drills_held(tz, year)
    plans = {p.code: p for p in await Plan.filter(code__in={d.plan_id for d in drills})}
    responders = await Responder.filter(activation_id__in=[d.id for d in drills])
    people = await user_names({r.user_id for r in responders} | {d.commander for d in drills})
    areas = await area_names({d.area_id for d in drills if d.area_id})
    rows = []
    for d in drills:
        assert d.activated_at is not None
        called = [r for r in responders if r.activation_id == d.id]
        answered = [r for r in called if r.answered_at is not None]
        times = [(r.answered_at - r.notified_at).total_seconds() for r in answered
                 if r.answered_at is not None]
        plan = plans.get(d.plan_id or "")
        rows.append(DrillRow(
            d.activated_at.astimezone(tz), d.closed_at.astimezone(tz) if d.closed_at else None,
            plan.name if plan else "", plan.kind.value if plan else "", d.level,
            areas.get(d.area_id or "", ""), people.get(d.commander, d.commander), len(called),
            len(answered), statistics.median(times) if times else None,
            tuple(people.get(r.user_id, r.user_id) for r in called if r.answered_at is None)))
    return rows
