"""The roster import behind `safetybot load-org FILE`: the org chart from TOML into the database.

The whole file is checked before anything is written, then written in one transaction, so a bad
roster changes nothing: a half-loaded org chart would send escalations to the wrong people.
Loading is idempotent: a row is written, and audited, only when it changes. People missing from
the file are deactivated, never deleted, because tickets and the audit trail still refer to them.
Once the roster is in, the emergency plans' group chats follow it (`bot.plans.sync_chats`).

An area may name its evacuation map (疏散图), an image file beside the roster. It is checked with
the rest (there, a PNG or JPEG, within WeCom's 10 MB for an image, §4.5) and put in the media
store before the transaction, so that no area ever names a map the store lacks; the area keeps
its hash. The loader is handed the store: the emergency broadcast sends the map from there, on
any host, long after the file it came from has moved.

Beside `safetybot sync-org` (bot/org_sync.py) the file keeps only its own people (`source`
"roster"): those the sync added are neither in the file nor deactivated by it, and an entry for
one of them takes their row over. A department, supervisor or mobile an entry leaves out stays
as the sync filled it in from the platform.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.channels.registry import PLATFORMS
from bot.loading import Entry, Journal, limit, read_file, show, write
from bot.media import MediaStore, MediaUnavailable, content_type
from bot.org_sync import FILLED, ROSTER, synced_fields
from bot.people_roster import (
    CertificateEntry,
    ContractorEntry,
    certificate_entries,
    contractor_entry,
    load_people,
)
from bot.plans import ChatChange, plan_gaps, sync_chats
from bot.qualification import shipped_rules
from models import transaction
from models.org import Area, Department, RiskColor, Role, User
from models.people.certificates import CertificateError
from models.people.profiles import Profile
from models.people.rules import QualificationRules

ACTOR = "roster"
MAP_TYPES = ("image/png", "image/jpeg")   # what both platforms show as a picture (§4.5, §7.3)
MAP_MAX_BYTES = 10 * 1024 * 1024           # WeCom's media/upload, image (§4.5); DingTalk: 20 MB


class RosterError(Exception):
    """A roster that cannot be loaded; the message names the entry, on one line."""


@dataclass(frozen=True)
class DepartmentEntry:
    id: str
    name: str


@dataclass(frozen=True)
class UserEntry:
    id: str
    name: str
    department: str | None = None
    roles: tuple[Role, ...] = ()
    supervisor: str | None = None  # the next level up; escalation follows this chain
    mobile: str = ""
    platform: str = ""             # where their notices go; "" = the first platform switched on
    platform_id: str = ""          # their id there, when it is not `id`
    # The person's file (一人一档): post, dates, the contractor they work for, certificates.
    post: str = ""
    hired_on: date | None = None
    post_since: date | None = None
    contractor: str | None = None
    certificates: tuple[CertificateEntry, ...] = ()

    @property
    def address(self) -> tuple[str, str]:
        """(platform, id there): unique in a roster, so an event finds one person."""
        return self.platform, self.platform_id or self.id


@dataclass(frozen=True)
class AreaEntry:
    code: str
    name: str
    aliases: tuple[str, ...] = ()
    owner: str | None = None  # default rectifier (整改责任人)
    reviewer: str | None = None  # default reviewer (复查人)
    risk_color: RiskColor = RiskColor.BLUE
    groups: tuple[str, ...] = ()  # group chat ids for area announcements
    location: tuple[float, float] | None = None  # (latitude, longitude), for location messages
    cameras: tuple[tuple[str, str], ...] = ()  # (name, URL on the plant's video platform)
    map: str | None = None  # the evacuation map's image file, relative to the roster's folder


@dataclass(frozen=True)
class Roster:
    departments: tuple[DepartmentEntry, ...]
    users: tuple[UserEntry, ...]
    areas: tuple[AreaEntry, ...]
    contractors: tuple[ContractorEntry, ...] = ()


@dataclass(frozen=True)
class RosterReport:
    """What a load did; departments, users and areas count the entries in the file, `chats`
    says what became of each plan's group chats, `gaps` whom the plans name but can no longer
    call."""

    departments: int
    users: int
    areas: int
    created: int
    updated: int
    unchanged: int
    deactivated: int
    chats: tuple[ChatChange, ...] = ()
    gaps: tuple[str, ...] = ()

    def summary(self) -> str:
        return (
            f"{self.departments} departments, {self.users} users, {self.areas} areas: "
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deactivated} deactivated"
        )


# ---------------------------------------------------------------------------------------------
# Parsing: pure, and complete before anything touches the database

_SECTIONS = {"departments": "id", "users": "id", "areas": "code",  # section -> its key
             "contractors": "id"}


def parse_roster(text: str) -> Roster:
    """Check every rule a load relies on, so that writing can no longer fail halfway."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise RosterError(f'unknown section "{unknown[0]}"; expected {", ".join(_SECTIONS)}')
    roster = Roster(
        departments=tuple(_department(t) for t in _tables(data, "departments", DepartmentEntry)),
        users=tuple(_user(t) for t in _tables(data, "users", UserEntry)),
        areas=tuple(_area(t) for t in _tables(data, "areas", AreaEntry)),
        contractors=tuple(contractor_entry(t) for t in _tables(data, "contractors",
                                                          ContractorEntry)),
    )
    if not roster.users:
        # An empty or truncated file would otherwise deactivate everyone.
        raise RosterError("the roster lists no users ([[users]])")
    _check_unique("departments", [d.id for d in roster.departments])
    _check_unique("users", [u.id for u in roster.users])
    _check_addresses(roster.users)
    _check_unique("areas", [a.code for a in roster.areas])
    _check_unique("contractors", [c.id for c in roster.contractors])
    _check_certificate_numbers(roster)
    _check_area_labels(roster.areas)
    _check_references(roster)
    _check_chain(roster.users)
    return roster


