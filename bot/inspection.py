"""The inspection module's files: config/inspection.toml (the rules) and the folder
config/inspection/ (checklists, checkpoints, routes and patrol plans, in any of its *.toml
files), loaded with `safetybot load-inspections`.

Every entry is checked alone, then against the others and the roster, before anything is
written, and every bad entry is named with its reason: a site's list of checkpoints is typed
from a walk around the plant. Then all is written in one transaction, each row only when it
changed (audited); an entry gone from the files is deactivated, its rounds and visits kept."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.labels import Label
from bot.loading import Entry, Journal, read_toml_file, show
from models import transaction
from models.inspection.codes import CODE as CHECKPOINT_CODE
from models.inspection.codes import sign, signing_key
from models.inspection.rules import InspectionRules
from models.inspection.sites import (
    Checklist,
    Checkpoint,
    Frequency,
    Item,
    ItemKind,
    PatrolPlan,
    Route,
    labelled_checkpoints,
)
from models.org import Area, Role, User, every_area

ACTOR = "inspections"
CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")       # a checklist's, route's or plan's
ITEM_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
WINDOW = re.compile(r"(\d{1,2}):(\d{2})\s*[-–~]\s*(\d{1,2}):(\d{2})")
SECTIONS = ("checklist", "checkpoint", "route", "plan")
ITEM_TEXT = 60          # a card's line
E = TypeVar("E")


class InspectionConfigError(Exception):
    """Files that cannot be loaded: one line per bad entry."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------
# The rules


def load_inspection_rules(path: Path) -> InspectionRules:
    data = read_toml_file(path, InspectionConfigError)
    t = Entry(path.name, data, ("by_status", "by_color", "remind_before_minutes", "late_minutes",
                                "suspicious_seconds", "compact_max"),
              error=InspectionConfigError, shape="a table")
    defaults = InspectionRules()
    return InspectionRules(
        by_status=_frequencies(t, "by_status", ("高", "中", "低", ""), defaults.by_status),
        by_color=_frequencies(t, "by_color", ("红", "橙", "黄", "蓝"), defaults.by_color),
        remind_before=timedelta(minutes=_whole(t, "remind_before_minutes", 30, 0, 24 * 60)),
        late=timedelta(minutes=_whole(t, "late_minutes", 120, 0, 24 * 60)),
        suspicious_seconds=_whole(t, "suspicious_seconds", 20, 0, 3600),
        compact_max=_whole(t, "compact_max", 6, 0, 10))


def _frequencies(t: Entry, key: str, allowed: tuple[str, ...], default: dict[str, Frequency]
                 ) -> dict[str, Frequency]:
    raw = t.raw.get(key, {})
    if not isinstance(raw, dict):
        t.fail(f"{key} must be a table")
    found = dict(default)
    for name, value in raw.items():
        if name not in allowed:
            t.fail(f"{key}: {show(name)} must be one of {show(list(allowed))}")
        if value not in ("daily", "weekly", "monthly"):
            t.fail(f"{key}.{name} must be daily, weekly or monthly")
        found[name] = Frequency(value)
    return found


def _whole(t: Entry, key: str, default: int, low: int, high: int) -> int:
    value = t.raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        t.fail(f"{key} must be a whole number from {low} to {high}")
    return value


# ---------------------------------------------------------------------------------------------
# The folder


@dataclass(frozen=True)
class ChecklistEntry:
    code: str
    title: str
    category: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class CheckpointEntry:
    code: str
    name: str
    area: str            # as written: a code or a name
    checklist: str
    point: tuple[float, float] | None


@dataclass(frozen=True)
class RouteEntry:
    code: str
    name: str
    checkpoints: tuple[str, ...]


@dataclass(frozen=True)
class PlanEntry:
    code: str
    route: str
    people: tuple[str, ...]
    roles: tuple[str, ...]
    posts: tuple[str, ...]
    frequency: Frequency
    starts: int
    ends: int


@dataclass(frozen=True)
class Sites:
    checklists: tuple[ChecklistEntry, ...]
    checkpoints: tuple[CheckpointEntry, ...]
    routes: tuple[RouteEntry, ...]
    plans: tuple[PlanEntry, ...]


@dataclass(frozen=True)
class SitesReport:
    checkpoints: int
    routes: int
    plans: int
    created: int
    updated: int
    unchanged: int
    deactivated: int


