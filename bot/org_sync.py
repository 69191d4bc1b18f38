"""`safetybot sync-org --from wecom|dingtalk`: the roster read from a platform's contacts.

The platform's departments and people (a `Directory`, read by `bot/channels/wecom_contacts.py`
or `dingtalk_contacts.py`) are merged into the tables `load-org` fills, so that the two commands
work side by side:

- A person's row is kept by its `source`. Rows this sync created (`source` "wecom" or
  "dingtalk") follow the platform: name, department, mobile, supervisor. Someone it no longer
  lists is deactivated, never deleted: tickets and the audit trail still refer to them.
- A row of the TOML roster (`source` "roster") keeps what the file says — name, roles,
  department, supervisor, mobile — and takes from the platform only the department, supervisor
  and mobile its entry leaves out (unless it names another platform as the person's: then the
  row is left whole). Which value came from where is read from the audit trail
  (who wrote the field last), so neither command undoes the other: `load-org` leaves what
  sync-org filled in (`synced_fields`), and sync-org keeps what it filled in current. A roster
  row is deactivated here only when it names this platform (`platform = "wecom"`); one the file
  dropped (`load-org` deactivated it) and the platform still lists becomes the platform's.
- A person's supervisor is the head of their department; a head's is the head of the nearest
  department above the highest one they lead. Every step goes up the tree, so no chain loops.
- The platform's department ids are numbers, in one namespace with the roster's: a department
  is stored as "{platform}-{id}" ("wecom-12"), unless the roster already has a department of
  that very id ("12") — then the roster was written with the platform's ids, that department is
  the platform's, and its name stays the file's. Departments are never removed.
- Everything is read from the platform and the whole change worked out before anything is
  written, then written in one transaction, each write audited like load-org's (actor
  "sync-org"): a sync that fails half-way through the platform's pages changes nothing. A dry
  run works the change out and writes nothing. After a sync the plans' group chats follow the
  roster, as after a load.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.models import Model

from bot.loading import Journal, limit, show, write
from bot.plans import ChatChange, plan_gaps, sync_chats
from models import transaction
from models.audit import AuditEvent
from models.org import Department, User

ACTOR = "sync-org"
ROSTER = "roster"            # the `source` of the TOML roster's rows
# What both the roster file and the platform may say of a person; the file's word wins.
FILLED = ("department_id", "supervisor_id", "mobile")


class SyncError(Exception):
    """The platform's contacts could not be read, or are not to be trusted; the message says
    why, on one line."""


@dataclass(frozen=True)
class PlatformDepartment:
    id: int
    name: str
    parent: int | None = None           # None at the top of what the app may see
    leaders: tuple[str, ...] = ()       # the people who lead it, by uid, its head first


@dataclass(frozen=True)
class PlatformPerson:
    uid: str                            # WeCom UserID, DingTalk userid (staffId)
    name: str
    departments: tuple[int, ...] = ()   # the main one first
    mobile: str = ""                    # "" where the platform does not tell the app
    active: bool = True                 # False: listed, but disabled on the platform


@dataclass(frozen=True)
class Directory:
    """A platform's contacts, as far as the app may see them."""

    platform: str
    departments: tuple[PlatformDepartment, ...]
    people: tuple[PlatformPerson, ...]


