"""The dashboard (看板) at /dashboard: pages a safety manager opens every morning and puts on the
control-room screen, behind the platform's login or a local administrator's password. What each
page shows follows the viewer's roles (models/dashboard/access.py). The JSON API is at /api/v1
(bot/web/api.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.media import MediaStore
from bot.settings import Settings
from bot.web.dashboard.gate import Gate, Visit
from bot.web.dashboard.render import HERE, Renderer
from models.catalog import Catalog
from models.dashboard.access import Scope


@dataclass
class Dashboard:
    """What the pages share: settings, clock, the category library, the media store, the
    templates and the gate."""

    settings: Settings
    clock: Clock
    catalog: Catalog
    media: MediaStore
    render: Renderer = field(init=False)
    gate: Gate = field(init=False)

    def __post_init__(self) -> None:
        self.render = Renderer(self.settings.tz)
        self.gate = Gate(self.settings, self.clock, self.render)

    @property
    def modules(self) -> tuple[str, ...]:
        return self.settings.modules_on

    def nav(self, visit: Visit) -> list[tuple[str, str]]:
        """The pages this viewer has, in the bar's order."""
        links = [("/dashboard", "总览"), ("/dashboard/map", "风险地图")]
        if visit.viewer.scope is not Scope.OWN:
            links.append(("/dashboard/ledger", "台账"))
        if visit.viewer.whole_plant:
            links.append(("/dashboard/reports", "月报"))
            links += [(f"/dashboard/{name}", label) for name, label in MODULE_PAGES
                      if name in self.modules]
        return links

    def page(self, template: str, visit: Visit, here: str, title: str, *, status: int = 200,
             **context: Any) -> web.Response:
        return self.render.page(template, status=status, viewer=visit.viewer,
                                csrf=visit.signed.csrf, nav=self.nav(visit), here=here,
                                title=title, **context)

    def refusal(self, visit: Visit, text: str = "您没有查看该内容的权限。") -> web.Response:
        return self.page("message.html", visit, "", "无权查看", status=403, kind="refused",
                         text=text)


# The modules' own pages, for viewers of the whole plant.
MODULE_PAGES = (("emergency", "应急"), ("qualification", "资质"), ("training", "培训"),
                ("inspection", "巡检"))


def routes(settings: Settings, clock: Clock, catalog: Catalog, media: MediaStore,
           instance: str = "dashboard") -> list[web.AbstractRouteDef]:
    """`instance`: this process's name, for the platform tokens it shares with the others."""
    from bot.web.dashboard import module_pages, pages, plant_map
    from bot.web.dashboard.oauth import OAuth

    d = Dashboard(settings, clock, catalog, media)
    gate = d.gate
    oauth = OAuth(settings, clock, gate, d.render, instance)
    return [web.get("/dashboard/login", gate.login_page),
            *oauth.routes(),
            web.post("/dashboard/login", gate.login),
            web.post("/dashboard/logout", gate.form(gate.logout)),
            web.static("/dashboard/static", HERE / "static"),
            *pages.routes(d), *plant_map.routes(d), *module_pages.routes(d)]