def _at(section: str, index: int, ident: object = None) -> str:
    """`users[3] (id="zhaoliu")`: where an entry is, in the file's own terms (0-based)."""
    where = f"{section}[{index}]"
    if isinstance(ident, str) and ident:
        where += f" ({_SECTIONS[section]}={show(ident)})"
    return where


def _tables(data: Mapping[str, Any], section: str, entry: type) -> list[Entry]:
    raw = data.get(section, [])
    if not isinstance(raw, list):
        raise RosterError(f'"{section}" must be an array of tables ([[{section}]])')
    allowed = [f.name for f in fields(entry)]
    key = _SECTIONS[section]
    return [Entry(_at(section, i, item.get(key) if isinstance(item, dict) else None),
                  item, allowed, error=RosterError, shape=f"[[{section}]]")
            for i, item in enumerate(raw)]


def _department(t: Entry) -> DepartmentEntry:
    return DepartmentEntry(
        id=t.required("id", limit(Department, "id")),
        name=t.required("name", limit(Department, "name")),
    )


def _user(t: Entry) -> UserEntry:
    roles = t.strings("roles")
    for role in roles:
        t.choices("role", role, [r.value for r in Role])
    return UserEntry(
        id=t.required("id", limit(User, "id")),
        name=t.required("name", limit(User, "name")),
        department=t.optional("department"),
        roles=tuple(Role(r) for r in roles),
        supervisor=t.optional("supervisor"),
        mobile=t.optional("mobile", limit(User, "mobile")) or "",
        platform=_platform(t),
        platform_id=t.optional("platform_id", limit(User, "platform_id")) or "",
        post=t.optional("post", limit(Profile, "post")) or "",
        hired_on=t.day("hired_on"),
        post_since=t.day("post_since"),
        contractor=t.optional("contractor"),
        certificates=certificate_entries(t, "certificates"),
    )


def _platform(t: Entry) -> str:
    platform = t.optional("platform") or ""
    if platform:
        t.choices("platform", platform, PLATFORMS)
    return platform


