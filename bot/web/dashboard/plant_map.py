"""The risk map (风险地图) and the monthly reports as files.

The map is the site plan with each area's outline filled by its dynamic status (高/中/低) and its
inherent colour (四色) on a badge of its own: two attributes, two palettes that share no colour
(DESIGN §4). The page draws the outlines from the site file; the panel of an area (its open
tickets as the viewer may see them, its last inspection, the rule behind its status) comes from
`/dashboard/api/map`.

The reports page lists the months with tickets; each month's three files (the summary, the chart
and the ledger) are built on request by the monthly report's own code, in a folder of their own
that is gone once the file is sent."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from bot.web.dashboard import Dashboard
from bot.web.dashboard.export import send_file
from bot.web.dashboard.gate import Visit
from bot.web.dashboard.render import json
from bot.web.dashboard.site import Site, load_site
from models.closure import month_window
from models.dashboard.access import refused
from models.dashboard.heatmap import heatmap, placed_checkpoints
from models.dashboard.reports import months_with_tickets
from models.org import every_area
from scheduler.monthly import write_monthly

# The dynamic status's words, and the CSS class of each (one palette: dashboard.css).
STATUS_CLASSES = {"高": "status-high", "中": "status-medium", "低": "status-low",
                  "": "status-none"}
STATUS_LABELS = {"高": "高", "中": "中", "低": "低", "": "未评估"}
# The inherent colour's badge classes (the other palette).
COLOR_CLASSES = {"红": "inherent-red", "橙": "inherent-orange", "黄": "inherent-yellow",
                 "蓝": "inherent-blue"}
REPORT_FILES = {"md": "text/markdown; charset=utf-8", "png": "image/png",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def routes(d: Dashboard) -> list[web.AbstractRouteDef]:
    m = PlantMap(d, load_site(Path(d.settings.dashboard.site_file)))
    gate = d.gate
    return [web.get("/dashboard/map", gate.page(m.page)),
            web.get("/dashboard/api/map", gate.call(m.data)),
            web.get("/dashboard/map/plan", gate.call(m.plan)),
            web.get("/dashboard/reports", gate.page(m.reports)),
            web.get(r"/dashboard/reports/{month}.{ext:md|png|xlsx}", gate.call(m.report_file))]


class PlantMap:
    def __init__(self, d: Dashboard, site: Site) -> None:
        self.d = d
        self.site = site

    @property
    def inspection(self) -> bool:
        return "inspection" in self.d.modules

    # --- the map -------------------------------------------------------------------------------

    async def page(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        areas = {a.code: a for a in await every_area()}
        drawn = []
        for o in self.site.outlines:
            area = areas.get(o.code)
            if area is None:
                continue
            right = max(x for x, _ in o.polygon)        # the badge: the top right corner
            top = min(y for _, y in o.polygon)
            drawn.append({"code": o.code, "name": area.name, "points": o.points,
                          "centre": o.centre, "badge": (right - 28, top + 4),
                          "status": STATUS_LABELS.get(area.risk_status, area.risk_status),
                          "status_class": STATUS_CLASSES.get(area.risk_status, "status-none"),
                          "inherent": area.risk_color.value,
                          "inherent_class": COLOR_CLASSES[area.risk_color.value]})
        placed = {o.code for o in self.site.outlines}
        return self.d.page(
            "map.html", visit, "/dashboard/map", "风险地图", site=self.site, drawn=drawn,
            unplaced=[a for code, a in areas.items() if code not in placed],
            problems=self.site.unknown_areas(areas), statuses=STATUS_CLASSES,
            status_labels=STATUS_LABELS, colors=COLOR_CLASSES,
            checkpoints=await placed_checkpoints() if self.inspection else [])

    async def data(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        now = self.d.clock()
        pictures = await heatmap(visit.viewer, now, inspection=self.inspection)
        outlines = {o.code: o for o in self.site.outlines}
        areas = []
        for p in pictures:
            outline = outlines.get(p.code)
            areas.append({
                "code": p.code, "name": p.name,
                "inherent": p.inherent, "status": p.status,
                "status_label": STATUS_LABELS.get(p.status, p.status), "reason": p.reason,
                "status_at": p.status_at,
                "polygon": [list(c) for c in outline.polygon] if outline else None,
                "open": p.open, "major": p.major, "overdue": p.overdue,
                "tickets": [{**t, "href": f"/dashboard/tickets/{t['id']}"} for t in p.tickets],
                "last_inspection": p.last_inspection})
        body = {"width": self.site.width, "height": self.site.height,
                "plan": "/dashboard/map/plan", "inspection": self.inspection, "areas": areas,
                "checkpoints": [{"code": c.code, "name": c.name, "area": c.area,
                                 "point": list(c.point)}
                                for c in (await placed_checkpoints() if self.inspection else [])],
                "problems": self.site.unknown_areas({p.code for p in pictures})}
        return json(body)

    async def plan(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        return await send_file(request, self.site.plan, {
            "Content-Type": self.site.plan_type, "Cache-Control": "private, max-age=3600",
            # An SVG opened by itself runs no script and loads nothing from elsewhere.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "sandbox", "X-Content-Type-Options": "nosniff"})

    # --- the monthly reports -------------------------------------------------------------------

    async def reports(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        if not visit.viewer.whole_plant:
            await refused(visit.viewer, "reports", self.d.clock())
            return self.d.refusal(visit, "月报仅对主要负责人和安全管理员开放。")
        months = await months_with_tickets(self.d.settings.tz)
        month, ext = request.query.get("month", ""), request.query.get("file", "md")
        if not month:
            return self.d.page("reports.html", visit, "/dashboard/reports", "月报",
                               months=months, month="", error="")
        try:
            month_window(month, self.d.settings.tz)
            if ext not in REPORT_FILES:
                raise ValueError(f"file must be one of {', '.join(REPORT_FILES)}")
        except ValueError as wrong:
            return self.d.page("reports.html", visit, "/dashboard/reports", "月报", status=400,
                               months=months, month=month, error=f"无法生成：{wrong}")
        raise web.HTTPFound(f"/dashboard/reports/{month}.{ext}")

    async def report_file(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        month, ext = request.match_info["month"], request.match_info["ext"]
        if not visit.viewer.whole_plant:
            await refused(visit.viewer, f"report:{month}", self.d.clock())
            return web.json_response({"error": "the monthly reports are not yours to see"},
                                     status=403)
        try:
            month_window(month, self.d.settings.tz)
        except ValueError as wrong:
            return web.json_response({"error": str(wrong), "field": "month"}, status=400)
        folder = await asyncio.to_thread(tempfile.mkdtemp, prefix=f"monthly-{month}-")
        try:
            paths = await write_monthly(month, self.d.settings.tz, self.d.catalog,
                                        Path(folder))
            path = next(p for p in paths if p.suffix == f".{ext}")
            return await send_file(request, path, {
                "Content-Type": REPORT_FILES[ext],
                "Content-Disposition": _attachment(path.name, f"monthly-{month}.{ext}")})
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)


def _attachment(name: str, plain: str) -> str:
    """A file name in Chinese, with an ASCII one for clients that read only that (RFC 6266)."""
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"
