"""Emergency plans (应急预案) from `config/plans/*.toml` into the database: `safetybot load-plans`.

Every file is checked alone, against the others and against the roster before anything is
written, then all plans are written in one transaction: a bad file changes nothing, because a
plan half loaded would call the wrong people in an emergency. Loading is idempotent: a plan is
rewritten, and audited, only when its file changed. A plan whose file is gone is deactivated,
never deleted: activations refer to it. Each group chat a plan names is created once, through the
outbox (idempotency key `group:{chat_id}`), and its members are kept (`GroupChat`): after every
roster load, `sync_chats` adds who the plans now call and removes who they no longer call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.loading import Entry, Journal, limit, show
from models import transaction
from models.chats import GroupChat, change_key
from models.emergency import Activation, Level, Plan, PlanKind, callees
from models.org import Role, User
from models.outbox import (
    DeliveryStatus,
    OutboxDelivery,
    OutboxMessage,
    OutboxStatus,
    Queued,
    enqueue,
    enqueue_many,
)
from models.outgoing import GroupCreate, GroupUpdate

log = logging.getLogger(__name__)

ACTOR = "plans"
PLAN_KEYS = ("code", "name", "type", "triggers", "groups", "report_level", "steps", "levels",
             "resources", "reviewed_on")
KINDS = {kind.value: kind for kind in PlanKind} | {
    "综合": PlanKind.GENERAL, "专项": PlanKind.SPECIAL, "现场处置": PlanKind.ONSITE}
_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_CHAT_ID = re.compile(r"[0-9a-zA-Z]{1,32}")       # appchat/create (chat-protocols.md §4.3)
GROUP_SIZE = (2, 2000)                              # appchat/create's userlist
GROUP_NAME_CHARS = 50


class _NamesChats(Protocol):
    """A plan as its file gives it (`PlanEntry`) or as the database keeps it (`Plan`)."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def groups(self) -> Sequence[str]: ...


P = TypeVar("P", bound=_NamesChats)


class PlanError(Exception):
    """A plan file that cannot be loaded; the message names the file and the entry, on one line."""


@dataclass(frozen=True)
class PlanEntry:
    file: Path
    code: str
    name: str
    kind: PlanKind
    triggers: tuple[str, ...]
    groups: tuple[str, ...]
    steps: tuple[str, ...]
    levels: tuple[Level, ...]                       # highest first
    resources: tuple[str, ...] = ()                # kinds, from the resource ledger
    report_level: str = ""
    reviewed_on: date | None = None                 # its last 评审 or 评估

    def stored(self) -> dict[str, Any]:
        """The Plan row's fields as its JSON columns give them back (lists, not tuples), so that
        an unchanged plan compares equal to its row."""
        return {
            "name": self.name, "kind": self.kind, "triggers": list(self.triggers),
            "groups": list(self.groups), "steps": list(self.steps),
            "levels": json.loads(json.dumps([dataclasses.asdict(lv) for lv in self.levels])),
            "resources": list(self.resources),
            "report_level": self.report_level, "active": True, "reviewed_on": self.reviewed_on,
        }


@dataclass(frozen=True)
class PlansReport:
    """What a load did; `plans` counts the files, `groups` the group chats newly queued, `chats`
    what became of the chats that were there before (a plan's new level or person joins them)."""

    plans: int
    created: int
    updated: int
    unchanged: int
    deactivated: int
    groups: int
    chats: tuple[ChatChange, ...] = ()

    def summary(self) -> str:
        return (f"{self.plans} plans: {self.created} created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.deactivated} deactivated; "
                f"{self.groups} group chats to create")


@dataclass(frozen=True)
class ChatChange:
    """What a roster load did to one plan chat: people added and removed, or why it was left as
    it is (`calls`: the people its plans now call, when WeCom would refuse that many; `waiting`:
    its previous change is still in the outbox, and changes to one chat must not overtake), and
    what WeCom refused before (`refused`: "create" or "update"; this change starts from the chat
    as WeCom has it)."""

    chat_id: str
    plans: tuple[str, ...]           # the active plans naming it
    added: int = 0
    removed: int = 0
    calls: int | None = None
    waiting: bool = False
    refused: str = ""

    def summary(self) -> str:
        plans = ("plan " if len(self.plans) == 1 else "plans ") + ", ".join(self.plans)
        where = f"chat {self.chat_id} ({plans})"
        if self.calls is not None:
            low, high = GROUP_SIZE
            people = "person" if self.calls == 1 else "people"
            return (f"{where}: left as it is: {plans} now calls {self.calls} {people} and "
                    f"WeCom takes {low} to {high} in a chat")
        if self.waiting:
            return (f"{where}: left as it is: its previous change is not sent yet; load "
                    "again once it is")
        if self.refused == "create":
            return f"{where}: created again with {self.added} people (WeCom refused it before)"
        again = " (WeCom refused the previous change)" if self.refused else ""
        return f"{where}: {self.added} added, {self.removed} removed{again}"


