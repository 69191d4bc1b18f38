"""The emergency resource ledger (应急物资台账) from `config/resources.toml` into the database:
`safetybot load-resources`.

Every entry is checked, alone and against the roster, before anything is written, and every bad
entry is named (by its code) with its reason, not only the first: a ledger has hundreds of lines
typed from paper. Then all is written in one transaction. Loading is idempotent: a resource is
rewritten, and audited, only when its entry changed. A resource left out of the file is
deactivated, never deleted: its inspections stay on record.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot.loading import Entry, Journal, limit, read_file, show, toml_type
from models import transaction
from models.emergency import Plan
from models.org import Area, User
from models.resources import Resource

ACTOR = "resources"
KIND_KEYS = ("name", "interval_days", "reading")
RESOURCE_KEYS = ("code", "kind", "name", "quantity", "unit", "area", "place", "location",
                 "keeper", "phone", "interval_days", "inspected_on", "expires_on", "reading")
READING_KEYS = ("name", "unit", "min", "max")
CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")
PHONE = re.compile(r"\+?[0-9][0-9-]{1,19}")       # 119, 13800000000, 025-58881234-801
T = TypeVar("T")


class LedgerError(Exception):
    """A ledger that cannot be loaded: one line per bad entry."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Reading:
    name: str
    unit: str
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Kind:
    name: str
    interval_days: int | None = None
    reading: Reading | None = None


@dataclass(frozen=True)
class ResourceEntry:
    code: str
    kind: str
    name: str
    quantity: float
    unit: str
    keeper: str
    area: str | None = None
    place: str = ""
    location: tuple[float, float] | None = None
    phone: str = ""
    interval_days: int | None = None
    inspected_on: date | None = None
    expires_on: date | None = None
    reading: Reading | None = None

    def stored(self) -> dict[str, Any]:
        """The row's fields from the file; the last inspection is the loader's to merge."""
        reading = self.reading or Reading("", "", None, None)
        return {
            "kind": self.kind, "name": self.name, "quantity": self.quantity, "unit": self.unit,
            "area_id": self.area, "place": self.place,
            "latitude": self.location[0] if self.location else None,
            "longitude": self.location[1] if self.location else None,
            "keeper": self.keeper, "phone": self.phone, "interval_days": self.interval_days,
            "expires_on": self.expires_on, "reading_name": reading.name,
            "reading_unit": reading.unit, "reading_min": reading.low,
            "reading_max": reading.high, "active": True,
        }


@dataclass(frozen=True)
class LedgerReport:
    """What a load did; `gaps`: kinds the active plans name that the ledger has none of."""

    resources: int
    created: int
    updated: int
    unchanged: int
    deactivated: int
    gaps: tuple[str, ...] = ()

    def summary(self) -> str:
        return (f"{self.resources} resources: {self.created} created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.deactivated} deactivated")


# ---------------------------------------------------------------------------------------------
# Parsing: pure, no database (also `safetybot check-config`)


