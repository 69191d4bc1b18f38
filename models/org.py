"""The organisation: departments, people with roles and a supervisor chain, and plant areas."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model


class Role(StrEnum):
    WORKER = "worker"
    OWNER = "owner"
    REVIEWER = "reviewer"
    SAFETY_MANAGER = "safety_manager"
    PRINCIPAL = "principal"
    COMMANDER = "commander"
    RESPONDER = "responder"
    ADMIN = "admin"


# Roles as a report names them.
ROLE_LABELS = {"worker": "员工", "owner": "整改责任人", "reviewer": "复查人",
               "safety_manager": "安全管理员", "principal": "主要负责人",
               "commander": "应急指挥", "responder": "应急队员", "admin": "管理员"}


class RiskColor(StrEnum):
    """Inherent risk from the assessment (四色); never mixed with the dynamic status."""

    RED = "红"
    ORANGE = "橙"
    YELLOW = "黄"
    BLUE = "蓝"


class Department(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=100)

    class Meta:
        table = "department"


class User(Model):
    """A person, keyed by the platform's user id (WeCom UserID, DingTalk staffId)."""

    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=64)
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="members", null=True, on_delete=fields.SET_NULL
    )
    roles: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    supervisor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="reports", null=True, on_delete=fields.SET_NULL
    )
    mobile = fields.CharField(max_length=32, default="")
    active = fields.BooleanField(default=True)
    # Where this person's notices go ("" = the plant's first platform switched on), and their
    # id there when it is not `id` (a DingTalk staffId beside a WeCom-style roster key).
    platform = fields.CharField(max_length=16, default="", db_default="")
    platform_id = fields.CharField(max_length=64, default="", db_default="")
    # Who keeps this row: the TOML roster ("roster") or a platform's contacts (`sync-org`);
    # each deactivates only the people it keeps.
    source = fields.CharField(max_length=16, default="roster", db_default="roster")
    department_id: str | None

    class Meta:
        table = "org_user"
        indexes = (("department_id", "id"),   # a ticket's 转派 choices: the owner's colleagues
                   ("platform", "platform_id"),
                   ("name",))                 # people named in a message (开工 names twenty)

    def has_role(self, role: Role) -> bool:
        return role.value in self.roles


MAX_CHAIN = 6            # supervisors kept above an owner; a ladder rarely climbs more than three


async def supervisor_chain(user_id: str) -> list[str]:
    """The people above `user_id`, nearest first (the roster refuses cycles; the cap is a
    second guard)."""
    chain: list[str] = []
    current = await User.get_or_none(id=user_id)
    while current is not None and current.supervisor_id and len(chain) < MAX_CHAIN:  # type: ignore[attr-defined]
        above: str = current.supervisor_id  # type: ignore[attr-defined]
        if above in chain or above == user_id:
            break
        chain.append(above)
        current = await User.get_or_none(id=above, active=True)
    return chain


async def people_with(*roles: Role) -> list[str]:
    """Active people holding any of `roles`, by id. The database picks them: an emergency level
    that calls everyone with a role reads ten thousand people, and decoding every person's roles
    in Python took a tenth of a second."""
    if not roles:
        return []
    db = User._meta.db
    wanted = [role.value for role in roles]
    if db.capabilities.dialect == "postgres":
        sql = ('SELECT "id" FROM "org_user" WHERE "active" AND "roles" ?| $1::text[] '
               'ORDER BY "id"')
        param: object = wanted
    else:
        sql = ('SELECT "id" FROM "org_user" WHERE "active" AND EXISTS (SELECT 1 FROM '
               'json_each("org_user"."roles") WHERE "value" IN (SELECT "value" FROM '
               'json_each(?))) ORDER BY "id"')
        param = json.dumps(wanted)
    return [str(row["id"]) for row in await db.execute_query_dict(sql, [param])]


