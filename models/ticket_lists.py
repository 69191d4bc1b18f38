"""Tickets as people list them in chat: the sections of 我的隐患 and the numbers of 统计.

A section reads its newest few tickets and counts the rest only when there may be more, so a
person with a thousand reports is not sent, nor read, a thousand rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.queryset import QuerySet

from models.hazard import ACTIVE, Status, Ticket, hazards


@dataclass(frozen=True)
class Newest:
    """The newest tickets of a list, and how many the list holds in all."""

    tickets: list[Ticket]
    total: int


async def _newest(query: QuerySet[Ticket], limit: int) -> Newest:
    tickets = list(await query.order_by("-id").limit(limit))
    total = await query.count() if len(tickets) == limit else len(tickets)
    return Newest(tickets, total)


async def to_rectify(owner_id: str, limit: int) -> Newest:
    """The owner's tickets in rectification or waiting for their 治理方案, newest first."""
    return await _newest(Ticket.filter(owner_id=owner_id, status__in=[Status.OPEN, Status.PLAN]),
                         limit)


async def to_review(reviewer_id: str, limit: int) -> Newest:
    """The tickets waiting for this reviewer's 通过 or 驳回, newest first."""
    return await _newest(Ticket.filter(reviewer_id=reviewer_id, status=Status.SUBMITTED), limit)


async def reported(reporter_id: str, limit: int) -> Newest:
    """What the person reported, newest first: not the drafts in progress, nor the repeats
    linked to a ticket already filed."""
    return await _newest(hazards().filter(reporter_id=reporter_id).exclude(
        status__in=[Status.DRAFT, Status.LINKED]), limit)


def _filed() -> QuerySet[Ticket]:
    """Tickets that were filed (numbered) and not cancelled."""
    return hazards().filter(number__isnull=False).exclude(status=Status.CANCELLED)


async def active_filed() -> list[Ticket]:
    """Every filed ticket not closed yet (plan, open, submitted)."""
    return list(await _filed().filter(status__in=ACTIVE))


async def filed_since(since: datetime) -> list[Ticket]:
    """The tickets filed since `since` (reported then: created), in whatever state now."""
    return list(await _filed().filter(created_at__gte=since))
