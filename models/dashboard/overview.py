"""The overview's figures for one viewer: open, overdue and closed this month; the closure and
on-time rates against last month; the open 重大 with their weekly trend (重大事故隐患动态清零);
open tickets by area and category; the escalations of the last days; the emergency under way with
its acknowledgement board."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from models.audit import AuditEvent
from models.catalog import Grade
from models.dashboard.access import Viewer, visible_tickets
from models.dashboard.ledger import day_start
from models.emergency import Activation, ActivationStatus, Responder
from models.escalation import Alarm, AlarmKind, AlarmState
from models.hazard import ACTIVE, Status, Ticket
from models.org import area_names, user_names

TREND_WEEKS = 8
ESCALATIONS_SHOWN = 10
ESCALATIONS_DAYS = 7


@dataclass(frozen=True)
class Rates:
    filed: int
    closed: int          # of those filed in the month
    on_time: int         # of those closed in the month, by their deadline
    closed_in_month: int

    @property
    def closure(self) -> float | None:
        return self.closed / self.filed if self.filed else None

    @property
    def punctual(self) -> float | None:
        return self.on_time / self.closed_in_month if self.closed_in_month else None


@dataclass
class Overview:
    open: int = 0
    overdue: int = 0
    closed_month: int = 0
    this_month: Rates = Rates(0, 0, 0, 0)
    last_month: Rates = Rates(0, 0, 0, 0)
    major_open: int = 0
    major_trend: list[tuple[str, int]] = field(default_factory=list)
    by_area: list[tuple[str, int]] = field(default_factory=list)
    by_category: list[tuple[str, int]] = field(default_factory=list)
    escalations: list[dict[str, object]] = field(default_factory=list)
    emergency: dict[str, object] | None = None


def month_start(moment: datetime, tz: ZoneInfo) -> datetime:
    """The first of `moment`'s month, local midnight, as a UTC instant (see `day_start`)."""
    return day_start(moment.astimezone(tz).date().replace(day=1), tz)


async def overview(viewer: Viewer, now: datetime, tz: ZoneInfo,
                   category_name: dict[str, str]) -> Overview:
    """The figures' queries run side by side (each on a connection of the pool): the overview
    takes as long as its slowest, not their sum."""
    tickets = visible_tickets(viewer)
    active = tickets.filter(status__in=ACTIVE)
    start = month_start(now, tz)
    last_start = month_start(start - timedelta(days=1), tz)
    weeks = [now - timedelta(weeks=n) for n in range(TREND_WEEKS - 1, -1, -1)]
    counted, (last_month, this_month), majors, (by_area, by_category), escalations, emergency = \
        await asyncio.gather(
        active.annotate(open=Count("id"), overdue=Count("id", _filter=Q(deadline__lt=now))
                        ).values("open", "overdue"),
        _rates(viewer, (last_start, start, now)),
        # The 重大 tickets open at some point of the trend: not closed before it began.
        tickets.filter(Q(closed_at__isnull=True) | Q(closed_at__gt=weeks[0]),
                       grade=Grade.MAJOR).exclude(status__in=(Status.CANCELLED, Status.LINKED)
                                                  ).values_list("created_at", "closed_at"),
        _groups(active),
        _escalations(viewer, now),
        _emergency(now) if viewer.whole_plant else _nothing())
    o = Overview(open=int(counted[0]["open"] or 0) if counted else 0,
                 overdue=int(counted[0]["overdue"] or 0) if counted else 0,
                 closed_month=this_month.closed_in_month, this_month=this_month,
                 last_month=last_month, escalations=escalations, emergency=emergency)
    o.major_open = sum(1 for _, closed in majors if closed is None)
    o.major_trend = [(f"{w.astimezone(tz):%m-%d}",
                      sum(1 for filed, closed in majors
                          if filed <= w and (closed is None or closed > w))) for w in weeks]
    names = await area_names({str(a) for a, _ in by_area if a})
    o.by_area = sorted(((names.get(str(a), str(a)), int(n)) for a, n in by_area),
                       key=lambda an: (-an[1], an[0]))
    o.by_category = sorted(((category_name.get(str(c), str(c) or "未填类别"), int(n))
                            for c, n in by_category), key=lambda cn: (-cn[1], cn[0]))
    return o