class Area(Model):
    code = fields.CharField(max_length=32, primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    aliases: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="owned_areas", null=True, on_delete=fields.SET_NULL
    )
    reviewer: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="reviewed_areas", null=True, on_delete=fields.SET_NULL
    )
    risk_color = fields.CharEnumField(RiskColor, max_length=2, default=RiskColor.BLUE)
    groups: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    latitude = fields.FloatField(null=True)
    longitude = fields.FloatField(null=True)
    # Links to the area's cameras on the plant's video platform: [{"name", "url"}], or null.
    cameras: list[dict[str, str]] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    # The evacuation map (疏散图), by its content hash in the media store; null without one.
    map_digest = fields.CharField(max_length=64, null=True)
    # Dynamic status from the area's ticket history (scheduler/risk.py): 高 / 中 / 低, with the
    # rule that gave it. Kept apart from the inherent colour, and never shown in colours.
    risk_status = fields.CharField(max_length=2, default="")
    risk_reason = fields.CharField(max_length=100, default="")
    risk_status_at = fields.DatetimeField(null=True)
    owner_id: str | None
    reviewer_id: str | None

    class Meta:
        table = "area"


class _AreaList:
    """Every area, ordered by code, as the area question lists them.

    Building 150 ORM objects costs about 4 ms of CPU, and a report reads the list three times
    (the question, the answer, the owner card's 转派 choices). So the objects are shared between
    events and built again only when the table changed, which is checked in the event's own
    transaction (a reloaded roster is seen at once): on PostgreSQL by the rows' versions (`xmin`
    changes with every insert and update, the list with every delete; 0.3 ms instead of 1.1 ms
    to read the rows), on SQLite, which has none, by reading the rows themselves. The objects
    are read, never changed."""

    def __init__(self) -> None:
        self._seen: object = None
        self._areas: tuple[Area, ...] = ()

    async def load(self) -> tuple[Area, ...]:
        meta = Area._meta
        every = _areas_sql(meta.db_table, meta.db_pk_column)
        if meta.db.capabilities.dialect == "postgres":
            seen = await meta.db.execute_query_dict(_versions_sql(meta.db_table))
            if seen != self._seen:
                self._build(await meta.db.execute_query_dict(every), seen)
        else:
            rows = await meta.db.execute_query_dict(every)
            if rows != self._seen:
                self._build(rows, rows)
        return self._areas

    def _build(self, rows: list[dict[str, Any]], seen: object) -> None:
        self._areas = tuple(Area._init_from_db(**row) for row in rows)
        self._seen = seen


@functools.cache
def _areas_sql(table: str, key: str) -> str:
    return f'SELECT * FROM "{table}" ORDER BY "{key}"'


@functools.cache
def _versions_sql(table: str) -> str:
    return f"SELECT string_agg(xmin::text, ',') AS versions FROM \"{table}\""


_AREAS = _AreaList()


async def every_area() -> tuple[Area, ...]:
    """Every area, ordered by code; shared objects, never to be changed."""
    return await _AREAS.load()


async def addresses(people: Collection[str], home: str, sender: tuple[str, str] | None = None
                    ) -> dict[str, tuple[str, str]]:
    """Where each person is reached: (platform, their id there). Their own platform, or `home`
    when they have none; `sender` (person, platform) is answered where they wrote from.

    Only the rows that say otherwise are read (a platform or an id of their own): in a plant
    on one platform that is none, and an emergency's ten thousand people cost one cheap
    statement, the id list passed as one parameter."""
    db = User._meta.db
    if db.capabilities.dialect == "postgres":
        sql = ('SELECT "id", "platform", "platform_id" FROM "org_user" WHERE "id" = ANY($1) '
               'AND ("platform" <> \'\' OR "platform_id" <> \'\')')
        param: object = list(people)
    else:
        sql = ('SELECT "id", "platform", "platform_id" FROM "org_user" WHERE "id" IN '
               '(SELECT "value" FROM json_each(?)) AND ("platform" <> \'\' OR '
               '"platform_id" <> \'\')')
        param = json.dumps(list(people))
    rows = {str(r["id"]): (str(r["platform"]) or home, str(r["platform_id"]))
            for r in await db.execute_query_dict(sql, [param])}
    where = {}
    for person in people:
        own, platform_id = rows.get(person, (home, ""))
        if sender and sender[0] == person and sender[1] != own:
            where[person] = (sender[1], person)    # the web chat, say: the roster's ids
        else:
            where[person] = (own, platform_id or person)
    return where