# ---------------------------------------------------------------------------------------------
# Parsing: pure, no database (also `safetybot check-config`)


def parse_plans(directory: Path) -> list[PlanEntry]:
    """Read and check every `*.toml` in `directory`, each alone and then against the others."""
    if not directory.is_dir():
        raise PlanError(f"{directory}: not a folder of plan files")
    files = sorted(directory.glob("*.toml"))
    if not files:
        # A mistyped folder would otherwise deactivate every plan.
        raise PlanError(f"{directory}: no plan files (*.toml)")
    plans = [_plan(path, _read(path)) for path in files]
    _check_across(plans)
    return plans


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from None


def _at(path: Path, section: str, index: int, label: object = None) -> str:
    """`config/plans/nh3.toml: levels[1] (二级)`: where an entry is, 0-based like the roster's."""
    where = f"{path}: {section}[{index}]"
    return where + f" ({label})" if isinstance(label, str) and label else where


def _tables(path: Path, plan: Entry, section: str, fields: Sequence[str]) -> list[Entry]:
    raw = plan.raw.get(section, [])
    if not isinstance(raw, list):
        plan.fail(f'"{section}" must be an array of tables ([[{section}]])')
    label = fields[0]                 # a level's name
    return [Entry(_at(path, section, i, item.get(label) if isinstance(item, dict) else None),
                  item, fields, error=PlanError, shape=f"[[{section}]]")
            for i, item in enumerate(raw)]


def _plan(path: Path, data: dict[str, Any]) -> PlanEntry:
    t = Entry(str(path), data, PLAN_KEYS, error=PlanError, shape="a plan file")
    code = t.required("code")
    if not _CODE.fullmatch(code):
        t.fail(f"code {show(code)} must be 1 to 32 letters, digits, _ or -")
    kind = t.required("type")
    if kind not in KINDS:
        t.fail(f"type {show(kind)} must be one of {'/'.join(KINDS)}")
    levels = _levels(path, t)
    names = [level.name for level in levels]
    report_level = t.optional("report_level") or ""
    if report_level and report_level not in names:
        t.fail(f"report_level {show(report_level)} is not one of the levels ({'/'.join(names)})")
    reviewed_on = t.raw.get("reviewed_on")
    if reviewed_on is not None and (not isinstance(reviewed_on, date)
                                    or isinstance(reviewed_on, datetime)):
        t.fail(f"reviewed_on must be a date (reviewed_on = 2025-03-01), not "
               f"{show(reviewed_on)}")
    return PlanEntry(
        file=path, code=code, name=t.required("name", limit(Plan, "name")), kind=KINDS[kind],
        triggers=_triggers(t), groups=_groups(t), steps=_listed(t, "steps"),
        levels=levels, report_level=report_level, reviewed_on=reviewed_on,
        resources=_resource_kinds(t),
    )


def _listed(t: Entry, key: str) -> tuple[str, ...]:
    values = t.strings(key)
    if not values:
        t.fail(f"{key} must list at least one")
    return values


def _triggers(t: Entry) -> tuple[str, ...]:
    words = _listed(t, "triggers")
    # "启动预案 氨泄漏 二级" is split at spaces: a trigger with one could never be typed.
    spaced = next((w for w in words if len(w.split()) > 1), None)
    if spaced is not None:
        t.fail(f"triggers: {show(spaced)} must be one word, without spaces")
    return words


def _groups(t: Entry) -> tuple[str, ...]:
    groups = t.strings("groups")
    bad = next((g for g in groups if not _CHAT_ID.fullmatch(g)), None)
    if bad is not None:
        t.fail(f"groups: {show(bad)} is not a WeCom chat id (1 to 32 letters and digits)")
    return groups


def _levels(path: Path, plan: Entry) -> tuple[Level, ...]:
    entries = _tables(path, plan, "levels", [f.name for f in dataclasses.fields(Level)])
    if not entries:
        plan.fail("lists no levels ([[levels]]): at least one, highest first")
    levels: list[Level] = []
    for t in entries:
        level = _level(t)
        earlier = next((i for i, lv in enumerate(levels) if lv.name == level.name), None)
        if earlier is not None:
            t.fail(f"name {show(level.name)} is already used by levels[{earlier}]")
        levels.append(level)
    return tuple(levels)