async def _nothing() -> None:
    return None


async def _groups(active: QuerySet[Ticket]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Open tickets counted by area and by category."""
    return await asyncio.gather(
        active.group_by("area_id").annotate(n=Count("id")).values_list("area_id", "n"),
        active.group_by("category").annotate(n=Count("id")).values_list("category", "n"))


async def _rates(viewer: Viewer, bounds: tuple[datetime, ...]) -> list[Rates]:
    """Each month between `bounds` (last month, this month), in one query: their filed and
    closed tickets counted together (a count a figure, each reading the months' rows again,
    took four times as long over a million tickets)."""
    tickets = visible_tickets(viewer).exclude(status__in=(Status.CANCELLED, Status.LINKED))
    months = list(pairwise(bounds))
    counts: dict[str, Count] = {}
    for n, (start, end) in enumerate(months):
        filed = Q(created_at__gte=start, created_at__lt=end)
        closed_in = Q(status=Status.CLOSED, closed_at__gte=start, closed_at__lt=end)
        counts |= {
            f"filed{n}": Count("id", _filter=filed),
            f"closed{n}": Count("id", _filter=filed & Q(status=Status.CLOSED)),
            f"on_time{n}": Count("id", _filter=closed_in & (
                Q(deadline__isnull=True) | Q(closed_at__lte=F("deadline")))),
            f"closed_in{n}": Count("id", _filter=closed_in)}
    first, last = bounds[0], bounds[-1]
    found = await tickets.filter(
        Q(created_at__gte=first, created_at__lt=last)
        | Q(status=Status.CLOSED, closed_at__gte=first, closed_at__lt=last)
    ).annotate(**counts).values(*counts)
    row = found[0] if found else {}
    return [Rates(*(int(row.get(f"{key}{n}") or 0)
                    for key in ("filed", "closed", "on_time", "closed_in")))
            for n in range(len(months))]


async def _escalations(viewer: Viewer, now: datetime) -> list[dict[str, object]]:
    """The escalations sent in the last days on tickets still open, the newest first."""
    open_ids = Subquery(visible_tickets(viewer).filter(status__in=ACTIVE).values("id"))
    alarms = await Alarm.filter(kind=AlarmKind.ESCALATE, state=AlarmState.SENT,
                                fired_at__gte=now - timedelta(days=ESCALATIONS_DAYS),
                                ticket_id__in=open_ids).order_by("-fired_at").limit(
        ESCALATIONS_SHOWN).prefetch_related("ticket")
    owners = await user_names({str(a.ticket.owner_id) for a in alarms  # type: ignore[attr-defined]
                               if a.ticket.owner_id})  # type: ignore[attr-defined]
    return [{"ticket": a.ticket_id, "number": a.ticket.number,  # type: ignore[attr-defined]
             "level": a.level, "fired_at": a.fired_at,
             "owner": owners.get(str(a.ticket.owner_id), "")}  # type: ignore[attr-defined]
            for a in alarms]


async def _emergency(now: datetime) -> dict[str, object] | None:
    """The newest emergency under way, with who has answered."""
    active = await Activation.filter(status=ActivationStatus.ACTIVE).order_by(
        "-activated_at").first().prefetch_related("plan")
    if active is None:
        return None
    responders = await Responder.filter(activation_id=active.id).order_by("answered_at", "id")
    names = await user_names({r.user_id for r in responders})
    areas = await area_names({active.area_id} if active.area_id else set())
    answers = Counter(r.answer or "未回复" for r in responders)
    return {"id": active.id, "label": active.label,
            "plan": active.plan.name if active.plan else "",  # type: ignore[union-attr]
            "level": active.level, "area": areas.get(active.area_id or "", ""),
            "since": active.activated_at, "answers": dict(answers),
            "board": [{"name": names.get(r.user_id, r.user_id), "answer": r.answer or "未回复",
                       "at": r.answered_at} for r in responders]}


async def change_mark() -> tuple[int, int]:
    """What moves when the overview may have changed: the newest audit event (every ticket's
    move is one) and the answers to the emergencies under way."""
    newest = await AuditEvent.all().order_by("-id").first()
    answered = await Responder.filter(activation__status=ActivationStatus.ACTIVE,
                                      answered_at__isnull=False).count()
    return (newest.id if newest else 0), answered