def parse_sites(directory: Path, categories: Collection[str]) -> Sites:
    """Every file of the folder, each entry checked alone and against the others (not yet
    against the roster); all the bad entries named at once."""
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if not files:
        raise InspectionConfigError(f"{directory}: no inspection files (*.toml)")
    problems: list[str] = []
    found: dict[str, list[Any]] = {s: [] for s in SECTIONS}
    parsers: dict[str, Callable[[Entry], Any]] = {
        "checklist": lambda t: _checklist(t, categories), "checkpoint": _checkpoint,
        "route": _route, "plan": _plan}
    for path in files:
        try:
            data = read_toml_file(path, InspectionConfigError)
        except InspectionConfigError as exc:
            problems.append(str(exc))
            continue
        for key in sorted(set(data) - set(SECTIONS)):
            problems.append(f"{path.name}: unknown table {show(key)}; allowed: "
                            f"{', '.join(f'[[{s}]]' for s in SECTIONS)}")
        for section in SECTIONS:
            for i, raw in enumerate(data.get(section, [])):
                code = raw.get("code", "") if isinstance(raw, dict) else ""
                where = f"{path.name}: {section}[{i}]" + (f" ({code})" if code else "")
                try:
                    found[section].append(parsers[section](Entry(
                        where, raw, _KEYS[section], error=InspectionConfigError,
                        shape=f"a {section}")))
                except InspectionConfigError as exc:
                    problems.append(str(exc))
    sites = Sites(*(tuple(found[s]) for s in SECTIONS))
    problems += _cross_check(sites)
    if problems:
        raise InspectionConfigError(problems)
    return sites


_KEYS = {
    "checklist": ("code", "title", "category", "item"),
    "checkpoint": ("code", "name", "area", "checklist", "point"),
    "route": ("code", "name", "checkpoints"),
    "plan": ("code", "route", "people", "roles", "posts", "frequency", "window"),
}
_ITEM_KEYS = ("id", "text", "kind", "category", "unit", "min", "max", "options", "abnormal")


def _code(t: Entry) -> str:
    code = t.required("code", 32)
    if not CODE.fullmatch(code):
        t.fail(f"code {show(code)} must be capital letters, digits and -")
    return code


def _checklist(t: Entry, categories: Collection[str]) -> ChecklistEntry:
    category = t.required("category", 16)
    if category not in categories:
        t.fail(f"category {show(category)} is not in the category library")
    raw_items = t.raw.get("item", [])
    if not isinstance(raw_items, list) or not raw_items:
        t.fail("needs at least one [[checklist.item]]")
    items = [_item(Entry(f"{t.where}: item[{i}]", raw, _ITEM_KEYS,
                         error=InspectionConfigError, shape="an item"), categories)
             for i, raw in enumerate(raw_items)]
    ids = [item.id for item in items]
    repeated = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
    if repeated:
        t.fail(f"item id {show(repeated)} is used twice")
    return ChecklistEntry(_code(t), t.required("title", 64), category, tuple(items))


def _item(t: Entry, categories: Collection[str]) -> Item:
    item_id = t.required("id", 32)
    if not ITEM_ID.fullmatch(item_id):
        t.fail(f"id {show(item_id)} must be small letters, digits, - and _")
    kind = t.optional("kind") or "check"
    t.choices("kind", kind, tuple(k.value for k in ItemKind))
    category = t.optional("category", 16) or ""
    if category and category not in categories:
        t.fail(f"category {show(category)} is not in the category library")
    unit = t.optional("unit", 12) or ""
    low, high = _number(t, "min"), _number(t, "max")
    options, abnormal = t.strings("options"), t.strings("abnormal")
    if kind == ItemKind.READING:
        if not unit or (low is None and high is None):
            t.fail("a reading needs its unit and min or max")
        if low is not None and high is not None and low > high:
            t.fail("min is above max")
    elif unit or low is not None or high is not None:
        t.fail("unit, min and max are for a reading")
    if kind == ItemKind.CHOICE:
        if len(options) < 2:
            t.fail("a choice needs at least two options")
        if not set(abnormal) <= set(options):
            t.fail("abnormal must name some of the options")
    elif options or abnormal:
        t.fail("options and abnormal are for a choice")
    return Item(item_id, t.required("text", ITEM_TEXT), ItemKind(kind), category, unit, low,
                high, options, abnormal)


def _number(t: Entry, key: str) -> float | None:
    value = t.raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        t.fail(f"{key} must be a number")
    return float(value)


def _checkpoint(t: Entry) -> CheckpointEntry:
    point = t.raw.get("point")
    if point is not None and (not isinstance(point, list) or len(point) != 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in point)):
        t.fail("point must be [x, y] on the site plan, in pixels")
    code = _code(t)
    if not CHECKPOINT_CODE.fullmatch(code):
        t.fail(f"code {show(code)} must be like A3-01: capitals and digits around a -, "
               "as it is printed and typed")
    return CheckpointEntry(code, t.required("name", 64), t.required("area", 100),
                           t.required("checklist", 32),
                           (float(point[0]), float(point[1])) if point else None)


def _route(t: Entry) -> RouteEntry:
    checkpoints = t.strings("checkpoints")
    if not checkpoints:
        t.fail("checkpoints must list at least one checkpoint")
    return RouteEntry(_code(t), t.required("name", 64), checkpoints)


def _plan(t: Entry) -> PlanEntry:
    people, roles, posts = t.strings("people"), t.strings("roles"), t.strings("posts")
    if not (people or roles or posts):
        t.fail("needs people, roles or posts: who walks the route")
    for role in roles:
        t.choices("roles", role, tuple(r.value for r in Role))
    frequency = t.required("frequency")
    t.choices("frequency", frequency, tuple(f.value for f in Frequency))
    window = t.required("window")
    found = WINDOW.fullmatch(window.strip())
    if found is None:
        t.fail(f"window {show(window)} must be like 08:00-10:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    starts, ends = h1 * 60 + m1, h2 * 60 + m2
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60 and starts < ends):
        t.fail(f"window {show(window)} must start before it ends, on the same day")
    return PlanEntry(_code(t), t.required("route", 32), people, roles, posts,
                     Frequency(frequency), starts, ends)