def _area(t: Entry) -> AreaEntry:
    color = t.raw.get("risk_color", RiskColor.BLUE.value)
    t.choices("risk_color", color, [c.value for c in RiskColor])
    return AreaEntry(
        code=t.required("code", limit(Area, "code")),
        name=t.required("name", limit(Area, "name")),
        aliases=t.strings("aliases"),
        owner=t.optional("owner"),
        reviewer=t.optional("reviewer"),
        risk_color=RiskColor(color),
        groups=t.strings("groups"),
        location=t.point("location"),
        cameras=_cameras(t),
        map=t.optional("map"),
    )


_CAMERA_URL = re.compile(r"https?://[^\s()<>\[\]]+")


def _cameras(t: Entry) -> tuple[tuple[str, str], ...]:
    """`cameras = [{ name = "东门", url = "https://…" }]`: links the broadcast and the
    commander's board carry; a URL that a markdown link would break is refused."""
    raw = t.raw.get("cameras", [])
    if not isinstance(raw, list):
        t.fail("cameras must be a list of { name, url } tables")
    cameras = []
    for n, camera in enumerate(raw, 1):
        name, url = (camera.get("name"), camera.get("url")) if isinstance(camera, dict) else (
            None, None)
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 30 or not isinstance(
                url, str) or not _CAMERA_URL.fullmatch(url) or set(camera) - {"name", "url"}:
            t.fail(f"cameras[{n}] must be {{ name = \"…\" (30 characters at most), url = "
                   "\"https://…\" (no spaces or brackets) }")
        cameras.append((name.strip(), url))
    return tuple(cameras)


def _check_unique(section: str, idents: list[str]) -> None:
    first: dict[str, int] = {}
    for i, ident in enumerate(idents):
        if ident in first:
            raise RosterError(
                f"{_at(section, i, ident)}: {_SECTIONS[section]} {show(ident)} "
                f"is already used by {section}[{first[ident]}]"
            )
        first[ident] = i


def _check_certificate_numbers(roster: Roster) -> None:
    """A certificate's number is its identity within its type: one holder each."""
    first: dict[tuple[str, str], str] = {}
    held = [(f"users[{i}]", c) for i, u in enumerate(roster.users) for c in u.certificates]
    held += [(f"contractors[{i}]", c) for i, k in enumerate(roster.contractors)
             for c in k.documents]
    for where, c in held:
        if (c.type, c.number) in first:
            raise RosterError(f"{where}: certificate {show(c.type)} number {show(c.number)} "
                              f"is already held by {first[(c.type, c.number)]}")
        first[(c.type, c.number)] = where


def _check_addresses(users: Sequence[UserEntry]) -> None:
    """Two people with one id on one platform: a message from it could be either."""
    first: dict[tuple[str, str], int] = {}
    for i, user in enumerate(users):
        if user.address in first:
            j = first[user.address]
            raise RosterError(f"{_at('users', i, user.id)}: {show(user.address[1])} on "
                              f"{user.platform or 'the first platform'} is already "
                              f"{_at('users', j, users[j].id)}")
        first[user.address] = i


def _check_area_labels(areas: Sequence[AreaEntry]) -> None:
    """Names and aliases are one namespace: "三号车间" in a report must find exactly one area."""
    claimed: dict[str, tuple[int, str]] = {}
    for i, area in enumerate(areas):
        for kind, label in [("name", area.name), *(("alias", a) for a in area.aliases)]:
            if label in claimed:
                j, other_kind = claimed[label]
                owner = "the area's own name" if j == i else (
                    f"the {other_kind} of {_at('areas', j, areas[j].code)}"
                )
                raise RosterError(f"{_at('areas', i, area.code)}: {kind} {show(label)} "
                                  f"is already {owner}")
            claimed[label] = (i, kind)


