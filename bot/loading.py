"""Configuration files loaded into the database (the roster, the emergency plans): what they
share.

`Entry` reads one TOML table and names it in every error, so a refused file says where it went
wrong on one line. `Journal` writes a row only when it differs and audits each write, so loading
the same file again writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from tortoise import fields as orm_fields
from tortoise.models import Model

from models.audit import record

M = TypeVar("M", bound=Model)
_TOML_TYPES = {str: "a string", int: "an integer", float: "a float", bool: "a boolean",
               list: "an array", dict: "a table"}


def show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def limit(model: type[Model], key: str) -> int:
    """The column's width, so that a long value is refused here and not by PostgreSQL."""
    field = model._meta.fields_map[key]
    assert isinstance(field, orm_fields.CharField)
    return field.max_length


async def read_file(path: Path, what: str, error: Callable[[str], Exception]) -> str:
    """A file's text; one that cannot be read, or is not UTF-8, is `error` naming it as `what`
    ("the roster")."""
    try:
        return await asyncio.to_thread(path.read_text, encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (byte {exc.start})") from None


def read_toml_file(path: Path, error: Callable[[str], Exception]) -> dict[str, Any]:
    """A rules file read whole; one that cannot be read or parsed is `error` naming it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path.name}: not valid TOML: {exc}") from None


def toml_type(value: object) -> str:
    return _TOML_TYPES.get(type(value), "a date")


class Entry:
    """One TOML table and where it is in its file, for error messages."""

    def __init__(self, where: str, raw: object, allowed: Sequence[str], *,
                 error: type[Exception], shape: str) -> None:
        self.where = where
        self.error = error
        if not isinstance(raw, dict):
            self.fail(f"must be a table ({shape})")
        self.raw: dict[str, Any] = raw
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            self.fail(f'unknown key "{unknown[0]}"; allowed: {", ".join(allowed)}')

    def fail(self, problem: str) -> NoReturn:
        raise self.error(f"{self.where}: {problem}")

    def required(self, key: str, limit: int | None = None) -> str:
        if key not in self.raw:
            self.fail(f'missing required key "{key}"')
        value = self.optional(key, limit)
        assert value is not None
        return value

    def optional(self, key: str, limit: int | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(f"{key} must be a string, not {toml_type(value)}")
        if not value.strip():
            self.fail(f"{key} must not be empty")
        if limit is not None and len(value) > limit:
            self.fail(f"{key} is longer than {limit} characters")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(f"{key} must be a list of non-empty strings")
        repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
        if repeated is not None:
            self.fail(f"{key} lists {show(repeated)} twice")
        return tuple(value)

    def day(self, key: str) -> date | None:
        """A TOML date (2026-12-07), or the same as a string."""
        value = self.raw.get(key)
        if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
            return value
        if not isinstance(value, str):
            self.fail(f"{key} must be a date like 2026-12-07, not {toml_type(value)}")
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{key} {show(value)} is not a date like 2026-12-07")

    def point(self, key: str) -> tuple[float, float] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                or not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180)):
            self.fail(f"{key} must be [latitude, longitude] in degrees")
        return float(value[0]), float(value[1])

    def choices(self, key: str, value: str, allowed: Sequence[str]) -> None:
        if value not in allowed:
            self.fail(f"{key} {show(value)} must be one of {'/'.join(allowed)}")


class Journal:
    """Writes rows that differ and audits each write (`{domain}.{kind}.{action}`), counting what
    it did."""

    def __init__(self, now: datetime, actor: str, domain: str) -> None:
        self.now = now
        self.actor = actor
        self.domain = domain
        self.created = self.updated = self.unchanged = self.deactivated = 0

    async def create(self, kind: str, model: type[M], pk: str, values: dict[str, Any],
                     audited: Mapping[str, Any] | None = None) -> M:
        row = await model.create(**{model._meta.pk_attr: pk, **values})
        await self._audit(kind, pk, "created", note=str(values.get("name", "")),
                          data={"after": dict(audited or values)})
        self.created += 1
        return row

    async def update(self, kind: str, row: Model, pk: str, wanted: Mapping[str, Any],
                     stamp: Mapping[str, Any] | None = None) -> None:
        """Write what differs from `wanted`; `stamp` (a load time) goes along with a change but
        is no change by itself."""
        changes = {k: v for k, v in wanted.items() if getattr(row, k) != v}
        if not changes:
            self.unchanged += 1
            return
        before = {k: getattr(row, k) for k in changes}
        await write(row, {**changes, **(stamp or {})})
        action = "reactivated" if changes.get("active") is True else "updated"
        await self._audit(kind, pk, action, note="changed: " + ", ".join(changes),
                          data={"before": before, "after": changes})
        self.updated += 1

    async def deactivate(self, kind: str, row: Model, pk: str, note: str) -> None:
        await write(row, {"active": False})
        await self._audit(kind, pk, "deactivated", note=note,
                          data={"before": {"active": True}, "after": {"active": False}})
        self.deactivated += 1

    async def _audit(self, kind: str, pk: str, action: str, note: str,
                     data: dict[str, Any]) -> None:
        # Dates (a plan's reviewed_on) as ISO text: the audit's data is JSON.
        await record(at=self.now, actor=self.actor, action=f"{self.domain}.{kind}.{action}",
                     subject_type=kind, subject_id=pk, note=note,
                     data=json.loads(json.dumps(data, default=str)))


async def write(row: Model, changes: Mapping[str, Any]) -> None:
    row.update_from_dict(dict(changes))
    await row.save(update_fields=list(changes))
