"""The qualification rules from their two files, config/certificates.toml and
config/work-types.toml, checked whole at start-up (and by `check-config`): a bad entry stops the
service with one line naming it, as a bad roster or plan does."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from bot.loading import Entry, read_toml_file, show
from models.people.rules import CertificateType, Hours, Post, QualificationRules, WorkType

HOLDERS = ("person", "contractor")


class QualificationConfigError(Exception):
    """A certificates or work-types file that cannot be used; the message names the entry."""


def load_rules(certificates: Path, work_types: Path) -> QualificationRules:
    types_data = _toml(certificates)
    work_data = _toml(work_types)
    _only(types_data, ("reminder_days", "types"), certificates)
    _only(work_data, ("crew_max", "hours", "major", "contractors", "work_types", "posts"),
          work_types)
    types = {}
    for i, raw in enumerate(_list(types_data, "types", certificates)):
        t = _entry(f"{certificates.name}: types[{i}]", raw, CertificateType)
        kind = CertificateType(
            code=t.required("code", 32), name=t.required("name", 60),
            family=t.required("family", 40), valid_years=_positive(t, "valid_years"),
            review_years=_positive(t, "review_years", required=False),
            review_window_days=_positive(t, "review_window_days", required=False) or 60,
            special=_flag(t, "special"), holder=t.optional("holder") or "person")
        t.choices("holder", kind.holder, HOLDERS)
        if kind.code in types:
            t.fail(f"code {show(kind.code)} is used twice")
        types[kind.code] = kind
    days = types_data.get("reminder_days", [60, 30, 7])
    if not isinstance(days, list) or not days or not all(
            isinstance(d, int) and 0 < d <= 366 for d in days):
        raise QualificationConfigError(f"{certificates.name}: reminder_days must be a list of "
                                       "days between 1 and 366")
    work = {}
    for i, raw in enumerate(_list(work_data, "work_types", work_types)):
        t = _entry(f"{work_types.name}: work_types[{i}]", raw, WorkType)
        kind_ = WorkType(name=t.required("name", 32), aliases=t.strings("aliases"),
                         certificates=_requirements(t, types), trainings=t.strings("trainings"),
                         permit=t.optional("permit", 32) or "")
        if kind_.name in work:
            t.fail(f"name {show(kind_.name)} is used twice")
        work[kind_.name] = kind_
    posts = {}
    for i, raw in enumerate(_list(work_data, "posts", work_types)):
        t = _entry(f"{work_types.name}: posts[{i}]", raw, Post)
        post = Post(name=t.required("name", 32), work_types=t.strings("work_types"),
                    hours=_hours(t.where, t.raw["hours"]) if "hours" in t.raw else None)
        for name in post.work_types:
            if name not in work:
                t.fail(f"work type {show(name)} is not in work_types")
        posts[post.name] = post
    hours = work_data.get("hours", {})
    roles = hours.get("roles", {}) if isinstance(hours, dict) else {}
    major = work_data.get("major", {})
    entry = work_data.get("contractors", {})
    crew_max = work_data.get("crew_max", 20)
    if not isinstance(crew_max, int) or not 1 <= crew_max <= 50:
        raise QualificationConfigError(f"{work_types.name}: crew_max must be 1 to 50")
    return QualificationRules(
        certificates=types, work_types=work, posts=posts,
        hours=_hours(f"{work_types.name}: hours",
                     {k: v for k, v in hours.items() if k != "roles"}),
        role_hours={role: _hours(f"{work_types.name}: hours.roles.{role}", value)
                    for role, value in roles.items()},
        reminder_days=tuple(sorted(set(days), reverse=True)), crew_max=crew_max,
        major_category=str(major.get("category", "D09")), major_basis=str(major.get("basis", "")),
        contractor_course=str(entry.get("entry_course", "")))


def _toml(path: Path) -> dict[str, Any]:
    return read_toml_file(path, QualificationConfigError)


def _only(data: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise QualificationConfigError(f'{path.name}: unknown key "{unknown[0]}"; expected '
                                       f"{', '.join(keys)}")


def _list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise QualificationConfigError(f'{path.name}: "{key}" must be an array of tables '
                                       f"([[{key}]])")
    return value


def _entry(where: str, raw: object, shape: type) -> Entry:
    allowed = [f.name for f in fields(shape)]
    return Entry(where, raw, allowed, error=QualificationConfigError, shape="a table")


def _positive(t: Entry, key: str, *, required: bool = True) -> int:
    value = t.raw.get(key)
    if value is None and not required:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        t.fail(f"{key} must be a whole number above 0")
    return value


def _flag(t: Entry, key: str) -> bool:
    value = t.raw.get(key, False)
    if not isinstance(value, bool):
        t.fail(f"{key} must be true or false")
    return value


def _requirements(t: Entry, types: dict[str, CertificateType]) -> tuple[tuple[str, ...], ...]:
    raw = t.raw.get("certificates", [])
    if not isinstance(raw, list):
        t.fail("certificates must be a list")
    found = []
    for item in raw:
        codes = [item] if isinstance(item, str) else item
        if not isinstance(codes, list) or not codes or not all(
                isinstance(c, str) for c in codes):
            t.fail("certificates must list type codes, or lists of codes any one of which "
                   "will do")
        for code in codes:
            if code not in types or types[code].holder != "person":
                t.fail(f"certificate type {show(code)} is not a person's type in "
                       "certificates.toml")
        found.append(tuple(codes))
    return tuple(found)


def _hours(where: str, raw: object) -> Hours:
    if not isinstance(raw, dict) or set(raw) - {"prejob", "yearly"} or not all(
            isinstance(raw.get(k), int | float) and not isinstance(raw.get(k), bool)
            and raw[k] >= 0 for k in ("prejob", "yearly")):
        raise QualificationConfigError(f"{where}: must be {{ prejob = N, yearly = N }} "
                                       "in hours, 0 or more")
    return Hours(float(raw["prejob"]), float(raw["yearly"]))


def shipped_rules() -> QualificationRules:
    """The rules of the files shipped in the package (for a roster loaded without settings)."""
    from bot.settings import SHIPPED_CONFIG

    return load_rules(SHIPPED_CONFIG / "certificates.toml", SHIPPED_CONFIG / "work-types.toml")