def _check_references(roster: Roster) -> None:
    departments = {d.id for d in roster.departments}
    users = {u.id for u in roster.users}

    def resolve(where: str, key: str, ref: str | None, known: set[str]) -> None:
        if ref is not None and ref not in known:
            raise RosterError(f"{where}: {key} {show(ref)} is not in the roster")

    for i, user in enumerate(roster.users):
        where = _at("users", i, user.id)
        resolve(where, "department", user.department, departments)
        if user.supervisor == user.id:
            raise RosterError(f"{where}: a user cannot supervise themself")
        resolve(where, "supervisor", user.supervisor, users)
        resolve(where, "contractor", user.contractor, {c.id for c in roster.contractors})
    for i, area in enumerate(roster.areas):
        resolve(_at("areas", i, area.code), "owner", area.owner, users)
        resolve(_at("areas", i, area.code), "reviewer", area.reviewer, users)


def _check_chain(users: Sequence[UserEntry]) -> None:
    """Escalation walks the supervisor chain upwards; a loop would never reach the top."""
    index = {u.id: i for i, u in enumerate(users)}
    supervisor = {u.id: u.supervisor for u in users}
    ends_at_top: set[str] = set()
    for user in users:
        path: list[str] = []
        node = user.id
        while node not in ends_at_top:
            if node in path:
                loop = path[path.index(node):]
                start = loop.index(min(loop, key=index.__getitem__))
                loop = loop[start:] + loop[:start]
                raise RosterError(f"{_at('users', index[loop[0]], loop[0])}: supervisor cycle "
                                  f"{' -> '.join([*loop, loop[0]])}")
            path.append(node)
            above = supervisor[node]
            if above is None:
                break
            node = above
        ends_at_top.update(path)


# ---------------------------------------------------------------------------------------------
# Loading: one transaction, writes only for what changed, one audit event per write