def parse_ledger(text: str, today: date) -> list[ResourceEntry]:
    """Every entry checked; all the bad ones named at once. `today`: an inspection cannot be
    in the future."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LedgerError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"kinds", "resources"})
    if unknown:
        raise LedgerError(f'unknown section "{unknown[0]}"; expected kinds, resources')
    problems: list[str] = []
    kinds: dict[str, Kind] = {}
    for kind in _each(data, "kinds", KIND_KEYS, "name", problems, _kind):
        if kinds.setdefault(kind.name, kind) is not kind:
            problems.append(f"kinds: {show(kind.name)} is declared twice")
    entries = _each(data, "resources", RESOURCE_KEYS, "code", problems,
                    partial(_resource, kinds=kinds, today=today))
    first: dict[str, int] = {}
    for i, item in enumerate(data.get("resources", [])):
        code = item.get("code") if isinstance(item, dict) else None
        if isinstance(code, str) and first.setdefault(code, i) != i:
            problems.append(f"resources[{i}] ({code}): code {show(code)} is already used by "
                            f"resources[{first[code]}]")
    if not entries and not problems:
        # An empty or truncated file would otherwise deactivate the whole ledger.
        problems.append("the ledger lists no resources ([[resources]])")
    if problems:
        raise LedgerError(problems)
    return entries


def _each(data: Mapping[str, Any], section: str, keys: Sequence[str], label: str,
          problems: list[str], parse: Callable[[Entry], T]) -> list[T]:
    """Each table of `section` parsed; what fails is added to `problems`, named by its index and
    its `label` (a resource's code)."""
    raw = data.get(section, [])
    if not isinstance(raw, list):
        problems.append(f'"{section}" must be an array of tables ([[{section}]])')
        return []
    parsed = []
    for i, item in enumerate(raw):
        name = item.get(label) if isinstance(item, dict) else None
        where = f"{section}[{i}]" + (f" ({name})" if isinstance(name, str) and name else "")
        try:
            parsed.append(parse(Entry(where, item, keys, error=LedgerError,
                                      shape=f"[[{section}]]")))
        except LedgerError as exc:
            problems.extend(exc.problems)
    return parsed


def _kind(t: Entry) -> Kind:
    return Kind(t.required("name", limit(Resource, "kind")), _days(t), _reading(t))


def _resource(t: Entry, *, kinds: Mapping[str, Kind], today: date) -> ResourceEntry:
    code = t.required("code")
    if not CODE.fullmatch(code):
        t.fail(f"code {show(code)} must be capital letters, digits and - (R-A3-01), at most 32")
    kind = kinds.get(t.required("kind", limit(Resource, "kind")), Kind(t.raw["kind"]))
    phone = t.optional("phone") or ""
    if phone and not PHONE.fullmatch(phone):
        t.fail(f"phone {show(phone)} is not a phone number (digits and -)")
    inspected_on = _date(t, "inspected_on")
    if inspected_on is not None and inspected_on > today:
        t.fail(f"inspected_on {inspected_on} is in the future")
    interval = _days(t)
    return ResourceEntry(
        code=code, kind=kind.name, name=t.required("name", limit(Resource, "name")),
        quantity=_quantity(t), unit=t.required("unit", limit(Resource, "unit")),
        keeper=t.required("keeper"), area=t.optional("area"),
        place=t.optional("place", limit(Resource, "place")) or "", location=t.point("location"),
        phone=phone, interval_days=interval if interval is not None else kind.interval_days,
        inspected_on=inspected_on, expires_on=_date(t, "expires_on"),
        reading=_reading(t) or kind.reading)


def _quantity(t: Entry) -> float:
    value = t.raw.get("quantity")
    if value is None:
        t.fail('missing required key "quantity"')
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        t.fail(f"quantity must be a number above 0 (quantity = 4), not {show(value)}")
    return float(value)


def _days(t: Entry) -> int | None:
    value = t.raw.get("interval_days")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        t.fail(f"interval_days must be a whole number of days, at least 1, not {show(value)}")
    return value


def _date(t: Entry, key: str) -> date | None:
    value = t.raw.get(key)
    if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
        t.fail(f"{key} must be a date ({key} = 2027-03-31), not {show(value)}")
    return value


def _reading(t: Entry) -> Reading | None:
    """`reading = { name = "气瓶压力", unit = "MPa", min = 25 }`: at least one bound."""
    raw = t.raw.get("reading")
    if raw is None:
        return None
    r = Entry(f"{t.where}: reading", raw, READING_KEYS, error=LedgerError,
              shape='{ name = "气瓶压力", unit = "MPa", min = 25 }')
    bounds = []
    for key in ("min", "max"):
        value = r.raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            r.fail(f"{key} must be a number, not {toml_type(value)}")
        bounds.append(None if value is None else float(value))
    low, high = bounds
    if low is None and high is None:
        r.fail("needs min or max")
    if low is not None and high is not None and low > high:
        r.fail(f"min {low:g} is above max {high:g}")
    return Reading(r.required("name", limit(Resource, "reading_name")),
                   r.required("unit", limit(Resource, "reading_unit")), low, high)


# ---------------------------------------------------------------------------------------------
# Loading: checked against the roster, then one transaction


async def load_resources(path: Path, now: datetime, tz: ZoneInfo) -> LedgerReport:
    """Make the ledger in the database match the file; loading it again writes nothing."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(tz).date()
    entries = parse_ledger(await read_file(path, "the ledger", LedgerError), today)
    journal = Journal(now, ACTOR, "emergency")
    async with transaction():
        _check_roster(entries, {u.id: u for u in await User.filter(id__in={
            e.keeper for e in entries})}, {a.code for a in await Area.all().only("code")})
        rows = {r.code: r for r in await Resource.all()}
        for entry in entries:
            wanted = entry.stored()
            row = rows.get(entry.code)
            if row is None:
                await journal.create("resource", Resource, entry.code, {
                    **wanted, "inspected_on": entry.inspected_on, "added_on": today,
                    "loaded_at": now}, wanted)
                continue
            # A later inspection in chat stands against an older date in the file.
            last = max(d for d in (row.inspected_on, entry.inspected_on, date.min) if d)
            await journal.update("resource", row, entry.code, {
                **wanted, "inspected_on": None if last == date.min else last},
                stamp={"loaded_at": now})
        listed = {e.code for e in entries}
        for row in rows.values():
            if row.code not in listed and row.active:
                await journal.deactivate("resource", row, row.code, "left out of the ledger")
    return LedgerReport(resources=len(entries), created=journal.created,
                        updated=journal.updated, unchanged=journal.unchanged,
                        deactivated=journal.deactivated, gaps=tuple(await kind_gaps()))


def _check_roster(entries: Sequence[ResourceEntry], keepers: Mapping[str, User],
                  areas: set[str]) -> None:
    problems = []
    for i, e in enumerate(entries):
        where = f"resources[{i}] ({e.code})"
        keeper = keepers.get(e.keeper)
        if keeper is None:
            problems.append(f"{where}: keeper {show(e.keeper)} is not in the roster")
        elif not keeper.active:
            problems.append(f"{where}: keeper {show(e.keeper)} has left (inactive in the "
                            "roster)")
        if e.area is not None and e.area not in areas:
            problems.append(f"{where}: area {show(e.area)} is not in the roster")
    if problems:
        raise LedgerError(problems)


async def kind_gaps() -> list[str]:
    """Kinds that active plans name and no active resource has: their broadcast would say
    无可用, so a load says it first."""
    have = set(await Resource.filter(active=True).values_list("kind", flat=True))
    return [f"plan {plan.code} names {show(kind)}, which the ledger has none of"
            for plan in await Plan.filter(active=True).order_by("code")
            for kind in plan.resources if kind not in have]