async def department_names() -> dict[str, str]:
    return dict(await Department.all().values_list("id", "name"))


async def user_names(ids: Iterable[str]) -> dict[str, str]:
    """People's names by id, however many (a board names thousands of responders). For a
    card's few people and its area, `names_of` is one round trip with both."""
    wanted = set(ids)
    if not wanted:
        return {}
    return dict(await User.filter(id__in=wanted).values_list("id", "name"))


async def names_of(users: list[str], area: str | None) -> tuple[dict[str, str], str | None]:
    """The people's names and the area's, in one round trip: every card and every line of a
    ticket list needs them, and two ORM queries cost twice the CPU of this one."""
    if not users and not area:
        return {}, None
    db = User._meta.db
    sql = _names_sql(User._meta.db_table, len(users), Area._meta.db_table, bool(area),
                     db.capabilities.dialect)
    rows = await db.execute_query_dict(sql, [*users, *([area] if area else [])])
    names = {r["ref"]: r["name"] for r in rows if r["kind"] == "user"}
    return names, next((r["name"] for r in rows if r["kind"] == "area"), None)


@functools.cache
def _names_sql(users: str, count: int, areas: str, area: bool, dialect: str) -> str:
    marks = [f"${n}" if dialect == "postgres" else "?" for n in range(1, count + 2)]
    parts = []
    if count:
        parts.append(f"SELECT 'user' AS kind, \"id\" AS ref, \"name\" FROM \"{users}\" "
                     f"WHERE \"id\" IN ({', '.join(marks[:count])})")
    if area:
        parts.append(f"SELECT 'area' AS kind, \"code\" AS ref, \"name\" FROM \"{areas}\" "
                     f"WHERE \"code\" = {marks[count]}")
    return " UNION ALL ".join(parts)


async def person(user_id: str) -> User | None:
    """Whom a record names (a ticket's reporter, a card's decider, a commander), active or
    not: a name on record outlives the person's membership."""
    return await User.get_or_none(id=user_id)


async def active_member(user_id: str) -> User | None:
    """The active member with this id (a person picked from a card's list)."""
    return await User.get_or_none(id=user_id, active=True)


async def area_by_code(code: str | None) -> Area | None:
    """The area with this code; None for none given (全厂)."""
    return await Area.get_or_none(code=code) if code else None


async def area_names(codes: Collection[str]) -> dict[str, str]:
    """The names of these areas, by code, in one query (a tick's messages name the areas of
    up to thousands of tickets)."""
    return {a.code: a.name for a in await Area.filter(code__in=codes)}


async def set_risk_status(area: Area, status: str, reason: str, now: datetime) -> None:
    """The area's dynamic risk status and the rule that gave it (scheduler/risk.py); its
    inherent colour is never touched."""
    await Area.filter(code=area.code).update(risk_status=status, risk_reason=reason,
                                             risk_status_at=now)


async def member_named(text: str) -> User | None:
    """The active member whose id or name is `text` (a person typing a colleague's name)."""
    return await User.filter(active=True).filter(Q(id=text) | Q(name=text)).order_by("id").first()


async def members_named(texts: Collection[str]) -> dict[str, User]:
    """The active members whose id or name is each text, in one query (a 开工 names twenty)."""
    wanted = list(set(texts))
    if not wanted:
        return {}
    rows = await User.filter(active=True).filter(Q(id__in=wanted) | Q(name__in=wanted)
                                                 ).order_by("id")
    found: dict[str, User] = {}
    for user in rows:
        for text in (user.name, user.id):
            found.setdefault(text, user)
    for user in rows:              # an id wins over another person's name
        found[user.id] = user
    return {t: found[t] for t in wanted if t in found}
