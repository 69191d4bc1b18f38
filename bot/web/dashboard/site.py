"""The risk map's site plan: `config/site/site.toml` (the setting SAFETYBOT_DASHBOARD_SITE_FILE)
names the plan image beside it and each area's polygon on that image.

The file's shape is checked when the service starts (a broken file stops it, with the entry
named). Whether each code is an area of the roster can only be known against the database, so
that is checked when the map is drawn (`unknown_areas`), and an unknown one is named on the map
instead of drawn."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bot.loading import Entry, read_toml_file, show, toml_type
from bot.settings import SettingError

SETTING = "SAFETYBOT_DASHBOARD_SITE_FILE"
IMAGES = {".svg": "image/svg+xml", ".png": "image/png"}
MIN_CORNERS = 3


class SiteError(SettingError):
    """The site file is wrong; the message names the setting, the file and the entry."""


@dataclass(frozen=True)
class Outline:
    code: str
    polygon: tuple[tuple[float, float], ...]
    where: str                      # "site.toml: area[2] (A3)", for messages

    @property
    def points(self) -> str:
        """As an SVG polygon's `points`."""
        return " ".join(f"{x:g},{y:g}" for x, y in self.polygon)

    @property
    def centre(self) -> tuple[float, float]:
        """Where its label goes: the centroid of its outline (the mean of its corners for a
        degenerate one)."""
        area = cx = cy = 0.0
        corners = self.polygon
        for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
            cross = x0 * y1 - x1 * y0
            area += cross
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
        if abs(area) < 1e-9:
            return (sum(x for x, _ in corners) / len(corners),
                    sum(y for _, y in corners) / len(corners))
        return cx / (3 * area), cy / (3 * area)


@dataclass(frozen=True)
class Site:
    plan: Path
    width: float
    height: float
    outlines: tuple[Outline, ...]

    @property
    def plan_type(self) -> str:
        return IMAGES[self.plan.suffix.lower()]

    def unknown_areas(self, codes: Collection[str]) -> list[str]:
        """The entries naming an area the roster does not have, each as a message."""
        return [f"{SETTING}: {o.where}: no area {show(o.code)} in the roster"
                for o in self.outlines if o.code not in codes]


def load_site(path: Path) -> Site:
    """The site file at `path`, checked; SiteError naming the entry when it is wrong."""
    def error(problem: str) -> SiteError:
        return SiteError(f"{SETTING}: {problem}")

    raw = read_toml_file(path, error)
    top = Entry(f"{SETTING}: {path.name}", raw, ("plan", "width", "height", "area"),
                error=SiteError, shape="plan, width, height and [[area]] tables")
    plan = path.parent / top.required("plan")
    if plan.suffix.lower() not in IMAGES:
        top.fail(f"plan {show(plan.name)} must be an .svg or .png image")
    if not plan.is_file():
        top.fail(f"plan {plan} does not exist")
    width, height = _size(top, "width"), _size(top, "height")
    areas = raw.get("area", [])
    if not isinstance(areas, list) or not areas:
        top.fail("needs at least one [[area]] table")
    outlines: list[Outline] = []
    for n, table in enumerate(areas, start=1):
        code = table.get("code") if isinstance(table, dict) else None
        where = f"{path.name}: area[{n}]" + (f" ({code})" if isinstance(code, str) else "")
        entry = Entry(f"{SETTING}: {where}", table, ("code", "polygon"), error=SiteError,
                      shape="code, polygon")
        code = entry.required("code", 32)
        if any(o.code == code for o in outlines):
            entry.fail(f"area {show(code)} has a polygon already")
        outlines.append(Outline(code, _polygon(entry, width, height), where))
    return Site(plan, width, height, tuple(outlines))


def _size(entry: Entry, key: str) -> float:
    value = entry.raw.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        entry.fail(f"{key} must be a positive number (the plan's frame), not "
                   f"{show(value) if value is not None else 'missing'}")
    return float(value)


def _polygon(entry: Entry, width: float, height: float) -> tuple[tuple[float, float], ...]:
    value = entry.raw.get("polygon")
    if not isinstance(value, list):
        entry.fail("polygon must be a list of [x, y] corners, not "
                   f"{'missing' if value is None else toml_type(value)}")
    if len(value) < MIN_CORNERS:
        entry.fail(f"polygon has {len(value)} corner{'s' if len(value) != 1 else ''}; "
                   f"an outline needs at least {MIN_CORNERS}")
    corners = []
    for n, corner in enumerate(value, start=1):
        if (not isinstance(corner, list) or len(corner) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in corner)):
            entry.fail(f"polygon's corner {n} must be [x, y] numbers, not {show(corner)}")
        x, y = float(corner[0]), float(corner[1])
        if not (0 <= x <= width and 0 <= y <= height):
            entry.fail(f"polygon's corner {n} {show(corner)} is outside the plan's "
                       f"{width:g} × {height:g} frame")
        corners.append((x, y))
    return tuple(corners)
