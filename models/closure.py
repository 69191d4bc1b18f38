"""The numbers of the monthly 《隐患闭环分析报告》: how many hazards were filed and closed, how
fast, where, and how that compares with the month before.

A month is a calendar month in the plant's time zone (times are stored in UTC), from the first
day 00:00 local up to, not including, the next month's first day 00:00 local ("month end").

- Filed in the month: tickets with a number, `created_at` in the month, status not `linked` (a
  repeat report is counted on its original, in `reports`). Cancelled ones are counted apart
  (`cancelled`) and left out of every rate; `filed` is the rest.
- Closure rate: of those filed, the share with status `closed` and `closed_at` before month end.
- Closed in the month: `closed_at` in the month, whenever the ticket was filed. On-time rate: of
  those, the share with `closed_at <= deadline` (the deadline at closing, so an approved
  extension counts).
- Mean and median closure time: over those closed in the month, `closed_at - created_at`, in
  hours.
- Open at month end: filed before month end, not cancelled, and not closed before month end.
  Overdue at month end: of those, the ones whose deadline was before month end. Both are
  reconstructed from the current status and `closed_at`, so for a past month they are an
  approximation: a ticket cancelled since, or whose deadline was extended since, is left out or
  judged by its deadline of today.
- By area and by category: filed, closed (of those filed), closure rate, and overdue at month end
  (all tickets, so the rows add up to the headline numbers).
- Most repeated: the five tickets with the most reports (more than one) among those filed in the
  month or still open at some point of it, cancelled ones left out.
- Change from the previous month: every headline number again for the month before, and the
  difference (percentage points for rates).
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models.catalog import Catalog, DefectType, Grade
from models.hazard import LABELS, Status, Ticket, hazards
from models.org import Area, user_names

REPEATED_SHOWN = 5
NO_AREA = "未填区域"
NO_CATEGORY = "未填类别"
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
class _Filed(Protocol):
    """What names a ticket's area and category: a report row or a Ticket."""

    @property
    def area_id(self) -> str | None: ...

    @property
    def category(self) -> str: ...


_Namer = Callable[[_Filed], str]       # a ticket's area or category name


@dataclass(frozen=True, slots=True)
class _Row:
    """The columns of a ticket the report reads: a million tickets load as plain rows, not as
    models with every JSON column decoded (benchmarks/README.md, tick benchmark --monthly)."""

    id: int
    number: str | None
    status: Status
    area_id: str | None
    category: str
    grade: Grade
    defect_type: DefectType
    description: str
    reporter_id: str
    owner_id: str | None
    reviewer_id: str | None
    created_at: datetime
    deadline: datetime | None
    closed_at: datetime | None
    recurs: list[str] | None


_COLUMNS = tuple(f.name for f in dataclasses.fields(_Row))


async def _rows(query: QuerySet[Ticket]) -> list[_Row]:
    """The query's tickets as rows (the enum columns come back as their enums)."""
    return [_Row(*values) for values in await query.values_list(*_COLUMNS)]


@dataclass(frozen=True)
class Window:
    """A local calendar month as UTC instants: `start` <= t < `end`."""

    month: str
    start: datetime
    end: datetime


