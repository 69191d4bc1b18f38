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

The numbers are counted by the database (grouped counts, one statement per set of tickets), and
the ledger is read a page at a time: a plant with a million tickets files a hundred thousand in a
month, which are never all loaded at once (benchmarks/README.md, tick benchmark --monthly).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from tortoise.expressions import F, Q, RawSQL
from tortoise.functions import Avg, Count
from tortoise.queryset import QuerySet

from models.catalog import Catalog, DefectType, Grade
from models.hazard import LABELS, Status, Ticket, hazards
from models.org import Area, user_names

REPEATED_SHOWN = 5
RECURRED_SHOWN = 3     # the 复发 tickets named; the ledger's 复发自 has them all
LEDGER_PAGE = 500      # ledger rows a query: ~25 ms of the event loop's time each
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
    """The month's 复发 tickets: how many, counted by area, category and owner (the most
    first), and the first few filed."""

    count: int = 0
    by_area: tuple[tuple[str, int], ...] = ()
    by_category: tuple[tuple[str, int], ...] = ()
    by_owner: tuple[tuple[str, int], ...] = ()
    first: tuple[Recurred, ...] = ()


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
    recurrences: Recurrences = Recurrences()


def _numbered() -> QuerySet[Ticket]:
    """Filed hazards: numbered, and not a repeat report (counted on its original)."""
    return hazards().filter(number__isnull=False).exclude(status=Status.LINKED)


def _filed(window: Window) -> QuerySet[Ticket]:
    """Filed in the month, cancelled ones included."""
    return _numbered().filter(created_at__gte=window.start, created_at__lt=window.end)


def _overdue(t: _Row, end: datetime) -> bool:
    """Late: closed after its deadline, or not closed by month end and past it then."""
    if t.status is Status.CANCELLED or t.deadline is None:
        return False
    closed_by_end = t.status is Status.CLOSED and t.closed_at is not None and t.closed_at < end
    settled = t.closed_at if closed_by_end else end
    assert settled is not None
    return t.deadline < settled


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


_Key = tuple[str | None, str]      # a ticket's area code and category code


@dataclass(frozen=True)
class _Month:
    """One month's counts, per area and category: the headline is their sum."""

    window: Window
    filed: dict[_Key, int]           # not cancelled
    cancelled: dict[_Key, int]
    closed_of_filed: dict[_Key, int]
    open_at_end: dict[_Key, int]
    overdue_at_end: dict[_Key, int]  # of those open at month end, past their deadline then
    closed: int                       # closed in the month, whenever filed
    on_time: int
    mean_hours: float | None
    median_hours: float | None

    def headline(self) -> Headline:
        filed, closed_of_filed = sum(self.filed.values()), sum(self.closed_of_filed.values())
        return Headline(
            filed=filed, cancelled=sum(self.cancelled.values()),
            closed_of_filed=closed_of_filed, closure_rate=_share(closed_of_filed, filed),
            closed=self.closed, on_time=self.on_time, on_time_rate=_share(self.on_time,
                                                                          self.closed),
            mean_hours=self.mean_hours, median_hours=self.median_hours,
            open_at_end=sum(self.open_at_end.values()),
            overdue_at_end=sum(self.overdue_at_end.values()),
        )


def _hours_to_close() -> RawSQL:
    """`closed_at - created_at` in hours, as each database subtracts times. SQLite's julianday
    is rounded to the millisecond, so whole hours come out whole, as Python's subtraction."""
    if Ticket._meta.db.capabilities.dialect == "postgres":
        return RawSQL("EXTRACT(EPOCH FROM closed_at - created_at) / 3600")
    return RawSQL("ROUND((julianday(closed_at) - julianday(created_at)) * 86400000) / 3600000.0")


def _by_group(rows: Iterable[tuple[str | None, str, int]]) -> dict[_Key, int]:
    counts: dict[_Key, int] = {}
    for area, category, n in rows:
        if n:
            counts[area, category] = counts.get((area, category), 0) + int(n)
    return counts


