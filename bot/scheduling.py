"""The scheduler's settings, read and checked once at start-up: the ladder, working time, the
digest hour, the calendar and risk-status files. A bad value stops start-up in one line naming
the setting."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.settings import EmergencySettings, ScheduleSettings, SettingError, read_toml
from models.calendar import WorkCalendar
from models.catalog import Grade
from models.emergency import PlanKind
from models.escalation import Ladder
from models.plan_calendar import DrillRule, DrillRules
from scheduler.policy import STATUSES, Policy, RiskRule

SETTING = "SAFETYBOT_SCHEDULE_"


def load_policy(s: ScheduleSettings, tz: ZoneInfo, calendar: WorkCalendar | None = None
                ) -> Policy:
    """The scheduler's policy; `calendar`, when the handlers' rules have read it already."""
    spread = _at_least("spread_minutes", s.spread_minutes, 0)
    ladder = Ladder(
        remind_before=tuple(timedelta(hours=h) for h in _hours("remind_before_hours",
                                                                s.remind_before_hours)),
        escalate_after=tuple(timedelta(hours=h) for h in _hours("escalate_after_hours",
                                                                 s.escalate_after_hours)),
        spread=timedelta(minutes=spread),
    )
    if not ladder.escalate_after:
        raise SettingError(f"{SETTING}ESCALATE_AFTER_HOURS: needs at least one level")
    return Policy(
        tz=tz, ladder=ladder, calendar=calendar or load_calendar(s, tz),
        digest_time=_clock("digest_time", s.digest_time),
        risk_rules=_risk_rules(Path(s.risk_rules_file)),
        audit_grace=timedelta(minutes=_at_least("audit_grace_minutes",
                                                s.audit_grace_minutes, 1)),
        tick=timedelta(seconds=_at_least("tick_seconds", s.tick_seconds, 1)),
    )


def _at_least(name: str, value: int, low: int) -> int:
    if value < low:
        raise SettingError(f"{SETTING}{name.upper()}: must be at least {low}")
    return value


def _hours(name: str, text: str) -> list[float]:
    try:
        hours = sorted((float(part) for part in text.split(",") if part.strip()),
                       reverse=name.startswith("remind"))
    except ValueError:
        raise SettingError(f"{SETTING}{name.upper()}: expected hours separated by commas, "
                           f"got {text!r}") from None
    if any(h < 0 for h in hours) or len(set(hours)) != len(hours):
        raise SettingError(f"{SETTING}{name.upper()}: hours must be distinct and not negative")
    return hours


def _clock(name: str, text: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise SettingError(f"{SETTING}{name.upper()}: expected HH:MM, got {text!r}") from None


def _read(name: str, path: Path) -> dict[str, Any]:
    return read_toml(path, SETTING + name.upper())


def load_calendar(s: ScheduleSettings, tz: ZoneInfo) -> WorkCalendar:
    """Working time: the calendar file, quiet hours and the working day's end."""
    start, _, end = s.quiet_hours.partition("-")
    quiet = (_clock("quiet_hours", start), _clock("quiet_hours", end))
    path = Path(s.calendar_file)
    raw = _read("calendar_file", path)

    def days(key: str) -> frozenset[date]:
        try:
            return frozenset(date.fromisoformat(d) for d in raw.get(key, []))
        except (TypeError, ValueError):
            raise SettingError(f"{SETTING}CALENDAR_FILE: {path}: {key} must list dates as "
                               "YYYY-MM-DD") from None

    weekend = raw.get("weekend", [6, 7])
    if not isinstance(weekend, list) or not all(isinstance(d, int) and 1 <= d <= 7
                                                for d in weekend):
        raise SettingError(f"{SETTING}CALENDAR_FILE: {path}: weekend must list ISO weekdays "
                           "1–7")
    return WorkCalendar(tz, quiet[0], quiet[1], frozenset(weekend), days("holidays"),
                        days("workdays"), _clock("workday_end", s.workday_end))


def _risk_rules(path: Path) -> tuple[RiskRule, ...]:
    raw = _read("risk_rules_file", path).get("rules", [])
    rules = []
    for n, entry in enumerate(raw, 1):
        where = f"{SETTING}RISK_RULES_FILE: {path}: rules[{n}]"
        try:
            rule = RiskRule(
                status=entry["status"], reason=entry.get("reason", ""),
                grade=Grade(entry["grade"]) if "grade" in entry else None,
                open=bool(entry.get("open", False)), within_days=entry.get("within_days"),
                at_least=entry.get("at_least"), at_most=entry.get("at_most"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SettingError(f"{where}: {exc}") from None
        if rule.status not in STATUSES:
            raise SettingError(f"{where}: status must be one of {'/'.join(STATUSES)}")
        unknown = set(entry) - {"status", "reason", "grade", "open", "within_days", "at_least",
                                "at_most"}
        if unknown:
            raise SettingError(f"{where}: unknown key {sorted(unknown)[0]}")
        rules.append(rule)
    if not rules or rules[-1].at_least is not None or rules[-1].at_most is not None:
        raise SettingError(f"{SETTING}RISK_RULES_FILE: {path}: the last rule must have no "
                           "count, so every area gets a status")
    return tuple(rules)


def load_drill_rules(s: EmergencySettings) -> DrillRules:
    """`config/drills.toml`: how often each kind of plan is drilled and evaluated."""
    path, high_risk = Path(s.drill_rules_file), s.high_risk_industry
    where = f"SAFETYBOT_EMERGENCY_DRILL_RULES_FILE: {path}"
    raw = read_toml(path, "SAFETYBOT_EMERGENCY_DRILL_RULES_FILE")
    unknown = set(raw) - {"rules", "high_risk_months", "review_years", "remind_days",
                          "review_remind_days"}
    if unknown:
        raise SettingError(f"{where}: unknown key {sorted(unknown)[0]}")
    rules = []
    covered: set[PlanKind] = set()
    for n, entry in enumerate(raw.get("rules", []), 1):
        at = f"{where}: rules[{n}]"
        try:
            kinds = frozenset(PlanKind(k) for k in entry["kinds"])
            months, count = int(entry["months"]), entry.get("count", "plan")
        except (KeyError, ValueError, TypeError) as exc:
            raise SettingError(f"{at}: {exc} (kinds: {', '.join(PlanKind)})") from None
        if months < 1 or count not in ("plan", "group") or kinds & covered or not kinds:
            raise SettingError(f"{at}: months must be at least 1, count plan or group, and "
                               "each plan type in one rule only")
        covered |= kinds
        rules.append(DrillRule(kinds, months, count == "plan"))
    try:
        numbers = (int(raw.get("high_risk_months", 6)), int(raw.get("review_years", 3)),
                   tuple(int(d) for d in raw.get("remind_days", [30, 7])),
                   int(raw.get("review_remind_days", 60)))
    except (TypeError, ValueError) as exc:
        raise SettingError(f"{where}: {exc}") from None
    high_risk_months, review_years, remind_days, review_remind_days = numbers
    if min(high_risk_months, review_years, review_remind_days, *remind_days, 1) < 1:
        raise SettingError(f"{where}: months, years and days must be at least 1")
    return DrillRules(tuple(rules), high_risk_months, high_risk, review_years,
                      tuple(sorted(remind_days, reverse=True)), review_remind_days)
