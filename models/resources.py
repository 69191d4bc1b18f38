"""The plant-wide emergency resource ledger (应急物资台账): what each resource is, where it is
kept (an area and a map point), who keeps it, how often it is inspected and when it expires;
and the inspections its keeper confirms in chat.

The ledger is configuration loaded into the database (bot/resources.py); inspections are records.
A resource row carries its last inspection's day and result beside the records, so that the
broadcast, the digest and the reminders read one row per resource. Plans name resources by kind
(灭火器, 空气呼吸器 …); an activation's broadcast lists, per kind, the nearest usable ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.audit import record
from models.org import Area, User, every_area

AT_HAND = 2            # usable resources the broadcast lists per kind
SAME_MINUTE = timedelta(minutes=1)   # an identical confirmation this soon is the same one


class Result(StrEnum):
    OK = "正常"
    FAILED = "异常"


class Resource(Model):
    code = fields.CharField(max_length=32, primary_key=True)      # R-A3-01
    kind = fields.CharField(max_length=32)                         # what plans name: 灭火器
    name = fields.CharField(max_length=100)                        # 干粉灭火器 MFZ/ABC8
    quantity = fields.FloatField()
    unit = fields.CharField(max_length=8)
    area_id = fields.CharField(max_length=32, null=True)           # an area code
    place = fields.CharField(max_length=100, default="")           # 3号车间东门应急柜
    # Its own map point; without one it stands at its area's.
    latitude = fields.FloatField(null=True)
    longitude = fields.FloatField(null=True)
    keeper = fields.CharField(max_length=64)                       # a roster id
    phone = fields.CharField(max_length=32, default="")            # "" = the keeper's mobile
    interval_days = fields.IntField(null=True)                     # null: not inspected
    expires_on = fields.DateField(null=True)
    # A reading its inspection must give (空气呼吸器: 气瓶压力 ≥ 25 MPa); "" = none.
    reading_name = fields.CharField(max_length=16, default="")
    reading_unit = fields.CharField(max_length=8, default="")
    reading_min = fields.FloatField(null=True)
    reading_max = fields.FloatField(null=True)
    inspected_on = fields.DateField(null=True)     # the last inspection (or the paper ledger's)
    result = fields.CharField(max_length=4, default="")   # of the last inspection; "" none yet
    added_on = fields.DateField()                  # entered the ledger: inspections count from it
    active = fields.BooleanField(default=True)
    loaded_at = fields.DatetimeField()

    class Meta:
        table = "emergency_resource"
        indexes = (("kind", "active"), ("keeper", "active"))

    @property
    def due_on(self) -> date | None:
        """When its next inspection is due; None for a resource that is not inspected."""
        if self.interval_days is None:
            return None
        return (self.inspected_on or self.added_on) + timedelta(days=self.interval_days)

    def expired(self, today: date) -> bool:
        return self.expires_on is not None and self.expires_on < today

    @property
    def failed(self) -> bool:
        return self.result == Result.FAILED

    def overdue(self, today: date) -> bool:
        due = self.due_on
        return due is not None and due < today

    def usable(self, today: date) -> bool:
        """Neither expired nor failed: an overdue inspection alone leaves it in the broadcast,
        marked, since an extinguisher a few days past its check still puts out a fire."""
        return self.active and not self.expired(today) and not self.failed

    @property
    def reading_rule(self) -> str:
        """`气瓶压力 ≥25MPa`; "" when no reading is asked for."""
        if not self.reading_name:
            return ""
        bounds = [f"≥{_number(self.reading_min)}" if self.reading_min is not None else "",
                  f"≤{_number(self.reading_max)}" if self.reading_max is not None else ""]
        return f"{self.reading_name} {'、'.join(b for b in bounds if b)}{self.reading_unit}"

    def reading_ok(self, value: float) -> bool:
        return ((self.reading_min is None or value >= self.reading_min)
                and (self.reading_max is None or value <= self.reading_max))

    @property
    def amount(self) -> str:
        return f"{_number(self.quantity)}{self.unit}"

    @property
    def label(self) -> str:
        """`R-A3-01 正压式空气呼吸器（3号车间东门应急柜）`: how messages name it."""
        return f"{self.code} {self.name}（{self.place or self.area_id or '未填位置'}）"


class Inspection(Model):
    """One inspection confirmed in chat: who, when, the result and what they read or noted."""

    id = fields.BigIntField(primary_key=True)
    resource: fields.ForeignKeyRelation[Resource] = fields.ForeignKeyField(
        "models.Resource", related_name="inspections", on_delete=fields.RESTRICT)
    by = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    result = fields.CharEnumField(Result, max_length=4)
    reading = fields.FloatField(null=True)
    note = fields.CharField(max_length=200, default="")
    resource_id: str

    class Meta:
        table = "emergency_resource_inspection"
        indexes = (("resource_id", "at"),)


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else ""


# ---------------------------------------------------------------------------------------------
# Nearest usable


def point(resource: Resource, areas: dict[str, Area]) -> tuple[float, float] | None:
    """Its own map point, else its area's."""
    if resource.latitude is not None and resource.longitude is not None:
        return resource.latitude, resource.longitude
    area = areas.get(resource.area_id or "")
    return point_of(area) if area is not None else None