def month_window(month: str, tz: ZoneInfo) -> Window:
    """Raises ValueError for anything but YYYY-MM."""
    found = _MONTH.fullmatch(month)
    if not found:
        raise ValueError(f"month must look like 2026-11, got {month!r}")
    year, number = int(found[1]), int(found[2])
    following = (year + number // 12, number % 12 + 1)
    return Window(month, datetime(year, number, 1, tzinfo=tz).astimezone(UTC),
                  datetime(*following, 1, tzinfo=tz).astimezone(UTC))


def previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


@dataclass(frozen=True)
class Headline:
    """One month's headline numbers; a rate or time is None when there is nothing to divide."""

    filed: int
    cancelled: int
    closed_of_filed: int
    closure_rate: float | None      # 0…1
    closed: int
    on_time: int
    on_time_rate: float | None      # 0…1
    mean_hours: float | None
    median_hours: float | None
    open_at_end: int
    overdue_at_end: int


@dataclass(frozen=True)
class Change:
    """This month minus the previous one; rates in percentage points, times in hours."""

    filed: int
    cancelled: int
    closed_of_filed: int
    closure_rate: float | None
    closed: int
    on_time: int
    on_time_rate: float | None
    mean_hours: float | None
    median_hours: float | None
    open_at_end: int
    overdue_at_end: int

    @classmethod
    def between(cls, now: Headline, before: Headline) -> Change:
        values: dict[str, float | None] = {}
        for field in dataclasses.fields(Headline):
            a, b = getattr(now, field.name), getattr(before, field.name)
            scale = 100 if field.name.endswith("_rate") else 1
            values[field.name] = None if a is None or b is None else (a - b) * scale
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Breakdown:
    """One area's or category's row."""

    name: str
    filed: int
    closed: int
    overdue: int

    @property
    def closure_rate(self) -> float | None:
        return self.closed / self.filed if self.filed else None


@dataclass(frozen=True)
class Repeated:
    number: str
    area: str
    category: str
    reports: int
    description: str
    status: str


@dataclass(frozen=True)
class Recurred:
    """A ticket filed in the month as 复发: the hazard came back."""

    number: str
    area: str
    category: str
    owner: str
    earlier: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class Recurrences:
    """The month's 复发 tickets, counted by area, category and owner, the most first."""

    tickets: tuple[Recurred, ...]

    @staticmethod
    def _by(names: list[str]) -> tuple[tuple[str, int], ...]:
        counts: dict[str, int] = {}
        for name in names:
            _count(counts, name)
        return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def by_area(self) -> tuple[tuple[str, int], ...]:
        return self._by([t.area for t in self.tickets])

    @property
    def by_category(self) -> tuple[tuple[str, int], ...]:
        return self._by([t.category for t in self.tickets])

    @property
    def by_owner(self) -> tuple[tuple[str, int], ...]:
        return self._by([t.owner for t in self.tickets])


@dataclass(frozen=True)
class LedgerRow:
    """A ticket filed in the month, with names instead of ids; times in UTC."""

    number: str
    area: str
    category: str
    grade: str
    defect_type: str
    description: str
    reporter: str
    owner: str
    reviewer: str
    filed_at: datetime
    deadline: datetime | None
    status: str
    closed_at: datetime | None
    overdue: bool
    recurs: tuple[str, ...] = ()     # 复发: the earlier tickets it is like


@dataclass(frozen=True)
class MonthlyClosure:
    month: str
    previous_month: str
    timezone: str
    current: Headline
    previous: Headline
    change: Change
    by_area: tuple[Breakdown, ...]
    by_category: tuple[Breakdown, ...]
    repeated: tuple[Repeated, ...]
    ledger: tuple[LedgerRow, ...]
    recurrences: Recurrences = Recurrences(())


@dataclass(frozen=True)
class _Month:
    """The tickets one month's numbers are made of (three queries)."""

    window: Window
    filed: list[_Row]            # cancelled included
    closed: list[_Row]           # closed in the month
    open_at_end: list[_Row]

    def closed_by_end(self, t: _Row) -> bool:
        return t.status is Status.CLOSED and t.closed_at is not None \
            and t.closed_at < self.window.end

    def overdue(self, t: _Row) -> bool:
        """Late: closed after its deadline, or not closed by month end and past it then."""
        if t.status is Status.CANCELLED or t.deadline is None:
            return False
        settled = t.closed_at if self.closed_by_end(t) else self.window.end
        assert settled is not None
        return t.deadline < settled

    def headline(self) -> Headline:
        filed = [t for t in self.filed if t.status is not Status.CANCELLED]
        closed_of_filed = sum(self.closed_by_end(t) for t in filed)
        on_time = sum(t.deadline is None or _closed(t) <= t.deadline for t in self.closed)
        hours = [(_closed(t) - t.created_at) / timedelta(hours=1) for t in self.closed]
        return Headline(
            filed=len(filed), cancelled=len(self.filed) - len(filed),
            closed_of_filed=closed_of_filed, closure_rate=_share(closed_of_filed, len(filed)),
            closed=len(self.closed), on_time=on_time,
            on_time_rate=_share(on_time, len(self.closed)),
            mean_hours=statistics.fmean(hours) if hours else None,
            median_hours=statistics.median(hours) if hours else None,
            open_at_end=len(self.open_at_end),
            overdue_at_end=sum(self.overdue(t) for t in self.open_at_end),
        )


def _closed(t: _Row) -> datetime:
    assert t.closed_at is not None
    return t.closed_at


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def _month(window: Window) -> _Month:
    numbered = hazards().filter(number__isnull=False).exclude(status=Status.LINKED)
    filed = await _rows(numbered.filter(created_at__gte=window.start, created_at__lt=window.end)
                        .order_by("created_at", "id"))
    closed = await _rows(hazards().filter(status=Status.CLOSED, closed_at__gte=window.start,
                                       closed_at__lt=window.end))
    open_at_end = await _rows(numbered.filter(created_at__lt=window.end)
                              .exclude(status=Status.CANCELLED)
                              .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=window.end)))
    return _Month(window, filed, closed, open_at_end)