@dataclass(frozen=True)
class Change:
    """One row written, or in a dry run one that would be."""

    kind: str                           # "department" or "user"
    key: str
    name: str
    action: str                         # created, updated, reactivated, deactivated
    after: Mapping[str, Any]            # created: every value; else what changes
    before: Mapping[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        said = f"{self.kind} {self.key} ({self.name}) {self.action}"
        if self.action == "deactivated":
            return f"{said}: no longer in the platform's contacts"
        if self.action == "created":
            return said
        return said + ": " + ", ".join(f"{key.removesuffix('_id')} {show(self.before[key])} → "
                                       f"{show(value)}" for key, value in self.after.items())


@dataclass(frozen=True)
class SyncReport:
    """What a sync did (or would do); `kept` counts the people listed whose row another source
    keeps whole (a person of the other platform)."""

    departments: int
    people: int
    changes: tuple[Change, ...]
    unchanged: int
    kept: int
    warnings: tuple[str, ...] = ()
    chats: tuple[ChatChange, ...] = ()
    gaps: tuple[str, ...] = ()

    def count(self, *actions: str) -> int:
        return sum(change.action in actions for change in self.changes)

    def summary(self) -> str:
        return (f"{self.departments} departments, {self.people} people: "
                f"{self.count('created')} created, {self.count('updated', 'reactivated')} "
                f"updated, {self.unchanged} unchanged, {self.count('deactivated')} deactivated, "
                f"{self.kept} kept by another source")

    def lines(self) -> list[str]:
        """A line per change, then a warning per person left out."""
        return [*(c.line() for c in self.changes), *(f"warning: {w}" for w in self.warnings)]


async def sync_org(directory: Directory, now: datetime, *, dry_run: bool = False) -> SyncReport:
    """Make the roster match the platform's contacts; a second sync of the same contacts writes
    nothing. The plans' chats follow after a real sync."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not any(person.active for person in directory.people):
        # As an empty roster file is refused: it would deactivate everyone the platform kept.
        raise SyncError("the platform lists nobody; is the app's visibility (可见范围, "
                        "通讯录权限范围) set?")
    if dry_run:
        return _report(directory, await _plan(directory))
    async with transaction():
        plan = await _plan(directory)
        await plan.apply(Journal(now, ACTOR, "org"))
    # After the commit, as after a load: no chat may hold the roster back.
    chats = await sync_chats(now)
    return _report(directory, plan, chats=tuple(chats), gaps=tuple(await plan_gaps()))


def _report(directory: Directory, plan: _Plan, **follow_ups: Any) -> SyncReport:
    return SyncReport(
        departments=len(directory.departments),
        people=sum(p.active for p in directory.people), changes=tuple(plan.changes),
        unchanged=plan.unchanged, kept=plan.kept, warnings=tuple(plan.warnings), **follow_ups)


async def synced_fields(ids: Collection[str]) -> dict[str, set[str]]:
    """Per person, the fields of their row that sync-org wrote last, from the audit trail: on a
    roster row, what the file left to the platform."""
    if not ids:
        return {}
    last: dict[str, dict[str, str]] = {}
    for subject, actor, data in await AuditEvent.filter(
            subject_type="user", subject_id__in=list(ids)).order_by("id").values_list(
            "subject_id", "actor", "data"):
        for key in (data or {}).get("after", {}):
            last.setdefault(subject, {})[key] = actor
    return {person: {key for key, actor in fields.items() if actor == ACTOR}
            for person, fields in last.items()}


# ---------------------------------------------------------------------------------------------
# Working the change out: nothing written yet


class _Plan:
    """The writes a sync needs, in the order they can be made."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.rows: dict[tuple[str, str], Department | User] = {}   # to update or deactivate
        self.supervisors: dict[str, str] = {}            # of people created, set once all are
        self.unchanged = self.kept = 0
        self.warnings: list[str] = []

    def create(self, kind: str, key: str, values: dict[str, Any]) -> None:
        self.changes.append(Change(kind, key, str(values["name"]), "created", values))

    def update(self, kind: str, row: Department | User, key: str, wanted: Mapping[str, Any]
               ) -> None:
        after = {k: v for k, v in wanted.items() if getattr(row, k) != v}
        if not after:
            self.unchanged += 1
            return
        action = "reactivated" if after.get("active") is True else "updated"
        before = {k: getattr(row, k) for k in after}
        self.changes.append(Change(kind, key, row.name, action, after, before))
        self.rows[kind, key] = row

    def deactivate(self, row: User) -> None:
        self.changes.append(Change("user", row.id, row.name, "deactivated", {"active": False},
                                   {"active": True}))
        self.rows["user", row.id] = row

    async def apply(self, journal: Journal) -> None:
        """Departments, then new people (their supervisor may be a later one), then changes,
        then the new people's supervisors, then who left."""
        made: dict[str, Model] = {}
        for change in self.changes:
            if change.action == "created":
                model: type[Model] = Department if change.kind == "department" else User
                values = {**change.after, "supervisor_id": None} if model is User \
                    else dict(change.after)
                made[change.key] = await journal.create(change.kind, model, change.key, values,
                                                        change.after)
        for change in self.changes:
            if change.action in ("updated", "reactivated"):
                await journal.update(change.kind, self.rows[change.kind, change.key],
                                     change.key, change.after)
        for person, supervisor in self.supervisors.items():
            await write(made[person], {"supervisor_id": supervisor})   # audited when created
        for change in self.changes:
            if change.action == "deactivated":
                await journal.deactivate("user", self.rows["user", change.key], change.key,
                                         "no longer in the platform's contacts")


async def _plan(directory: Directory) -> _Plan:
    plan = _Plan()
    departments = _plan_departments(directory, {d.id: d for d in await Department.all()}, plan)
    await _plan_people(directory, departments, {u.id: u for u in await User.all()}, plan)
    return plan


def _plan_departments(directory: Directory, rows: Mapping[str, Department], plan: _Plan
                      ) -> dict[int, str]:
    """Each platform department's row, created or renamed where it is the platform's; returns
    their keys by the platform's id."""
    keys = {}
    for dept in sorted(directory.departments, key=lambda d: d.id):
        own = str(dept.id)
        key = keys[dept.id] = own if own in rows else f"{directory.platform}-{dept.id}"
        name = dept.name[:limit(Department, "name")]
        row = rows.get(key)
        if row is None:
            plan.create("department", key, {"name": name})
        elif key == own:
            plan.unchanged += 1          # the roster's: named as the file names it
        else:
            plan.update("department", row, key, {"name": name})
    return keys


async def _plan_people(directory: Directory, departments: Mapping[int, str],
                       rows: Mapping[str, User], plan: _Plan) -> None:
    platform = directory.platform
    listed = sorted((p for p in directory.people if p.active), key=lambda p: p.uid)
    matched = _match(platform, listed, rows, plan)
    ids = {uid: row.id if row else uid for uid, row in matched.items()}
    above = leaders_above(directory)
    synced = await synced_fields([r.id for r in matched.values() if r and r.source != platform])
    for person in listed:
        if person.uid not in matched:
            continue
        home = next((departments[d] for d in person.departments if d in departments), None)
        said = {"name": person.name[:limit(User, "name")], "department_id": home,
                "supervisor_id": ids.get(above.get(person.uid, "")),
                **({"mobile": person.mobile[:limit(User, "mobile")]} if person.mobile else {})}
        _plan_person(platform, person.uid, ids[person.uid], matched[person.uid], said,
                     synced, plan)
    taken = {row.id for row in matched.values() if row}
    for row in sorted(rows.values(), key=lambda r: r.id):
        if row.active and row.id not in taken and (row.source == platform or (
                row.source == ROSTER and row.platform == platform)):
            plan.deactivate(row)


def _plan_person(platform: str, uid: str, key: str, row: User | None, said: dict[str, Any],
                 synced: Mapping[str, set[str]], plan: _Plan) -> None:
    """What becomes of one listed person's row, by whose word it follows (`_keeper`)."""
    keeper = _keeper(row, platform, synced)
    if keeper == "kept":
        plan.kept += 1
        return
    if row is not None and keeper == "filled":
        mine = synced.get(row.id, set())
        left_out = {k: v for k, v in said.items()
                    if k in FILLED and (k in mine or not getattr(row, k))}
        plan.update("user", row, key, {**left_out, **({} if row.active else {"active": True})})
        return
    ours = {**said, "active": True, "platform": platform, "source": platform,
            "platform_id": "" if key == uid else uid}
    if row is not None:
        plan.update("user", row, key, ours)
        return
    plan.create("user", key, {"mobile": "", **ours})
    if said["supervisor_id"]:
        plan.supervisors[key] = said["supervisor_id"]


def _keeper(row: User | None, platform: str, synced: Mapping[str, set[str]]) -> str:
    """Whose word a listed person's row follows: "ours" (the platform's: new, created by this
    sync, or let go by whoever kept it), "filled" (the roster's, with what it leaves out from
    the platform), or "kept" (another platform's person, left whole)."""
    if row is None or row.source == platform:
        return "ours"
    if not row.active and (row.source != ROSTER or "active" not in synced.get(row.id, ())):
        return "ours"
    if row.source == ROSTER and row.platform in ("", platform):
        return "filled"
    return "kept"


def _match(platform: str, people: Sequence[PlatformPerson], rows: Mapping[str, User],
           plan: _Plan) -> dict[str, User | None]:
    """Each person's row: the one of this platform with their id there (`platform_id`), else
    the one of their id, else None (a new row). Someone whose id is another person's row there
    is left out, with a warning."""
    by_address = {r.platform_id: r for r in rows.values()
                  if r.platform == platform and r.platform_id}
    matched: dict[str, User | None] = {p.uid: by_address[p.uid] for p in people
                                       if p.uid in by_address}
    taken = {row.id: uid for uid, row in matched.items() if row}
    for person in people:
        if person.uid in matched:
            continue
        if person.uid in taken:
            plan.warnings.append(f"{platform} user {person.uid} ({person.name}) left out: "
                                 f"user {person.uid} is {taken[person.uid]} there")
            continue
        matched[person.uid] = rows.get(person.uid)
        taken[person.uid] = person.uid
    return matched


def leaders_above(directory: Directory) -> dict[str, str]:
    """Each listed person's supervisor by the platform's tree, by uid: the head of their main
    department; for someone who leads departments, the head of the nearest department above the
    highest one they lead. Each step goes up the tree, so no chain loops."""
    listed = {p.uid for p in directory.people if p.active}
    tree = {d.id: d for d in directory.departments}
    heads = {d.id: [u for u in d.leaders if u in listed] for d in directory.departments}
    depth = _depths(tree)
    led: dict[str, list[int]] = {}
    for dept, people in heads.items():
        for uid in people:
            led.setdefault(uid, []).append(dept)
    above = {}
    for person in directory.people:
        if not person.active:
            continue
        if person.uid in led:
            start = tree[min(led[person.uid], key=depth.__getitem__)].parent
        else:
            start = next((d for d in person.departments if d in tree), None)
        head = _nearest_head(start, tree, heads)
        if head:
            above[person.uid] = head
    return above


def _nearest_head(start: int | None, tree: Mapping[int, PlatformDepartment],
                  heads: Mapping[int, list[str]]) -> str | None:
    """The head of `start`, or of the nearest department above it that has one."""
    seen: set[int] = set()
    while start is not None and start in tree and start not in seen:
        if heads[start]:
            return heads[start][0]
        seen.add(start)
        start = tree[start].parent
    return None


def _depths(tree: Mapping[int, PlatformDepartment]) -> dict[int, int]:
    """How far each department is below the top of what the app sees."""
    depth = {}
    for dept in tree.values():
        steps, node, seen = 0, dept.parent, {dept.id}
        while node is not None and node in tree and node not in seen:
            seen.add(node)
            steps += 1
            node = tree[node].parent
        depth[dept.id] = steps
    return depth