def nearest(resources: Sequence[Resource], area: Area | None, areas: Sequence[Area]
            ) -> list[Resource]:
    """Nearest first by map point to `area`'s (a degree of longitude shortened by the
    latitude's cosine; distances within a plant, not across the globe); a resource without a
    point is nearest when it is in the area itself, else last; ties by code."""
    if area is None:
        return sorted(resources, key=lambda r: r.code)
    where = {a.code: a for a in areas}
    here = point_of(area)

    def distance(r: Resource) -> float:
        there = point(r, where)
        if here is None or there is None:
            return 0.0 if r.area_id == area.code else math.inf
        across = (there[1] - here[1]) * math.cos(math.radians(here[0]))
        return math.hypot(there[0] - here[0], across)

    return sorted(resources, key=lambda r: (distance(r), r.area_id != area.code, r.code))


def point_of(area: Area) -> tuple[float, float] | None:
    if area.latitude is None or area.longitude is None:
        return None
    return area.latitude, area.longitude


async def at_hand(kinds: Sequence[str], area: Area | None, areas: Sequence[Area], today: date,
                  per_kind: int = AT_HAND) -> list[tuple[str, list[Resource]]]:
    """Per kind a plan names, its nearest usable resources (not expired, last inspection not
    failed); an empty list says the plant has none usable."""
    rows = await Resource.filter(active=True, kind__in=list(kinds))
    return [(kind, nearest([r for r in rows if r.kind == kind and r.usable(today)], area,
                           areas)[:per_kind]) for kind in kinds]


async def resource_lines(kinds: Sequence[str], area: Area | None, today: date) -> list[str]:
    """The broadcast's 最近的应急物资: per kind the plan names, where the nearest usable ones
    are and whom to call; a kind with none usable says so, for the commander to act on."""
    if not kinds:
        return []
    areas = await every_area()
    found = await at_hand(kinds, area, areas, today)
    listed = [r for _, rows in found for r in rows]
    keepers = {u.id: u for u in await User.filter(id__in={r.keeper for r in listed})}
    names = {a.code: a.name for a in areas}
    lines = ["**最近的应急物资**"]
    for kind, rows in found:
        if not rows:
            lines.append(f"> {kind}：无可用（已过期、点检异常或未登记）")
        for r in rows:
            keeper = keepers.get(r.keeper)
            phone = r.phone or (keeper.mobile if keeper else "")
            who = " ".join(w for w in (keeper.name if keeper else r.keeper, phone) if w)
            where = r.place or names.get(r.area_id or "", "")
            lines.append(f"> {kind}：{r.name} {r.amount}，{where}（{who}）"
                         + ("，点检逾期" if r.overdue(today) else ""))
    return lines


# ---------------------------------------------------------------------------------------------
# The keepers' inspections


async def resource_by_code(code: str) -> Resource | None:
    """The active resource with this code (codes are upper case; people type either)."""
    return await Resource.get_or_none(code=code.upper(), active=True)


async def kept_by(keeper: str) -> list[Resource]:
    return list(await Resource.filter(keeper=keeper, active=True).order_by("code"))


async def inspect(resource: Resource, by: str, at: datetime, today: date, result: Result,
                  reading: float | None, note: str) -> Inspection | None:
    """Record an inspection and make it the resource's last; None when the same person sent
    the same confirmation within a minute (a second press of send), which is not recorded
    again. One person's messages are handled in order, so the check cannot race itself."""
    same = await Inspection.filter(resource_id=resource.code, by=by, result=result,
                                   reading=reading, note=note, at__gt=at - SAME_MINUTE).first()
    if same is not None:
        return None
    row = await Inspection.create(resource_id=resource.code, by=by, at=at, result=result,
                                  reading=reading, note=note)
    await Resource.filter(code=resource.code).update(inspected_on=today, result=result.value)
    resource.inspected_on, resource.result = today, result.value
    await record(at=at, actor=by, action="emergency.resource.inspected",
                 subject_type="resource", subject_id=resource.code, to_state=result.value,
                 note=note, data={"reading": reading})
    return row


async def last_inspection(resource: Resource) -> Inspection | None:
    return await Inspection.filter(resource_id=resource.code).order_by("-at", "-id").first()


# ---------------------------------------------------------------------------------------------
# For the scheduler


@dataclass(frozen=True)
class Problems:
    """Active resources that are expired, failed their last inspection, or are overdue for
    it (and neither of the others: each resource is named once, by its worst); by code."""

    expired: list[Resource]
    failed: list[Resource]
    overdue: list[Resource]


async def active_resources() -> list[Resource]:
    return list(await Resource.filter(active=True).order_by("code"))


async def problems(today: date) -> Problems:
    rows = await active_resources()
    expired = [r for r in rows if r.expired(today)]
    failed = [r for r in rows if r.failed and r not in expired]
    return Problems(expired, failed, [r for r in rows if r.overdue(today) and r.usable(today)])