def _cross_check(sites: Sites) -> list[str]:
    problems = []
    every: tuple[Sequence[Any], ...] = (sites.checklists, sites.checkpoints, sites.routes,
                                        sites.plans)
    for section, entries in zip(SECTIONS, every, strict=True):
        codes = [e.code for e in entries]
        problems += [f"{section} {show(c)} is defined twice"
                     for n, c in enumerate(codes) if c in codes[:n]]
    checklists = {c.code for c in sites.checklists}
    checkpoints = {c.code for c in sites.checkpoints}
    routes = {r.code for r in sites.routes}
    problems += [f"checkpoint {c.code}: checklist {show(c.checklist)} is not defined"
                 for c in sites.checkpoints if c.checklist not in checklists]
    problems += [f"route {r.code}: checkpoint {show(c)} is not defined"
                 for r in sites.routes for c in r.checkpoints if c not in checkpoints]
    problems += [f"plan {p.code}: route {show(p.route)} is not defined"
                 for p in sites.plans if p.route not in routes]
    return problems


async def load_inspections(directory: Path, categories: Collection[str], now: datetime
                           ) -> SitesReport:
    """Make the sites in the database match the folder; loading it again writes nothing."""
    sites = parse_sites(directory, categories)
    journal = Journal(now, ACTOR, "inspection")
    async with transaction():
        areas = await _check_roster(sites)
        await signing_key()          # made with the first load, so every label is signed
        await _store(journal, Checklist, "checklist", {c.code: {
            "title": c.title, "category": c.category,
            "items": [i.to_json() for i in c.items]} for c in sites.checklists}, now)
        await _store(journal, Checkpoint, "checkpoint", {c.code: {
            "name": c.name, "area_id": areas[c.area], "checklist_id": c.checklist,
            "point": list(c.point) if c.point else None, "active": True}
            for c in sites.checkpoints}, now)
        await _store(journal, Route, "route", {r.code: {
            "name": r.name, "checkpoints": list(r.checkpoints), "active": True}
            for r in sites.routes}, now)
        await _store(journal, PatrolPlan, "plan", {p.code: {
            "route_id": p.route, "people": list(p.people), "roles": list(p.roles),
            "posts": list(p.posts), "frequency": p.frequency, "starts": p.starts,
            "ends": p.ends, "active": True} for p in sites.plans}, now)
    return SitesReport(checkpoints=len(sites.checkpoints), routes=len(sites.routes),
                       plans=len(sites.plans), created=journal.created,
                       updated=journal.updated, unchanged=journal.unchanged,
                       deactivated=journal.deactivated)


async def _check_roster(sites: Sites) -> dict[str, str]:
    """Areas (by code or name) and people as the roster has them; the areas' codes by how the
    files name them."""
    areas: dict[str, str] = {}
    for area in await Area.all().only("code", "name"):
        areas[area.code] = areas[area.name] = area.code
    named = {p for plan in sites.plans for p in plan.people}
    active = set(await User.filter(id__in=list(named), active=True).values_list("id", flat=True))
    problems = [f"checkpoint {c.code}: area {show(c.area)} is not in the roster"
                for c in sites.checkpoints if c.area not in areas]
    problems += [f"plan {p.code}: {show(person)} is not an active person of the roster"
                 for p in sites.plans for person in p.people if person not in active]
    if problems:
        raise InspectionConfigError(problems)
    return areas


async def _store(journal: Journal, model: Any, kind: str, wanted: dict[str, dict[str, Any]],
                 now: datetime) -> None:
    rows = {row.pk: row for row in await model.all()}
    for code, values in wanted.items():
        row = rows.get(code)
        if row is None:
            await journal.create(kind, model, code, {**values, "loaded_at": now}, values)
        else:
            await journal.update(kind, row, code, values, stamp={"loaded_at": now})
    if kind == "checklist":
        return          # a checklist no checkpoint uses is harmless; its checkpoints are gone
    for code, row in rows.items():
        if code not in wanted and row.active:
            await journal.deactivate(kind, row, code, "left out of the files")


async def checkpoint_labels(area: str | None) -> list[Label] | None:
    """The labels of the active checkpoints (of one area, by code or name), signed with the
    plant's key; None when `area` names no area."""
    areas = {a.code: a for a in await every_area()}
    if area is not None:
        found = next((a for a in areas.values() if area in (a.code, a.name)), None)
        if found is None:
            return None
        area = found.code
    key = await signing_key()
    return [Label(code=c.code, name=c.name, area=areas[c.area_id].name if c.area_id in areas
                  else c.area_id, payload=sign(key, c.code))
            for c in await labelled_checkpoints(area)]