def _level(t: Entry) -> Level:
    name = t.required("name", limit(Activation, "level"))
    if len(name.split()) > 1:
        t.fail(f"name {show(name)} must be one word, without spaces")
    roles = t.strings("roles")
    for role in roles:
        t.choices("role", role, [r.value for r in Role])
    people = t.strings("people")
    if not roles and not people:
        t.fail("calls nobody: give roles or people")
    deputies = t.raw.get("deputies", {})
    if not isinstance(deputies, dict) or not all(
            isinstance(v, str) and v.strip() for v in deputies.values()):
        t.fail('deputies must be a table of person = "deputy" (user ids)')
    own = next((p for p, d in deputies.items() if p == d), None)
    if own is not None:
        t.fail(f"deputies: {show(own)} cannot be their own deputy")
    return Level(name, roles, people, tuple(deputies.items()))


def _resource_kinds(t: Entry) -> tuple[str, ...]:
    """`resources = ["灭火器", "空气呼吸器"]`: kinds, whose nearest usable resources the
    ledger gives. A plan file from before the ledger, with `[[resources]]` tables, is refused with
    the way to move them: converting them would keep two ledgers."""
    raw = t.raw.get("resources", [])
    if isinstance(raw, list) and any(isinstance(item, dict) for item in raw):
        t.fail("resources: [[resources]] tables are no longer read here: move each into the "
               "resource ledger (config/resources.toml, safetybot load-resources) and name "
               'their kinds instead, resources = ["灭火器", "空气呼吸器"]')
    return t.strings("resources")


def _check_across(plans: Sequence[PlanEntry]) -> None:
    """Codes name plans and trigger words pick them: each must lead to exactly one plan."""
    codes: dict[str, PlanEntry] = {}
    words: dict[str, PlanEntry] = {}
    for plan in plans:
        first = codes.setdefault(plan.code, plan)
        if first is not plan:
            raise PlanError(f"{plan.file}: code {show(plan.code)} is already used by {first.file}")
        for word in plan.triggers:
            first = words.setdefault(word, plan)
            if first is not plan:
                raise PlanError(f"{plan.file}: trigger {show(word)} is already a trigger of "
                                f"{first.file}")


# ---------------------------------------------------------------------------------------------
# Loading: checked against the roster, then one transaction


