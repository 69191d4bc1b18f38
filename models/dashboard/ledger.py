"""The ledger (台账): every hazard a viewer may see, filtered, sorted and paged on the server,
the same filter serving the page, the xlsx export and the JSON API. A filter is read from the
query string and checked whole: a bad value or an unknown field is refused naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.queryset import QuerySet

from models.catalog import Grade
from models.dashboard.access import Viewer, visible_tickets
from models.hazard import ACTIVE, Status, Ticket

PER_PAGE = 50
MAX_PER_PAGE = 200
EXPORT_BATCH = 2000
# The columns a ledger sorts by: the name in the query string → the model's field.
SORTS = {"created": "created_at", "deadline": "deadline", "number": "number",
         "status": "status", "grade": "grade", "area": "area_id", "closed": "closed_at"}
PAGING = ("page", "per_page", "sort", "cursor", "limit")


class FilterError(ValueError):
    """A query the ledger refuses; `field` is the parameter at fault."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class TicketFilter:
    area: str = ""
    category: str = ""
    grade: str = ""
    status: str = ""
    owner: str = ""
    since: date | None = None       # filed on or after (`from`)
    until: date | None = None       # filed on or before (`to`)
    overdue: bool | None = None
    q: str = ""                     # words in the description or the number

    def query(self) -> dict[str, str]:
        """As a query string again (links, the export of the current filter)."""
        found = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in ("", None):
                continue
            key = {"since": "from", "until": "to"}.get(f.name, f.name)
            found[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return found


FILTER_KEYS = ("area", "category", "grade", "status", "owner", "from", "to", "overdue", "q")


def parse_filter(params: Mapping[str, str], allowed: tuple[str, ...] = PAGING) -> TicketFilter:
    unknown = sorted(set(params) - set(FILTER_KEYS) - set(allowed))
    if unknown:
        raise FilterError(unknown[0], f"unknown field; the fields are {', '.join(FILTER_KEYS)}")
    grade = params.get("grade", "")
    if grade and grade not in (g.value for g in Grade):
        raise FilterError("grade", "must be 一般 or 重大")
    status = params.get("status", "")
    if status and (status not in (s.value for s in Status) or status == Status.DRAFT.value):
        raise FilterError("status", "must be one of " + ", ".join(
            s.value for s in Status if s is not Status.DRAFT))
    overdue = params.get("overdue", "")
    if overdue not in ("", "true", "false"):
        raise FilterError("overdue", "must be true or false")
    since, until = day_param(params, "from"), day_param(params, "to")
    if since and until and since > until:
        raise FilterError("to", "is before from")
    return TicketFilter(area=params.get("area", ""), category=params.get("category", ""),
                        grade=grade, status=status, owner=params.get("owner", ""),
                        since=since, until=until,
                        overdue=None if not overdue else overdue == "true",
                        q=params.get("q", "").strip()[:50])


def day_param(params: Mapping[str, str], key: str) -> date | None:
    """A day like 2026-12-07 from the query string; None when not given."""
    value = params.get(key, "")
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FilterError(key, f"{value[:20]!r} is not a date like 2026-12-07") from None


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Midnight of `day` in the plant's time zone, as the UTC instant the database stores: SQLite
    compares the stored text, so a bound written with another offset (+08:00) compares wrong."""
    return datetime.combine(day, time(), tz).astimezone(UTC)


def whole(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, "")
    if not value:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise FilterError(key, f"must be a whole number from {low} to {high}")
    return int(value)


def parse_sort(params: Mapping[str, str]) -> tuple[str, bool]:
    """The column and whether descending (`-created`, the default)."""
    value = params.get("sort", "-created")
    column = value.removeprefix("-")
    if column not in SORTS:
        raise FilterError("sort", f"must be one of {', '.join(SORTS)} (a leading - for "
                                  "descending)")
    return column, value.startswith("-")


def filtered(viewer: Viewer, f: TicketFilter, now: datetime, tz: ZoneInfo) -> QuerySet[Ticket]:
    tickets = visible_tickets(viewer)
    if f.area:
        tickets = tickets.filter(area_id=f.area)
    if f.category:
        tickets = tickets.filter(category=f.category)
    if f.grade:
        tickets = tickets.filter(grade=Grade(f.grade))
    if f.status:
        tickets = tickets.filter(status=Status(f.status))
    if f.owner:
        tickets = tickets.filter(owner_id=f.owner)
    if f.since:
        tickets = tickets.filter(created_at__gte=day_start(f.since, tz))
    if f.until:
        tickets = tickets.filter(created_at__lt=day_start(f.until + timedelta(days=1), tz))
    if f.overdue is True:
        tickets = tickets.filter(status__in=ACTIVE, deadline__lt=now)
    elif f.overdue is False:
        tickets = tickets.exclude(status__in=ACTIVE, deadline__lt=now)
    if f.q:
        tickets = tickets.filter(description__icontains=f.q) if not f.q.startswith(
            "HZ-") else tickets.filter(number=f.q)
    return tickets


@dataclass(frozen=True)
class Page:
    rows: list[Ticket]
    total: int
    page: int
    pages: int
    per_page: int
    sort: str
    extra: dict[str, Any] = field(default_factory=dict)


async def ledger_page(viewer: Viewer, params: Mapping[str, str], now: datetime, tz: ZoneInfo
                      ) -> tuple[TicketFilter, Page]:
    """A page of the ledger; a page past the end is refused naming `page`."""
    f = parse_filter(params)
    column, descending = parse_sort(params)
    per_page = whole(params, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    page = whole(params, "page", 1, 1, 1_000_000)
    tickets = filtered(viewer, f, now, tz)
    total = await tickets.count()
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise FilterError("page", f"is past the end: {pages} pages")
    order = f"-{SORTS[column]}" if descending else SORTS[column]
    rows = await tickets.order_by(order, "-id").offset((page - 1) * per_page).limit(per_page)
    return f, Page(rows, total, page, pages, per_page, ("-" if descending else "") + column)


async def ledger_rows(viewer: Viewer, f: TicketFilter, now: datetime, tz: ZoneInfo
                      ) -> AsyncIterator[list[Ticket]]:
    """The filtered ledger in batches by id (newest first), for the export: a batch in memory
    at a time, whatever the size."""
    before: int | None = None
    while True:
        batch = await tickets_before(viewer, f, now, tz, before, EXPORT_BATCH)
        if not batch:
            return
        yield batch
        before = batch[-1].id


async def tickets_before(viewer: Viewer, f: TicketFilter, now: datetime, tz: ZoneInfo,
                         before: int | None, limit: int) -> list[Ticket]:
    """Up to `limit` filtered tickets, newest first (by id), those with an id below `before`
    when given: keyset paging, as fast on the last page as on the first, and a ticket filed
    meanwhile neither repeats nor hides one of the pages still to come."""
    tickets = filtered(viewer, f, now, tz)
    if before is not None:
        tickets = tickets.filter(id__lt=before)
    return list(await tickets.order_by("-id").limit(limit))
