"""The overview (live), the ledger with its export, a ticket with its photos and record, and the
monthly reports as files. Every handler is behind the gate; what it reads is the viewer's
(`visible_tickets`), and a ticket or photo outside it is refused (403) and recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.media import MediaMissing, content_type
from bot.web.dashboard import Dashboard
from bot.web.dashboard.export import send_file, write_ledger
from bot.web.dashboard.gate import Visit
from bot.web.dashboard.live import Live
from bot.web.dashboard.render import json
from models.audit import history
from models.dashboard.access import Scope, Viewer, refused, visible_tickets
from models.dashboard.ledger import FilterError, ledger_page, parse_filter
from models.dashboard.overview import Overview, overview
from models.escalation import fired
from models.hazard import ACTION_WORDS, ACTIVE, LABELS, PLAN_FIELDS, Ticket
from models.org import area_names, every_area, user_names

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OVERVIEW_SECONDS = 2.0      # figures shared by the viewers of one kind for this long, unless
                            # the live loop sees a change first


def routes(d: Dashboard) -> list[web.AbstractRouteDef]:
    p = Pages(d)
    gate = d.gate
    return [web.get("/dashboard", gate.page(p.overview)),
            web.get("/dashboard/api/overview", gate.call(p.overview_json)),
            web.get("/dashboard/live", gate.call(p.live_stream)),
            web.get("/dashboard/ledger", gate.page(p.ledger)),
            web.get("/dashboard/ledger.xlsx", gate.call(p.export)),
            web.get("/dashboard/tickets/{id:\\d+}", gate.page(p.ticket)),
            web.get("/dashboard/tickets/{id:\\d+}/photos/{digest:[0-9a-f]{64}}",
                    gate.call(p.photo))]


class Pages:
    def __init__(self, d: Dashboard) -> None:
        self.d = d
        self.live = Live()
        # Per kind of viewer: when computed, the live version it saw, and the figures (or the
        # computation under way, which the viewers asking meanwhile share).
        self._cache: dict[tuple[Any, ...], tuple[float, int, asyncio.Future[Overview]]] = {}

    # --- the overview --------------------------------------------------------------------------

    async def figures(self, viewer: Viewer) -> Overview:
        """The viewer's figures, computed once for all the viewers of a kind asking within
        OVERVIEW_SECONDS (two hundred screens told of a change at the same instant cost one
        computation); never older than the last change the live updates announced."""
        key = (viewer.scope, viewer.departments,
               viewer.id if viewer.scope is Scope.OWN else "")
        kept = self._cache.get(key)
        if kept is not None and kept[1] == self.live.version and (
                not kept[2].done() or time.monotonic() - kept[0] < OVERVIEW_SECONDS):
            return await asyncio.shield(kept[2])
        version = self.live.version
        names = {c.code: c.name for c in self.d.catalog.categories}
        task = asyncio.ensure_future(overview(viewer, self.d.clock(), self.d.settings.tz, names))
        self._cache[key] = (time.monotonic(), version, task)

        def settled(done: asyncio.Future[Overview]) -> None:
            failed = done.cancelled() or done.exception() is not None
            if self._cache.get(key, (0.0, 0, None))[2] is not done:
                return
            if failed:
                del self._cache[key]         # the next viewer asks again
            else:
                self._cache[key] = (time.monotonic(), version, done)

        task.add_done_callback(settled)
        return await asyncio.shield(task)

    async def overview(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        big = request.query.get("screen") == "1"      # 大屏: the control room's screen
        return self.d.page("overview.html", visit, "/dashboard", "总览",
                           o=await self.figures(visit.viewer), screen=big)

    async def overview_json(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        o = await self.figures(visit.viewer)
        body = dataclasses.asdict(o)
        for month in ("this_month", "last_month"):
            rates = getattr(o, month)
            body[month].update(closure=rates.closure, punctual=rates.punctual)
        return json(body)

    async def live_stream(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        return await self.live.stream(request)

    # --- the ledger ----------------------------------------------------------------------------

    async def ledger(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        if visit.viewer.scope is Scope.OWN:
            await refused(visit.viewer, "ledger", self.d.clock())
            return self.d.refusal(visit, "台账仅对主要负责人、安全管理员和部门负责人开放。"
                                         "您可以在企业微信或钉钉中发送“我的隐患”查看自己的隐患。")
        try:
            f, page = await ledger_page(visit.viewer, request.query, self.d.clock(),
                                        self.d.settings.tz)
        except FilterError as wrong:
            return self.d.page("ledger.html", visit, "/dashboard/ledger", "台账", status=400,
                               error=wrong, f=None, page=None, **await self._choices())
        return self.d.page("ledger.html", visit, "/dashboard/ledger", "台账", f=f, page=page,
                           rows=await self._rows(page.rows), query=f.query(),
                           labels=LABELS, error=None, **await self._choices())

    async def _choices(self) -> dict[str, Any]:
        return {"areas": [(a.code, a.name) for a in await every_area()],
                "categories": [(c.code, c.name) for c in self.d.catalog.categories]}

    async def _rows(self, tickets: list[Ticket]) -> list[dict[str, Any]]:
        people = await user_names({t.owner_id for t in tickets if t.owner_id})
        areas = await area_names({t.area_id for t in tickets if t.area_id})
        now = self.d.clock()
        return [{"t": t, "area": areas.get(t.area_id or "", ""),
                 "category": self.d.catalog.name_of(t.category),
                 "owner": people.get(t.owner_id or "", ""), "status": LABELS[t.status],
                 "overdue": bool(t.deadline and t.deadline < now and t.status in ACTIVE)}
                for t in tickets]

    async def export(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        if visit.viewer.scope is Scope.OWN:
            await refused(visit.viewer, "ledger.xlsx", self.d.clock())
            return web.json_response({"error": "the ledger is not yours to export"},
                                     status=403)
        try:
            f = parse_filter(request.query)
        except FilterError as wrong:
            return web.json_response({"error": str(wrong), "field": wrong.field}, status=400)
        now = self.d.clock()
        fd, name = tempfile.mkstemp(prefix="ledger-", suffix=".xlsx")
        path = Path(name)
        try:
            await write_ledger(path, fd, visit.viewer, f, now, self.d.settings.tz, self.d.catalog)
            stamp = f"{now.astimezone(self.d.settings.tz):%Y%m%d-%H%M}"
            return await send_file(request, path, {
                "Content-Type": XLSX,
                "Content-Disposition": f'attachment; filename="ledger-{stamp}.xlsx"'})
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    # --- a ticket ------------------------------------------------------------------------------

    async def _visible(self, visit: Visit, ticket_id: int) -> Ticket | None:
        return await visible_tickets(visit.viewer).get_or_none(id=ticket_id)

    async def ticket(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        ticket_id = int(request.match_info["id"])
        t = await self._visible(visit, ticket_id)
        if t is None:
            await refused(visit.viewer, f"ticket:{ticket_id}", self.d.clock())
            return self.d.refusal(visit, "该隐患不在您的查看范围内。")
        names = await user_names({i for i in (t.reporter_id, t.owner_id, t.reviewer_id) if i})
        events = await history("ticket", str(t.id))
        alarms = await fired(t.id)
        names.update(await user_names({e.actor for e in events if e.actor}))
        names.update(await user_names({p for a in alarms for p in a.recipients}))
        area = (await area_names({t.area_id} if t.area_id else set())).get(t.area_id or "", "")
        record = sorted([(e.at, names.get(e.actor, e.actor) or "系统", e.action, e.note)
                         for e in events]
                        + [(a.fired_at or a.due_at, "系统", a.label, "发送给" + "、".join(
                            names.get(p, p) for p in a.recipients)) for a in alarms],
                        key=lambda entry: entry[0])
        return self.d.page("ticket.html", visit, "/dashboard/ledger", t.label, t=t, area=area,
                           category=self.d.catalog.name_of(t.category), names=names,
                           state=LABELS[t.status], record=record, plan_fields=PLAN_FIELDS,
                           words=ACTION_WORDS)

    async def photo(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        ticket_id, digest = int(request.match_info["id"]), request.match_info["digest"]
        t = await self._visible(visit, ticket_id)
        if t is None or digest not in (*t.photos, *t.evidence):
            await refused(visit.viewer, f"photo:{ticket_id}", self.d.clock())
            return web.json_response({"error": "not yours to see"}, status=403)
        media = self.d.media
        kind = content_type(await media.head(digest))
        if not kind.startswith("image/"):
            return web.json_response({"error": "no such photo"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": kind,
                                               "Cache-Control": "private, max-age=86400"})
        await response.prepare(request)
        try:
            async for chunk in media.chunks(digest):
                await response.write(chunk)
        except MediaMissing:
            pass
        await response.write_eof()
        return response