async def load_org(path: Path, now: datetime, media: MediaStore,
                   rules: QualificationRules | None = None) -> RosterReport:
    """Make the database match the roster file, then the plans' chats match the roster; loading
    the same file again writes and queues nothing. The areas' maps go into `media`; the
    certificates are read by `rules` (the shipped certificate types by default)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    roster = parse_roster(await read_file(path, "the roster", RosterError))
    maps = await _keep_maps(roster.areas, path.parent, media)
    journal = Journal(now, ACTOR, "org")
    async with transaction():
        areas = {a.code: a for a in await Area.all()}
        _check_areas_left_out(roster.areas, areas)
        await _load_departments(roster.departments, journal)
        await _load_users(roster.users, journal)
        await _load_areas(roster.areas, areas, maps, journal)
        try:
            await load_people(roster.users, roster.contractors, rules or shipped_rules(),
                              journal)
        except CertificateError as exc:
            raise RosterError(str(exc)) from None
    # After the commit: the roster is the plant's HR data, and no chat may hold it back.
    chats = await sync_chats(now)
    return RosterReport(
        departments=len(roster.departments), users=len(roster.users), areas=len(roster.areas),
        created=journal.created, updated=journal.updated, unchanged=journal.unchanged,
        deactivated=journal.deactivated, chats=tuple(chats), gaps=tuple(await plan_gaps()),
    )


async def _keep_maps(entries: Sequence[AreaEntry], folder: Path, media: MediaStore
                     ) -> dict[str, str]:
    """Each area's map checked and put in the media store: its hash by area code. Every map is
    read and checked before the first is kept."""
    images: dict[str, bytes] = {}
    for i, entry in enumerate(entries):
        if entry.map is not None:
            images[entry.code] = await _read_map(folder, entry.map, _at("areas", i, entry.code))
    try:
        return {code: await media.put(data) for code, data in images.items()}
    except (MediaUnavailable, OSError) as exc:
        raise RosterError(f"cannot keep the evacuation maps in the media store "
                          f"{media.url}: {exc}") from None


async def _read_map(folder: Path, name: str, where: str) -> bytes:
    path = folder / name
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > MAP_MAX_BYTES:
            raise RosterError(f"{where}: map {show(name)} is {size / 1024 / 1024:.1f} MB; "
                              f"an image may be {MAP_MAX_BYTES // 1024 // 1024} MB at most")
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise RosterError(f"{where}: map {show(name)}: {exc.strerror or exc}") from None
    if content_type(data[:16]) not in MAP_TYPES:
        raise RosterError(f"{where}: map {show(name)} is not a PNG or JPEG image")
    return data


async def _load_departments(entries: Sequence[DepartmentEntry], journal: Journal) -> None:
    rows = {d.id: d for d in await Department.all()}
    for entry in entries:
        wanted = {"name": entry.name}
        row = rows.get(entry.id)
        if row is None:
            await journal.create("department", Department, entry.id, wanted)
        else:
            await journal.update("department", row, entry.id, wanted)


async def _load_users(entries: Sequence[UserEntry], journal: Journal) -> None:
    """Two passes: a supervisor may be a later entry, and the foreign key needs its row."""
    rows = {u.id: u for u in await User.all()}
    wanted = {
        e.id: {"name": e.name, "department_id": e.department, "roles": [r.value for r in e.roles],
               "supervisor_id": e.supervisor, "mobile": e.mobile, "active": True,
               "platform": e.platform, "platform_id": e.platform_id, "source": ROSTER}
        for e in entries
    }
    left_out = [user_id for user_id, values in wanted.items() if user_id in rows and any(
        not values[key] and getattr(rows[user_id], key) for key in FILLED)]
    for user_id, keys in (await synced_fields(left_out)).items():
        wanted[user_id].update({key: getattr(rows[user_id], key) for key in FILLED
                                if key in keys and not wanted[user_id][key]})
    new = [e.id for e in entries if e.id not in rows]
    for user_id in new:
        values = {**wanted[user_id], "supervisor_id": None}
        rows[user_id] = await journal.create("user", User, user_id, values, wanted[user_id])
    for entry in entries:
        row = rows[entry.id]
        if entry.id not in new:
            await journal.update("user", row, entry.id, wanted[entry.id])
        elif entry.supervisor is not None:
            await write(row, {"supervisor_id": entry.supervisor})  # audited when created
    for row in rows.values():
        if row.id not in wanted and row.active and row.source == ROSTER:
            await journal.deactivate("user", row, row.id, "not in the roster")


def _check_areas_left_out(entries: Sequence[AreaEntry], rows: Mapping[str, Area]) -> None:
    """Areas missing from the file stay (tickets refer to them), so their names stay taken."""
    listed = {e.code for e in entries}
    taken = {label: row.code for row in rows.values() if row.code not in listed
             for label in (row.name, *row.aliases)}
    for i, entry in enumerate(entries):
        for label in (entry.name, *entry.aliases):
            if label in taken:
                raise RosterError(
                    f"{_at('areas', i, entry.code)}: {show(label)} already names area "
                    f"{show(taken[label])}, which is in the database but not in this file"
                )


async def _load_areas(entries: Sequence[AreaEntry], rows: Mapping[str, Area],
                      maps: Mapping[str, str], journal: Journal) -> None:
    for entry in entries:
        row = rows.get(entry.code)
        if row is not None and row.name != entry.name:
            # Names are unique: park the old name so that two areas can swap names in one load.
            await Area.filter(code=entry.code).update(name=f"(renaming {entry.code})")
    for entry in entries:
        wanted = {"name": entry.name, "aliases": list(entry.aliases), "owner_id": entry.owner,
                  "reviewer_id": entry.reviewer, "risk_color": entry.risk_color,
                  "groups": list(entry.groups),
                  "latitude": entry.location[0] if entry.location else None,
                  "longitude": entry.location[1] if entry.location else None,
                  "cameras": [{"name": n, "url": u} for n, u in entry.cameras] or None,
                  "map_digest": maps.get(entry.code)}
        row = rows.get(entry.code)
        if row is None:
            await journal.create("area", Area, entry.code, wanted)
        else:
            await journal.update("area", row, entry.code, wanted)
