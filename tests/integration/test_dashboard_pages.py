"""The dashboard's risk map, the modules' pages and the monthly reports as files, on the real
service: a local administrator signed in through the form, people of the demo roster by a
session of their own; what each is shown, refused (403) or not offered (404)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.app import create_app
from bot.inspection import load_inspections
from bot.settings import SHIPPED_CONFIG
from bot.web.dashboard.gate import COOKIE, LOGIN_COOKIE
from bot.web.dashboard.site import SiteError
from models.catalog import Grade, load_catalog
from models.dashboard.accounts import add_admin, open_session
from models.hazard import Status, Ticket
from models.inspection.visits import Source, record_visit
from models.org import Area
from tests.harness import Service, service_settings
from tests.plant import plant

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)          # 10:00 in Shanghai
SESSION = timedelta(hours=12)


@pytest.fixture
async def demo(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[Service]:
    async with plant(database_url, media_dir) as (_, service):
        service.clock.set(NOW)
        yield service


class Browser:
    """One person's browser: a cookie jar of its own, on the service's address."""

    def __init__(self, service: Service, http: aiohttp.ClientSession) -> None:
        self.service = service
        self.http = http

    async def get(self, path: str, **params: str) -> aiohttp.ClientResponse:
        async with self.http.get(self.service.url + path, params=params,
                                 allow_redirects=False) as answer:
            await answer.read()
            return answer

    async def json(self, path: str) -> Any:
        async with self.http.get(self.service.url + path) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()


@pytest.fixture
async def browsers() -> AsyncIterator[list[aiohttp.ClientSession]]:
    opened: list[aiohttp.ClientSession] = []
    yield opened
    for http in opened:
        await http.close()


async def admin_browser(service: Service, opened: list[aiohttp.ClientSession]) -> Browser:
    """A local administrator signed in through the form, as a person would: the form's CSRF
    cookie and field, then the name and password."""
    password = await add_admin("admin", service.clock())
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    opened.append(http)
    async with http.get(f"{service.url}/dashboard/login") as form:
        page = await form.text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None and http.cookie_jar.filter_cookies(
        service.url + "/dashboard/login").get(LOGIN_COOKIE) is not None
    async with http.post(f"{service.url}/dashboard/login", allow_redirects=False,
                         data={"csrf": token[1], "next": "/dashboard", "name": "admin",
                               "password": password}) as signed:
        assert signed.status == 302 and signed.headers["Location"] == "/dashboard"
    return Browser(service, http)


async def person_browser(service: Service, user_id: str,
                         opened: list[aiohttp.ClientSession]) -> Browser:
    """A person of the roster with a session of their own (as the platforms' login leaves it)."""
    session = await open_session(service.clock(), SESSION, user_id=user_id)
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 cookies={COOKIE: session.token})
    opened.append(http)
    return Browser(service, http)


async def open_ticket(number: str, area: str, reporter: str, owner: str, *,
                      grade: Grade = Grade.GENERAL, deadline: datetime | None = None,
                      created: datetime = NOW - timedelta(days=2)) -> Ticket:
    return await Ticket.create(
        number=number, status=Status.OPEN, reporter_id=reporter, owner_id=owner,
        reviewer_id="lihua", area_id=area, category="H01", description=f"{number} 配电箱门没关",
        grade=grade, deadline=deadline or NOW + timedelta(days=1), created_at=created,
        updated_at=created, opened_at=created)