async def closure_for(month: str, tz: ZoneInfo, catalog: Catalog) -> MonthlyClosure:
    """The report's numbers for `month` ("YYYY-MM"); raises ValueError for another format."""
    now = await _month(month_window(month, tz))
    before = await _month(month_window(previous_month(month), tz))
    areas = {code: name for code, name in await Area.all().values_list("code", "name")}

    def area(t: _Filed) -> str:
        return areas.get(t.area_id or "", t.area_id or NO_AREA)

    def category(t: _Filed) -> str:
        found = catalog.get(t.category)
        return found.label if found else t.category or NO_CATEGORY

    current, previous = now.headline(), before.headline()
    return MonthlyClosure(
        month=month, previous_month=before.window.month, timezone=tz.key, current=current,
        previous=previous, change=Change.between(current, previous),
        by_area=_breakdown(now, area), by_category=_breakdown(now, category),
        repeated=await _repeated(now.window, area, category),
        ledger=(ledger := await _ledger(now, area, category)),
        recurrences=Recurrences(tuple(
            Recurred(r.number, r.area, r.category, r.owner, r.recurs, r.status)
            for r in ledger if r.recurs and r.status != LABELS[Status.CANCELLED])),
    )


def _breakdown(month: _Month, name_of: _Namer) -> tuple[Breakdown, ...]:
    """Rows with the most filed first, then the most overdue; rows with neither are left out."""
    filed: dict[str, int] = {}
    closed: dict[str, int] = {}
    overdue: dict[str, int] = {}
    for t in month.filed:
        if t.status is not Status.CANCELLED:
            _count(filed, name_of(t))
            if month.closed_by_end(t):
                _count(closed, name_of(t))
    for t in month.open_at_end:
        if month.overdue(t):
            _count(overdue, name_of(t))
    rows = [Breakdown(name, filed.get(name, 0), closed.get(name, 0), overdue.get(name, 0))
            for name in {*filed, *overdue}]
    return tuple(sorted(rows, key=lambda r: (-r.filed, -r.overdue, r.name)))


def _count(counts: dict[str, int], name: str) -> None:
    counts[name] = counts.get(name, 0) + 1


async def _repeated(window: Window, area: _Namer, category: _Namer) -> tuple[Repeated, ...]:
    """Filed in the month or open during it: filed before its end and not closed before it
    began."""
    tickets = await hazards().filter(number__isnull=False, reports__gt=1,
                                     created_at__lt=window.end) \
        .exclude(status__in=(Status.LINKED, Status.CANCELLED)) \
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=window.start)) \
        .order_by("-reports", "created_at", "id").limit(REPEATED_SHOWN)
    return tuple(Repeated(t.number or "", area(t), category(t), t.reports, t.description,
                          LABELS[t.status]) for t in tickets)


async def _ledger(month: _Month, area: _Namer, category: _Namer) -> tuple[LedgerRow, ...]:
    names = await user_names(i for t in month.filed
                             for i in (t.reporter_id, t.owner_id, t.reviewer_id) if i)
    return tuple(LedgerRow(
        number=t.number or "", area=area(t), category=category(t), grade=t.grade.value,
        defect_type=t.defect_type.value, description=t.description,
        reporter=names.get(t.reporter_id, t.reporter_id),
        owner=names.get(t.owner_id or "", t.owner_id or ""),
        reviewer=names.get(t.reviewer_id or "", t.reviewer_id or ""),
        filed_at=t.created_at, deadline=t.deadline, status=LABELS[t.status],
        closed_at=t.closed_at, overdue=month.overdue(t), recurs=tuple(t.recurs or ()),
    ) for t in month.filed)