async def load_plans(directory: Path, now: datetime, platform: str) -> PlansReport:
    """Make the plans in the database match the files; loading the same files again writes
    nothing. `platform` is where the plans' group chats are created (the first platform
    switched on)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    plans = await asyncio.to_thread(parse_plans, directory)
    journal = Journal(now, ACTOR, "emergency")
    async with transaction():
        users = {u.id: u for u in await User.all().order_by("id")}
        if not any(u.active for u in users.values()):
            raise PlanError("the roster is empty: load it first (safetybot load-org)")
        groups = _group_chats(plans, {p.code: await _check_roster(p, users)
                                      for p in plans}, users)
        _check_sizes(groups)
        rows = {p.code: p for p in await Plan.all()}
        for plan in plans:
            wanted = plan.stored()
            row = rows.get(plan.code)
            if row is None:
                await journal.create("plan", Plan, plan.code, {**wanted, "loaded_at": now}, wanted)
            else:
                await journal.update("plan", row, plan.code, wanted, stamp={"loaded_at": now})
        listed = {p.code for p in plans}
        for row in rows.values():
            if row.code not in listed and row.active:
                await journal.deactivate("plan", row, row.code, "its file is gone")
        new = await _record_new_chats([chat for _, chat in groups], now, platform)
        queued = await enqueue_many([Queued(change_key(g.chat_id, 0), g) for g in new],
                                    now=now, platform=platform)
    new_ids = {chat.chat_id for chat in new}
    chats = await sync_chats(now)
    return PlansReport(plans=len(plans), created=journal.created, updated=journal.updated,
                       unchanged=journal.unchanged, deactivated=journal.deactivated,
                       groups=queued, chats=tuple(c for c in chats if c.chat_id not in new_ids))


async def _check_roster(plan: PlanEntry, users: dict[str, User]) -> list[str]:
    """Everyone the plan calls must be in the roster and active; returns them (`_called`)."""
    for i, level in enumerate(plan.levels):
        where = _at(plan.file, "levels", i, level.name)
        for person in level.people:
            _person(where, f"person {show(person)}", users.get(person))
        calls = await callees(level)
        if not calls:
            raise PlanError(f"{where}: calls nobody: no active person in the roster has roles "
                            f"{'/'.join(level.roles)}")
        for person, deputy in level.deputies:
            _person(where, f"person {show(person)}", users.get(person))
            if person not in calls:
                raise PlanError(f"{where}: deputies: {show(person)} is not called at this level")
            _person(where, f"deputy {show(deputy)} of {show(person)}", users.get(deputy))
    return await _called(plan.levels, users)


async def _called(levels: Sequence[Level], users: Mapping[str, User]) -> list[str]:
    """Everyone a plan calls at any level, deputies included, in level order: the members of its
    group chats, when the plan is loaded and after every roster load. Only active people:
    load-plans refuses a plan naming someone who left, but a roster load later can make them
    leave, and then they leave its chats."""
    called: list[str] = []
    for level in levels:
        called += await callees(level)
        called += [deputy for _, deputy in level.deputies if _active(deputy, users)]
    return list(dict.fromkeys(called))


def _active(person: str, users: Mapping[str, User]) -> bool:
    user = users.get(person)
    return user is not None and user.active


def _person(where: str, who: str, user: User | None) -> None:
    if user is None:
        raise PlanError(f"{where}: {who} is not in the roster")
    if not user.active:
        raise PlanError(f"{where}: {who} has left (inactive in the roster)")


def _group_chats(plans: Sequence[P], called: Mapping[str, Sequence[str]],
                 users: Mapping[str, User]) -> list[tuple[P, GroupCreate]]:
    """One chat per id, with everyone that any plan naming it calls; named after the first such
    plan (returned with it) and owned by the first commander among them."""
    members: dict[str, list[str]] = {}
    first: dict[str, P] = {}
    for plan in plans:
        for chat in plan.groups:
            first.setdefault(chat, plan)
            members[chat] = list(dict.fromkeys([*members.get(chat, []), *called[plan.code]]))
    chats = []
    for chat, people in members.items():
        owner = next((p for p in people if users[p].has_role(Role.COMMANDER)),
                     people[0] if people else "")
        chats.append((first[chat], GroupCreate(
            chat_id=chat, name=first[chat].name[:GROUP_NAME_CHARS], owner=owner,
            members=tuple(people))))
    return chats


def _fits(chat: GroupCreate) -> bool:
    low, high = GROUP_SIZE
    return low <= len(chat.members) <= high


def _check_sizes(chats: Sequence[tuple[PlanEntry, GroupCreate]]) -> None:
    for plan, chat in chats:
        if not _fits(chat):
            low, high = GROUP_SIZE
            raise PlanError(f"{plan.file}: groups: chat {show(chat.chat_id)} would have "
                            f"{len(chat.members)} member(s); WeCom needs {low} to {high}")


async def _record_new_chats(chats: Sequence[GroupCreate], now: datetime, platform: str
                            ) -> list[GroupCreate]:
    """The chats not created before, recorded with the members they are created with: the
    roster loads after this one compare with them."""
    known = set(await GroupChat.filter(chat_id__in=[c.chat_id for c in chats]).values_list(
        "chat_id", flat=True))
    new = [c for c in chats if c.chat_id not in known]
    if new:
        await GroupChat.bulk_create([
            GroupChat(chat_id=c.chat_id, platform=platform, name=c.name, owner=c.owner,
                      members=list(c.members), changed_at=now) for c in new])
    return new


# ---------------------------------------------------------------------------------------------
# After a roster load: the plans' chats follow the people the plans call


async def sync_chats(now: datetime) -> list[ChatChange]:
    """Bring each active plan's group chats to the people the plans call now: an `appchat/update`
    adds who joined and removes who left since the chat's last change. Runs after a roster or
    plan load commits, so a chat never holds the load back: a chat WeCom would refuse is left as
    it is, reported and logged. A repeated load finds nothing to change and queues nothing."""
    async with transaction():
        plans = [p for p in await Plan.filter(active=True).order_by("code") if p.groups]
        users = {u.id: u for u in await User.all().order_by("id")}
        called = {p.code: await _called(_stored_levels(p), users) for p in plans}
        rows = {c.chat_id: c for c in await GroupChat.filter(
            chat_id__in=[g for p in plans for g in p.groups])}
        changes = []
        for _, chat in _group_chats(plans, called, users):
            row = rows.get(chat.chat_id)
            if row is not None:      # else not created yet: load-plans creates it
                naming = tuple(p.code for p in plans if chat.chat_id in p.groups)
                changes.append(await _follow(row, chat, naming, now))
    return changes


async def plan_gaps() -> list[str]:
    """People the active plans name, in a level or as a deputy, who are no longer active in the
    roster. A roster load does not wait for the plans: the plans stop calling them and their
    chats drop them, so the load names them, and whoever keeps the plans can mend the files.
    Only the named people are read, not the roster."""
    named = {(plan.code, level.name): list(dict.fromkeys(
                 [*level.people, *(p for pair in level.deputies for p in pair)]))
             for plan in await Plan.filter(active=True).order_by("code")
             for level in _stored_levels(plan)}
    everyone = {p for people in named.values() for p in people}
    active = set(await User.filter(id__in=everyone, active=True).values_list("id", flat=True))
    gaps = []
    for (plan, level), people in named.items():
        gone = [person for person in people if person not in active]
        if gone:
            gap = (f"plan {plan}, level {level}: {', '.join(map(show, gone))} "
                   "named but no longer in the roster; the plan does not call them")
            log.warning(gap, extra={"plan": plan})
            gaps.append(gap)
    return gaps


def _stored_levels(plan: Plan) -> list[Level]:
    """A plan row's levels as the file gave them (its column keeps them as JSON), highest first."""
    return [level for name in plan.level_names if (level := plan.level(name)) is not None]