def area_of(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(a for a in data["areas"] if a["code"] == code)


# --- the risk map -------------------------------------------------------------------------------

async def test_the_map_shows_both_risk_attributes_and_the_open_tickets_each_may_see(
        demo: Service, browsers: list[aiohttp.ClientSession]) -> None:
    await Area.filter(code="A3").update(risk_status="高", risk_reason="近3个月有重大隐患")
    mine = await open_ticket("HZ-20261206-0001", "A3", "zhangsan", "lihua",
                             grade=Grade.MAJOR)
    theirs = await open_ticket("HZ-20261206-0002", "A3", "wanghaiyan", "lihua",
                               deadline=NOW - timedelta(hours=3))
    categories = [c.code for c in load_catalog(SHIPPED_CONFIG / "categories.toml").categories]
    await load_inspections(SHIPPED_CONFIG / "inspection", categories, NOW)
    await record_visit(None, "A3-01", "huangjun", NOW - timedelta(hours=5), Source.SCAN)
    await record_visit(None, "A3-02", "huangjun", NOW - timedelta(hours=4), Source.SCAN)

    manager = await person_browser(demo, "liuyang", browsers)
    data = await manager.json("/dashboard/api/map")
    a3 = area_of(data, "A3")
    assert (a3["inherent"], a3["status"], a3["reason"]) == ("红", "高", "近3个月有重大隐患")
    assert a3["polygon"][0] == [330, 110] and len(a3["polygon"]) == 6
    assert (a3["open"], a3["major"], a3["overdue"]) == (2, 1, 1)
    assert [t["id"] for t in a3["tickets"]] == [mine.id, theirs.id]       # 重大 first
    assert a3["tickets"][0]["href"] == f"/dashboard/tickets/{mine.id}"
    assert a3["last_inspection"]["checkpoint"] == "A3-02"
    assert a3["last_inspection"]["by"] == "黄军"
    w1 = area_of(data, "W1")
    assert (w1["inherent"], w1["status"], w1["open"], w1["tickets"]) == ("蓝", "", 0, [])
    assert {c["code"] for c in data["checkpoints"]} >= {"A3-01", "T1-01"}
    assert data["problems"] == []

    worker = await person_browser(demo, "zhangsan", browsers)
    a3 = area_of(await worker.json("/dashboard/api/map"), "A3")
    assert a3["status"] == "高"                     # the area's attributes are everyone's
    assert [t["id"] for t in a3["tickets"]] == [mine.id] and a3["open"] == 1

    page = await worker.get("/dashboard/map")
    assert page.status == 200
    html = await page.text()
    assert 'class="area status-high"' in html and 'class="badge inherent-red"' in html
    assert "动态风险状态" in html and "固有风险四色" in html
    assert 'loading="lazy"' in html and "<script>" not in html
    plan = await worker.get("/dashboard/map/plan")
    assert plan.status == 200 and plan.content_type == "image/svg+xml"


async def test_the_map_needs_a_session(demo: Service) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{demo.url}/dashboard/api/map") as answer:
            assert answer.status == 401
        async with http.get(f"{demo.url}/dashboard/map", allow_redirects=False) as answer:
            assert answer.status == 302


async def test_a_site_file_naming_an_unknown_area_is_shown_on_the_map(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path,
        browsers: list[aiohttp.ClientSession]) -> None:
    site = tmp_path / "site.toml"
    (tmp_path / "plan.svg").write_bytes((SHIPPED_CONFIG / "site" / "plan.svg").read_bytes())
    site.write_text('plan = "plan.svg"\nwidth = 800\nheight = 500\n'
                    '[[area]]\ncode = "A1"\npolygon = [[1, 1], [50, 1], [50, 50]]\n'
                    '[[area]]\ncode = "Z9"\npolygon = [[60, 1], [90, 1], [90, 50]]\n',
                    encoding="utf-8")
    async with plant(database_url, media_dir, dashboard_site_file=str(site)) as (_, service):
        manager = await person_browser(service, "liuyang", browsers)
        data = await manager.json("/dashboard/api/map")
        assert data["problems"] == ['SAFETYBOT_DASHBOARD_SITE_FILE: site.toml: area[2] (Z9): '
                                    'no area "Z9" in the roster']
        assert area_of(data, "A1")["polygon"] == [[1, 1], [50, 1], [50, 50]]
        assert area_of(data, "A3")["polygon"] is None
        html = await (await manager.get("/dashboard/map")).text()
        assert "area[2] (Z9)" in html and "3号车间（A3）" in html


@pytest.mark.parametrize(("text", "named"), [
    ('[[area]]\ncode = "A1"\npolygon = [[1, 1], [50, 1]]\n',
     "site.toml: area[1] (A1): polygon has 2 corners; an outline needs at least 3"),
    ('[[area]]\ncode = "A1"\npolygon = [[1, 1], [50, 1], [50, 50]]\n'
     '[[area]]\ncode = "A3"\npolygon = [[1, 1], [900, 1], [50, 50]]\n',
     "site.toml: area[2] (A3): polygon's corner 2 [900, 1] is outside the plan's 800 × 500"),
    ('[[area]]\npolygon = [[1, 1], [50, 1], [50, 50]]\n',
     'site.toml: area[1]: missing required key "code"'),
])
def test_a_broken_site_file_stops_the_service_naming_the_entry(
        tmp_path: Path, text: str, named: str) -> None:
    (tmp_path / "plan.svg").write_text("<svg/>", encoding="utf-8")
    site = tmp_path / "site.toml"
    site.write_text('plan = "plan.svg"\nwidth = 800\nheight = 500\n' + text, encoding="utf-8")
    settings = service_settings(f"sqlite://{tmp_path / 'x.sqlite3'}", "", tmp_path,
                                dashboard_site_file=str(site))
    with pytest.raises(SiteError, match=re.escape(named)) as refused:
        create_app(settings)
    assert str(refused.value).startswith("SAFETYBOT_DASHBOARD_SITE_FILE: ")
