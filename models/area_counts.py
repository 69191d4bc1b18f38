"""Tickets counted per area, one grouped query each: a plant has a hundred thousand open
tickets, and the daily digest and the risk-status rules need only how many there are where."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from tortoise.functions import Count
from tortoise.queryset import QuerySet

from models.catalog import Grade
from models.hazard import ACTIVE, Status, Ticket, hazards

FILED_OUT = (Status.DRAFT, Status.CANCELLED, Status.LINKED)   # never filed, or filed as a repeat


async def _by_area(query: QuerySet[Ticket]) -> Counter[str | None]:
    """`query`'s tickets per area, counted by the database."""
    rows = await query.annotate(n=Count("id")).group_by("area_id").values_list("area_id", "n")
    return Counter({area: int(n) for area, n in rows})


async def day_counts(since: datetime, until: datetime, now: datetime
                     ) -> dict[str, Counter[str | None]]:
    """The digest's numbers per area (None: no area given): "new", tickets filed from `since`
    to `until` (numbered, not cancelled or linked); "closed", closed in that time; "open", the
    active ones; "overdue", open ones past their deadline at `now`."""
    filed = hazards().filter(number__isnull=False, created_at__gte=since,
                          created_at__lt=until).exclude(
        status__in=[Status.CANCELLED, Status.LINKED])
    return {
        "new": await _by_area(filed),
        "closed": await _by_area(hazards().filter(closed_at__gte=since, closed_at__lt=until)),
        "open": await _by_area(hazards().filter(status__in=ACTIVE)),
        "overdue": await _by_area(hazards().filter(status=Status.OPEN, deadline__lt=now)),
    }


async def risk_counts(grade: Grade | None, active_only: bool, since: datetime | None
                      ) -> dict[str, int]:
    """Filed tickets per area that a risk rule counts, in one grouped query: of `grade` only
    when given, active ones only with `active_only`, reported since `since` when given."""
    query = hazards().filter(area_id__isnull=False).exclude(status__in=FILED_OUT)
    if grade is not None:
        query = query.filter(grade=grade)
    if active_only:
        query = query.filter(status__in=ACTIVE)
    if since is not None:
        query = query.filter(created_at__gte=since)
    rows = await query.annotate(n=Count("id")).group_by("area_id").values("area_id", "n")
    return {row["area_id"]: row["n"] for row in rows}


async def open_counts(now: datetime) -> tuple[Counter[str | None], Counter[str | None]]:
    """Active tickets per area, and those of them past their deadline at `now` (the ledger's
    `overdue`: any active state), for the areas' status in the dashboard and the API."""
    active = hazards().filter(status__in=ACTIVE)
    return await _by_area(active), await _by_area(active.filter(deadline__lt=now))
