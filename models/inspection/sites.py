"""What a plant patrols, as loaded from config/inspection/ (bot/inspection.py): checklists and
their items, checkpoints (a place with a label and a checklist), routes (checkpoints in order)
and patrol plans (a route, who walks it, how often and in which window of the day).

Checkpoints, routes and plans are deactivated, never deleted, when their entry leaves the
files: rounds and visits keep pointing at them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.expressions import Subquery
from tortoise.models import Model

from models.org import Role, User, people_with
from models.people.profiles import Profile


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    BY_RISK = "by-risk"     # the route's areas decide, by config/inspection.toml

    @property
    def label(self) -> str:
        return {"daily": "每天", "weekly": "每周", "monthly": "每月", "by-risk": "按风险"}[self]


class ItemKind(StrEnum):
    CHECK = "check"        # 正常 / 异常
    READING = "reading"    # a number with its unit and allowed range
    PHOTO = "photo"        # a photo that is required
    CHOICE = "choice"      # one of a few options; the ones listed in `abnormal` are findings


@dataclass(frozen=True)
class Item:
    """One line of a checklist."""

    id: str
    text: str
    kind: ItemKind = ItemKind.CHECK
    category: str = ""               # of its findings; "" = the checklist's
    unit: str = ""
    low: float | None = None
    high: float | None = None
    options: tuple[str, ...] = ()
    abnormal: tuple[str, ...] = ()   # the options that are a finding

    def in_range(self, value: float) -> bool:
        return ((self.low is None or value >= self.low)
                and (self.high is None or value <= self.high))

    @property
    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g}–{self.high:g} {self.unit}".strip()
        if self.low is not None:
            return f"≥{self.low:g} {self.unit}".strip()
        if self.high is not None:
            return f"≤{self.high:g} {self.unit}".strip()
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "kind": self.kind.value,
                "category": self.category, "unit": self.unit, "low": self.low,
                "high": self.high, "options": list(self.options),
                "abnormal": list(self.abnormal)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(id=data["id"], text=data["text"], kind=ItemKind(data["kind"]),
                   category=data.get("category", ""), unit=data.get("unit", ""),
                   low=data.get("low"), high=data.get("high"),
                   options=tuple(data.get("options", ())),
                   abnormal=tuple(data.get("abnormal", ())))


class Checklist(Model):
    code = fields.CharField(max_length=32, primary_key=True)
    title = fields.CharField(max_length=64)
    category = fields.CharField(max_length=16)      # its findings' hazard category
    items: list[dict[str, Any]] = fields.JSONField(default=list)  # type: ignore[assignment]
    loaded_at = fields.DatetimeField()

    class Meta:
        table = "inspection_checklist"

    def item_list(self) -> tuple[Item, ...]:
        return tuple(Item.from_json(i) for i in self.items)


class Checkpoint(Model):
    code = fields.CharField(max_length=32, primary_key=True)    # on the label, e.g. A3-01
    name = fields.CharField(max_length=64)
    area: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "models.Area", related_name="checkpoints", on_delete=fields.RESTRICT)
    checklist: fields.ForeignKeyRelation[Checklist] = fields.ForeignKeyField(
        "models.Checklist", related_name="checkpoints", on_delete=fields.RESTRICT)
    # Where it is on the site plan, [x, y] in the plan's pixels; null when not placed.
    point: list[float] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    active = fields.BooleanField(default=True)
    loaded_at = fields.DatetimeField()
    area_id: str
    checklist_id: str

    class Meta:
        table = "inspection_checkpoint"
        indexes = (("area_id",),)


class Route(Model):
    code = fields.CharField(max_length=32, primary_key=True)
    name = fields.CharField(max_length=64)
    checkpoints: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    active = fields.BooleanField(default=True)
    loaded_at = fields.DatetimeField()

    class Meta:
        table = "inspection_route"


class PatrolPlan(Model):
    """Who walks a route, how often, and in which window of the day (minutes after midnight,
    local time)."""

    code = fields.CharField(max_length=32, primary_key=True)
    route: fields.ForeignKeyRelation[Route] = fields.ForeignKeyField(
        "models.Route", related_name="plans", on_delete=fields.RESTRICT)
    people: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    roles: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    posts: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    frequency = fields.CharEnumField(Frequency, max_length=8)
    starts = fields.IntField()        # minute of the day the window opens
    ends = fields.IntField()          # and closes (after `starts`, the same day)
    active = fields.BooleanField(default=True)
    loaded_at = fields.DatetimeField()
    route_id: str

    class Meta:
        table = "inspection_plan"

    @property
    def window(self) -> str:
        return f"{minutes_text(self.starts)}–{minutes_text(self.ends)}"


def minutes_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


async def active_plans() -> list[PatrolPlan]:
    return await PatrolPlan.filter(active=True).order_by("code")


async def routes_by_code(codes: list[str] | set[str]) -> dict[str, Route]:
    return {r.code: r for r in await Route.filter(code__in=list(codes))}


async def checkpoint_names(codes: set[str]) -> dict[str, str]:
    return {str(code): str(name) for code, name in await Checkpoint.filter(
        code__in=list(codes)).values_list("code", "name")}


async def checkpoint_by_code(code: str) -> Checkpoint | None:
    return await Checkpoint.get_or_none(code=code)


async def checklist_by_code(code: str) -> Checklist | None:
    return await Checklist.get_or_none(code=code)


async def route_areas(routes: list[Route]) -> dict[str, set[str]]:
    """The areas each route's checkpoints are in, by route code, in one query."""
    codes = {c for r in routes for c in r.checkpoints}
    area_of = dict(await Checkpoint.filter(code__in=list(codes)).values_list("code", "area_id"))
    return {r.code: {str(area_of[c]) for c in r.checkpoints if c in area_of} for r in routes}


async def labelled_checkpoints(area: str | None) -> list[Checkpoint]:
    """The active checkpoints to print, by code; of one area (code) when given."""
    found = Checkpoint.filter(active=True)
    if area:
        found = found.filter(area_id=area)
    return await found.order_by("code")


async def walkers(plans: list[PatrolPlan]) -> dict[str, list[str]]:
    """Who walks each plan's route now, by plan code: the active people it names, holds its
    roles or its posts; three queries whatever the number of plans."""
    roles = sorted({r for p in plans for r in p.roles})
    posts = sorted({s for p in plans for s in p.posts})
    named = sorted({person for p in plans for person in p.people})
    active = set(await User.filter(id__in=named, active=True).values_list("id", flat=True))
    with_role = {role: set(await people_with(Role(role))) for role in roles}
    holders: dict[str, set[str]] = {post: set() for post in posts}
    if posts:
        for person, post in await Profile.filter(
                post__in=posts, person_id__in=Subquery(User.filter(active=True).values("id"))
        ).values_list("person_id", "post"):
            holders[str(post)].add(str(person))
    return {p.code: sorted({*(x for x in p.people if x in active),
                            *(x for r in p.roles for x in with_role[r]),
                            *(x for s in p.posts for x in holders[s])}) for p in plans}


async def supervisors(people: list[str]) -> dict[str, str]:
    """Each person's supervisor, for those who have one."""
    return {str(p): str(s) for p, s in await User.filter(
        id__in=people, supervisor_id__isnull=False).values_list("id", "supervisor_id")}
