"""The risk map's figures, area by area: its inherent colour (四色) and dynamic status (高/中/低)
as two attributes, its open tickets as the viewer may see them, and its last inspection.

A handful of queries whatever the plant's size: the open tickets counted by area, the few shown
of each read in one statement, the newest visit of each checkpoint by the (checkpoint, at)
index and the visits those name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tortoise.functions import Count, Max
from tortoise.queryset import QuerySet

from models.catalog import Grade
from models.dashboard.access import Viewer, visible_tickets
from models.hazard import ACTIVE, Ticket
from models.inspection.sites import Checkpoint
from models.inspection.visits import Visit
from models.org import every_area, user_names

TICKETS_SHOWN = 5            # of an area's open tickets, in its panel (the most urgent first)
TICKETS_READ = 2000          # at most, in the one statement that reads them for every area
DESCRIPTION_CHARS = 40


@dataclass
class AreaPicture:
    code: str
    name: str
    inherent: str                    # 红 / 橙 / 黄 / 蓝, from the risk assessment
    status: str                      # 高 / 中 / 低, or "" before the first assessment
    reason: str
    status_at: datetime | None
    open: int = 0
    major: int = 0
    overdue: int = 0
    tickets: list[dict[str, object]] = field(default_factory=list)
    last_inspection: dict[str, object] | None = None


@dataclass(frozen=True)
class PlacedCheckpoint:
    code: str
    name: str
    area: str
    point: tuple[float, float]


async def heatmap(viewer: Viewer, now: datetime, *, inspection: bool) -> list[AreaPicture]:
    """Every area, by code; `inspection`: whether the patrol module is on (else no visits)."""
    pictures = {a.code: AreaPicture(a.code, a.name, a.risk_color.value, a.risk_status,
                                    a.risk_reason, a.risk_status_at)
                for a in await every_area()}
    active = visible_tickets(viewer).filter(status__in=ACTIVE, area_id__isnull=False)
    for area, grade, n, overdue in await _counts(active, now):
        found = pictures.get(area)
        if found is None:
            continue
        found.open += n
        found.major += n if grade == Grade.MAJOR.value else 0
        found.overdue += overdue
    rows = await active.order_by("deadline", "id").limit(TICKETS_READ).values(
        "id", "number", "area_id", "description", "grade", "deadline")
    rows.sort(key=lambda t: (t["grade"] != Grade.MAJOR.value, t["deadline"] is None,
                             t["deadline"] or now, t["id"]))
    for t in rows:
        found = pictures.get(str(t["area_id"]))
        if found is None or len(found.tickets) >= TICKETS_SHOWN:
            continue
        description = str(t["description"])
        found.tickets.append({
            "id": t["id"], "number": t["number"] or f"#{t['id']}", "grade": str(t["grade"]),
            "description": description[:DESCRIPTION_CHARS]
            + ("…" if len(description) > DESCRIPTION_CHARS else ""),
            "deadline": t["deadline"],
            "overdue": bool(t["deadline"] and t["deadline"] < now)})
    if inspection:
        for code, visit in (await last_visits()).items():
            if code in pictures:
                pictures[code].last_inspection = visit
    return list(pictures.values())


async def _counts(active: QuerySet[Ticket], now: datetime) -> list[tuple[str, str, int, int]]:
    """Open tickets by (area, grade): how many, and how many of them overdue."""
    every = await active.annotate(n=Count("id")).group_by("area_id", "grade").values_list(
        "area_id", "grade", "n")
    late = await active.filter(deadline__lt=now).annotate(n=Count("id")).group_by(
        "area_id", "grade").values_list("area_id", "grade", "n")
    late_by = {(str(a), str(g)): int(n) for a, g, n in late}
    return [(str(a), str(g), int(n), late_by.get((str(a), str(g)), 0)) for a, g, n in every]


async def last_visits() -> dict[str, dict[str, object]]:
    """Each area's newest patrol visit: where, when, by whom, whether its checklist was done."""
    newest = await Visit.annotate(last=Max("at")).group_by("checkpoint_id").values_list(
        "checkpoint_id", "last")
    if not newest:
        return {}
    areas = dict(await Checkpoint.filter(code__in=[c for c, _ in newest]).values_list(
        "code", "area_id"))
    best: dict[str, tuple[datetime, str]] = {}
    for checkpoint, at in newest:
        area = areas.get(str(checkpoint))
        if area is not None and (area not in best or at > best[area][0]):
            best[str(area)] = (at, str(checkpoint))
    visits = await Visit.filter(at__in=[at for at, _ in best.values()],
                                checkpoint_id__in=[c for _, c in best.values()]).order_by(
        "-id").values("checkpoint_id", "checkpoint__name", "at", "by", "finished_at")
    names = await user_names({str(v["by"]) for v in visits})
    found: dict[str, dict[str, object]] = {}
    for area, (at, checkpoint) in best.items():
        visit = next((v for v in visits
                      if v["checkpoint_id"] == checkpoint and v["at"] == at), None)
        if visit is not None:
            found[area] = {"checkpoint": checkpoint, "name": visit["checkpoint__name"],
                           "at": at, "by": names.get(str(visit["by"]), str(visit["by"])),
                           "finished": visit["finished_at"] is not None}
    return found


async def placed_checkpoints() -> list[PlacedCheckpoint]:
    """The active checkpoints with a place on the site plan."""
    rows = await Checkpoint.filter(active=True, point__isnull=False).order_by("code").values(
        "code", "name", "area_id", "point")
    return [PlacedCheckpoint(str(r["code"]), str(r["name"]), str(r["area_id"]),
                             (float(r["point"][0]), float(r["point"][1])))
            for r in rows if isinstance(r["point"], list) and len(r["point"]) == 2]