async def _month(window: Window) -> _Month:
    """Grouped counts (filed in the month, open at its end, closed in it) and the two middle
    closure times."""
    end = window.end
    filed = await _filed(window).annotate(
        filed=Count("id", _filter=~Q(status=Status.CANCELLED)),
        cancelled=Count("id", _filter=Q(status=Status.CANCELLED)),
        closed=Count("id", _filter=Q(status=Status.CLOSED, closed_at__lt=end)),
    ).group_by("area_id", "category").values_list("area_id", "category", "filed", "cancelled",
                                                  "closed")
    # Open at month end: not closed, or closed after it; one statement each, so that both are
    # read through the closed_at index (with an OR of the two, SQLite walked every earlier
    # ticket by created_at: seconds at a million tickets).
    still_open = [row for not_closed in (Q(closed_at__isnull=True), Q(closed_at__gte=end))
                  for row in await _numbered().filter(not_closed, created_at__lt=end).exclude(
                      status=Status.CANCELLED).annotate(
                      open=Count("id"), overdue=Count("id", _filter=Q(deadline__lt=end)),
                  ).group_by("area_id", "category").values_list("area_id", "category", "open",
                                                                "overdue")]
    closed = hazards().filter(status=Status.CLOSED, closed_at__gte=window.start,
                              closed_at__lt=end)
    [(count, on_time, mean)] = await closed.annotate(
        count=Count("id"),
        on_time=Count("id", _filter=Q(deadline__isnull=True) | Q(closed_at__lte=F("deadline"))),
        mean=Avg(_hours_to_close()),    # type: ignore[arg-type]  # tortoise's hint is narrow
    ).values_list("count", "on_time", "mean")
    middle = await closed.annotate(hours=_hours_to_close()).order_by("hours").offset(
        (count - 1) // 2).limit(2 - count % 2).values_list("hours", flat=True) if count else []
    return _Month(
        window,
        filed=_by_group((a, c, n) for a, c, n, _, _ in filed),
        cancelled=_by_group((a, c, n) for a, c, _, n, _ in filed),
        closed_of_filed=_by_group((a, c, n) for a, c, _, _, n in filed),
        open_at_end=_by_group((a, c, n) for a, c, n, _ in still_open),
        overdue_at_end=_by_group((a, c, n) for a, c, _, n in still_open),
        closed=int(count), on_time=int(on_time), mean_hours=_hours(mean),
        median_hours=sum(_hours(h) or 0.0 for h in middle) / len(middle) if middle else None,
    )


def _hours(value: object) -> float | None:
    """A time from the database as hours: PostgreSQL's numeric arrives as a Decimal."""
    return None if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Names:
    """What a report shows instead of codes: area names, category labels."""

    areas: dict[str, str]
    catalog: Catalog

    @classmethod
    async def load(cls, catalog: Catalog) -> _Names:
        return cls(dict(await Area.all().values_list("code", "name")), catalog)

    def area(self, t: _Filed) -> str:
        return self.areas.get(t.area_id or "", t.area_id or NO_AREA)

    def category(self, t: _Filed) -> str:
        found = self.catalog.get(t.category)
        return found.label if found else t.category or NO_CATEGORY


@dataclass(frozen=True, slots=True)
class _Group:
    """A group of tickets by area and category, named like a ticket."""

    area_id: str | None
    category: str


async def closure_for(month: str, tz: ZoneInfo, catalog: Catalog) -> MonthlyClosure:
    """The report's numbers for `month` ("YYYY-MM"); raises ValueError for another format.
    The ledger's rows come from `ledger_pages`."""
    now = await _month(month_window(month, tz))
    before = await _month(month_window(previous_month(month), tz))
    names = await _Names.load(catalog)
    current, previous = now.headline(), before.headline()
    return MonthlyClosure(
        month=month, previous_month=before.window.month, timezone=tz.key, current=current,
        previous=previous, change=Change.between(current, previous),
        by_area=_breakdown(now, names.area), by_category=_breakdown(now, names.category),
        repeated=await _repeated(now.window, names.area, names.category),
        recurrences=await _recurrences(now.window, names),
    )


def _breakdown(month: _Month, name_of: _Namer) -> tuple[Breakdown, ...]:
    """Rows with the most filed first, then the most overdue; rows with neither are left out.
    Groups are summed by name: two area codes may share one."""
    filed: dict[str, int] = {}
    closed: dict[str, int] = {}
    overdue: dict[str, int] = {}
    for counts, into in ((month.filed, filed), (month.closed_of_filed, closed),
                         (month.overdue_at_end, overdue)):
        for group, n in counts.items():
            _count(into, name_of(_Group(*group)), n)
    rows = [Breakdown(name, filed.get(name, 0), closed.get(name, 0), overdue.get(name, 0))
            for name in {*filed, *overdue}]
    return tuple(sorted(rows, key=lambda r: (-r.filed, -r.overdue, r.name)))


def _count(counts: dict[str, int], name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


def _most_first(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


async def _recurrences(window: Window, names: _Names) -> Recurrences:
    """The 复发 tickets filed in the month, cancelled ones left out: counted by the database
    per area, category and owner; the first RECURRED_SHOWN by number."""
    recurred = _filed(window).filter(recurs__isnull=False).exclude(status=Status.CANCELLED)
    groups = await recurred.annotate(n=Count("id")).group_by(
        "area_id", "category", "owner_id").values_list("area_id", "category", "owner_id", "n")
    first = await recurred.order_by("created_at", "id").limit(RECURRED_SHOWN).values_list(
        "number", "area_id", "category", "owner_id", "recurs", "status")
    people = await user_names({owner for *_, owner, _ in groups if owner})
    by_area: dict[str, int] = {}
    by_category: dict[str, int] = {}
    by_owner: dict[str, int] = {}
    for area, category, owner, n in groups:
        _count(by_area, names.area(_Group(area, category)), n)
        _count(by_category, names.category(_Group(area, category)), n)
        _count(by_owner, people.get(owner or "", owner or ""), n)
    return Recurrences(
        count=sum(by_area.values()), by_area=_most_first(by_area),
        by_category=_most_first(by_category), by_owner=_most_first(by_owner),
        first=tuple(Recurred(number or "", names.area(_Group(area, category)),
                             names.category(_Group(area, category)),
                             people.get(owner or "", owner or ""), tuple(recurs or ()),
                             LABELS[status])
                    for number, area, category, owner, recurs, status in first))


async def _repeated(window: Window, area: _Namer, category: _Namer) -> tuple[Repeated, ...]:
    """Filed in the month or open during it: filed before its end and not closed before it
    began. The not closed and the closed since are asked apart, as for `open_at_end`."""
    tickets = [t for not_closed in (Q(closed_at__isnull=True), Q(closed_at__gte=window.start))
               for t in await hazards().filter(not_closed, number__isnull=False, reports__gt=1,
                                               created_at__lt=window.end)
               .exclude(status__in=(Status.LINKED, Status.CANCELLED))
               .order_by("-reports", "created_at", "id").limit(REPEATED_SHOWN)]
    tickets.sort(key=lambda t: (-t.reports, t.created_at, t.id))
    return tuple(Repeated(t.number or "", area(t), category(t), t.reports, t.description,
                          LABELS[t.status]) for t in tickets[:REPEATED_SHOWN])


async def ledger_pages(month: str, tz: ZoneInfo, catalog: Catalog, page_size: int = LEDGER_PAGE
                       ) -> AsyncIterator[list[LedgerRow]]:
    """Every ticket filed in `month`, cancelled ones included, oldest first, `page_size` rows
    at a time: each page is the next in (created_at, id) order after the last one read, so a
    page is one short indexed query and the month is never in memory at once."""
    window = month_window(month, tz)
    names = await _Names.load(catalog)
    after = Q()
    while page := await _rows(_filed(window).filter(after).order_by("created_at", "id")
                              .limit(page_size)):
        people = await user_names(i for t in page
                                  for i in (t.reporter_id, t.owner_id, t.reviewer_id) if i)
        yield [LedgerRow(
            number=t.number or "", area=names.area(t), category=names.category(t),
            grade=t.grade.value, defect_type=t.defect_type.value, description=t.description,
            reporter=people.get(t.reporter_id, t.reporter_id),
            owner=people.get(t.owner_id or "", t.owner_id or ""),
            reviewer=people.get(t.reviewer_id or "", t.reviewer_id or ""),
            filed_at=t.created_at, deadline=t.deadline, status=LABELS[t.status],
            closed_at=t.closed_at, overdue=_overdue(t, window.end), recurs=tuple(t.recurs or ()),
        ) for t in page]
        # The next page starts at the last one's instant, less the tickets of that instant
        # already read: a range on the created_at index, walked in order. (Written as an OR,
        # PostgreSQL read the rest of the month and sorted it for every page.)
        last = page[-1]
        after = Q(created_at__gte=last.created_at) & ~Q(created_at=last.created_at,
                                                         id__lte=last.id)
