"""The modules' own pages, for viewers of the whole plant: emergency responses and drills,
qualifications, training progress and patrol coverage. A module switched off has no page (404);
anyone else is refused (403), and the refusal recorded. The figures are read by
models/dashboard/ (responses, qualifications, training_progress, patrols)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from bot.inspection import load_inspection_rules
from bot.qualification import load_rules
from bot.web.dashboard import Dashboard
from bot.web.dashboard.gate import Page, Visit
from models.dashboard.access import refused
from models.dashboard.patrols import coverage, newest_rounds
from models.dashboard.qualifications import certificates_due, recent_checks
from models.dashboard.responses import responses
from models.dashboard.training_progress import course_progress, hours_by_department

DUE_WITHIN_DAYS = 60           # certificates due this soon are listed
COVERAGE_DAYS = 30
DRILL_FILTERS = {"": None, "drill": True, "real": False}


def routes(d: Dashboard) -> list[web.AbstractRouteDef]:
    pages = ModulePages(d)
    handlers: dict[str, Page] = {"emergency": pages.emergency,
                                 "qualification": pages.qualification,
                                 "training": pages.training, "inspection": pages.inspection}
    return [web.get(f"/dashboard/{name}", d.gate.page(pages.whole_plant(name, handler)))
            for name, handler in handlers.items() if name in d.modules]


class ModulePages:
    def __init__(self, d: Dashboard) -> None:
        self.d = d
        s = d.settings
        self.certificate_names: dict[str, str] = {}
        if "qualification" in d.modules:
            rules = load_rules(Path(s.qualification.certificates_file),
                               Path(s.qualification.work_types_file))
            self.certificate_names = {c: t.name for c, t in rules.certificates.items()}
        self.suspicious_seconds = (load_inspection_rules(Path(s.inspection.rules_file))
                                   .suspicious_seconds if "inspection" in d.modules else 0)

    def whole_plant(self, name: str, handler: Page
                    ) -> Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request, visit: Visit) -> web.StreamResponse:
            if not visit.viewer.whole_plant:
                await refused(visit.viewer, name, self.d.clock())
                return self.d.refusal(visit, "该页面仅对主要负责人和安全管理员开放。")
            return await handler(request, visit)

        return guarded

    async def emergency(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        kind = request.query.get("kind", "")
        page = request.query.get("page", "1")
        if kind not in DRILL_FILTERS or not page.isdigit() or int(page) < 1:
            return self.d.page("message.html", visit, "/dashboard/emergency", "参数有误",
                               status=400, kind="error",
                               text="kind 只能是 drill 或 real，page 为正整数。")
        rows, more = await responses(DRILL_FILTERS[kind], int(page))
        return self.d.page("emergency.html", visit, "/dashboard/emergency", "应急响应与演练",
                           rows=rows, kind=kind, page=int(page), more=more)

    async def qualification(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        today = self.d.clock().astimezone(self.d.settings.tz).date()
        due = await certificates_due(today, DUE_WITHIN_DAYS)
        return self.d.page("qualification.html", visit, "/dashboard/qualification", "资质",
                           expired=[c for c in due if c.days < 0],
                           expiring=[c for c in due if c.days >= 0],
                           names=self.certificate_names, within=DUE_WITHIN_DAYS,
                           checks=await recent_checks())

    async def training(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        today = self.d.clock().astimezone(self.d.settings.tz).date()
        return self.d.page("training.html", visit, "/dashboard/training", "培训",
                           courses=await course_progress(today), year=today.year,
                           departments=await hours_by_department(today.year))

    async def inspection(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        now = self.d.clock()
        figures = await coverage(now, COVERAGE_DAYS, self.suspicious_seconds)
        return self.d.page("inspection.html", visit, "/dashboard/inspection", "巡检",
                           f=figures, days=COVERAGE_DAYS, since=now - timedelta(
                               days=COVERAGE_DAYS), rounds=await newest_rounds())