async def _follow(row: GroupChat, wanted: GroupCreate, plans: tuple[str, ...], now: datetime
                  ) -> ChatChange:
    """Queue one chat's difference, or say why not. The owner stays while the plans still call
    them: a chat changes hands only when its owner leaves it (to the commander the chat would be
    created with now). A change WeCom refused for good (the app not visible to everyone, say) is
    not taken as done: the next load starts from the chat as it was, and creates a chat whose
    creation was refused."""
    if not _fits(wanted):
        change = ChatChange(row.chat_id, plans, calls=len(wanted.members))
        log.warning(change.summary(), extra={"chat_id": row.chat_id, "plans": list(plans),
                                             "people": len(wanted.members)})
        return change
    last = await OutboxMessage.get_or_none(idempotency_key=row.last_key)
    if last is not None and last.status is OutboxStatus.PENDING:
        # The outbox sends a chat's create and updates in no particular order: an update sent
        # before the change it builds on would fail (86003) or be undone.
        return ChatChange(row.chat_id, plans, waiting=True)
    refused = last is not None and await OutboxDelivery.filter(
        message_id=last.id, status__in=(DeliveryStatus.FAILED, DeliveryStatus.INVALID)).exists()
    before = last.message if refused and last is not None else None
    if isinstance(before, GroupCreate):
        return await _change(row, wanted, wanted, now, ChatChange(
            row.chat_id, plans, added=len(wanted.members), refused="create"))
    current = _undone(row.members, before) if isinstance(before, GroupUpdate) else row.members
    members = set(wanted.members)
    add = tuple(p for p in wanted.members if p not in current)
    remove = tuple(p for p in current if p not in members)
    owner = "" if row.owner in members else wanted.owner
    if before is not None:
        # The refused change may have handed the chat over: name its owner again.
        owner = owner or row.owner
    elif not add and not remove:
        return ChatChange(row.chat_id, plans)
    update = GroupUpdate(row.chat_id, add=add, remove=remove, owner=owner)
    return await _change(row, wanted, update, now, ChatChange(
        row.chat_id, plans, added=len(add), removed=len(remove),
        refused="update" if before is not None else ""))


def _undone(members: Sequence[str], refused: GroupUpdate) -> list[str]:
    """A chat's members as they were before an update WeCom refused."""
    added = set(refused.add)
    return [m for m in members if m not in added] + [m for m in refused.remove
                                                      if m not in members]


async def _change(row: GroupChat, wanted: GroupCreate, message: GroupCreate | GroupUpdate,
                  now: datetime, change: ChatChange) -> ChatChange:
    """Record the chat as `wanted` and queue `message`, its next change; of two loads that find
    a change at the same moment, one queues it."""
    version = row.version + 1
    won = await GroupChat.filter(chat_id=row.chat_id, version=row.version).update(
        members=list(wanted.members), owner=message.owner or row.owner, version=version,
        changed_at=now)
    if not won:
        return ChatChange(row.chat_id, change.plans, waiting=True)  # another load was first
    await enqueue(change_key(row.chat_id, version), message, now=now, platform=row.platform,
                  to_chat=row.chat_id)
    return change
