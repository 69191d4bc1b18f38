"""The dashboard's risk map, the modules' pages and the monthly reports as files, on the real
service: a local administrator signed in through the form, people of the demo roster by a
session of their own; what each is shown, refused (403) or not offered (404)."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from openpyxl import load_workbook
from tortoise.context import TortoiseContext

from bot.app import create_app
from bot.inspection import load_inspections
from bot.settings import SHIPPED_CONFIG
from bot.web.dashboard.site import SiteError
from models.audit import AuditEvent
from models.catalog import Grade, load_catalog
from models.emergency import Activation, ActivationStatus, Responder
from models.hazard import Status, Ticket
from models.inspection.visits import Source, record_visit
from models.org import Area
from models.people.certificates import Certificate
from tests.dashboard_client import admin_signs_in, person_signs_in
from tests.harness import Service, service_settings
from tests.plant import plant

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)          # 10:00 in Shanghai


@pytest.fixture
async def demo(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[Service]:
    async with plant(database_url, media_dir) as (_, service):
        service.clock.set(NOW)
        yield service


@dataclass(frozen=True)
class Got:
    """An answer as read whole."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]

    async def text(self) -> str:
        return self.body.decode()

    async def read(self) -> bytes:
        return self.body


class Browser:
    """One person's browser: a cookie jar of its own, on the service's address."""

    def __init__(self, service: Service, http: aiohttp.ClientSession) -> None:
        self.service = service
        self.http = http

    async def get(self, path: str, **params: str) -> Got:
        async with self.http.get(self.service.url + path, params=params,
                                 allow_redirects=False) as answer:
            return Got(answer.status, answer.headers, await answer.read())

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
    """A local administrator signed in through the form."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    opened.append(http)
    await admin_signs_in(http, service.url, service.clock())
    return Browser(service, http)


async def person_browser(service: Service, user_id: str,
                         opened: list[aiohttp.ClientSession]) -> Browser:
    """A person of the roster with a session of their own (as the platforms' login leaves it)."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    opened.append(http)
    await person_signs_in(http, service.url, user_id, service.clock())
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


# --- the modules' pages -------------------------------------------------------------------------

async def responded(drill: bool, answers: dict[str, int | None]) -> Activation:
    """A closed activation: each person called at its start and answering after so many
    seconds (None: never)."""
    start = NOW - timedelta(days=3 if drill else 1)
    activation = await Activation.create(
        level="Ⅲ级", area_id="T1", drill=drill, status=ActivationStatus.CLOSED, token="t" * 8,
        raised_by="zhouwei", created_at=start, activated_at=start,
        closed_at=start + timedelta(hours=1))
    for n, (person, seconds) in enumerate(answers.items()):
        await Responder.create(
            activation=activation, user_id=person, task_id=f"task-{activation.id}-{n}",
            notified_at=start, answer="" if seconds is None else "收到",
            answered_at=None if seconds is None else start + timedelta(seconds=seconds))
    return activation


async def test_the_modules_pages_for_a_safety_manager_and_not_for_a_worker(
        demo: Service, browsers: list[aiohttp.ClientSession]) -> None:
    drill = await responded(True, {"guoqiang": 30, "zhaolei": 90, "linfang": None})
    real = await responded(False, {"guoqiang": 60})
    today = NOW.date()
    for number, kind, due in (("EXPIRED-1", "T-EL-HV", today - timedelta(days=5)),
                              ("SOON-1", "T-HIGH", today + timedelta(days=20))):
        await Certificate.create(holder_id="gaofeng", type_code=kind, number=number,
                                 expires_on=due, source="import", added_at=NOW, updated_at=NOW)
    manager = await person_browser(demo, "liuyang", browsers)

    answer = await manager.get("/dashboard/emergency")
    html = await answer.text()
    assert answer.status == 200
    assert html.index(real.label) < html.index(drill.label)          # the newest first
    assert "2/3" in html and "1分00秒" in html                        # the drill's mean: 60 s
    assert "赵磊 · 收到 · 1分30秒" in html and "林芳 · 未回复" in html
    drills = await (await manager.get("/dashboard/emergency", kind="drill")).text()
    assert drill.label in drills and f">{real.label}<" not in drills
    assert (await manager.get("/dashboard/emergency", kind="both")).status == 400

    html = await (await manager.get("/dashboard/qualification")).text()
    assert "EXPIRED-1" in html and "SOON-1" in html and "高压电工作业" in html
    assert html.index("EXPIRED-1") < html.index("SOON-1")
    # The roster's certificate of his is due for review in 32 days.
    assert "T320102198503150012" in html
    for path in ("/dashboard/training", "/dashboard/inspection"):
        assert (await manager.get(path)).status == 200, path

    worker = await person_browser(demo, "zhangsan", browsers)
    for path in ("/dashboard/emergency", "/dashboard/qualification", "/dashboard/training",
                 "/dashboard/inspection", "/dashboard/reports"):
        answer = await worker.get(path)
        assert answer.status == 403, path
        assert "仅对主要负责人和安全管理员开放" in await answer.text()
    refusals = await AuditEvent.filter(action="dashboard.refused", actor="zhangsan"
                                       ).values_list("subject_id", flat=True)
    assert set(refusals) == {"emergency", "qualification", "training", "inspection", "reports"}
    nav = await (await worker.get("/dashboard/map")).text()
    assert 'href="/dashboard/training"' not in nav


async def test_a_module_switched_off_has_no_page(
        db: TortoiseContext, database_url: str, media_dir: Path,
        browsers: list[aiohttp.ClientSession]) -> None:
    async with plant(database_url, media_dir, modules_training="off",
                     modules_inspection="off") as (_, service):
        manager = await person_browser(service, "liuyang", browsers)
        assert (await manager.get("/dashboard/training")).status == 404
        assert (await manager.get("/dashboard/inspection")).status == 404
        assert (await manager.get("/dashboard/emergency")).status == 200
        data = await manager.json("/dashboard/api/map")
        assert data["inspection"] is False and data["checkpoints"] == []
        assert area_of(data, "A3")["last_inspection"] is None


# --- the monthly reports ------------------------------------------------------------------------

async def test_a_months_report_files_are_built_on_request(
        demo: Service, browsers: list[aiohttp.ClientSession]) -> None:
    await open_ticket("HZ-20261105-0001", "A1", "zhangsan", "wangqiang",
                      created=datetime(2026, 11, 5, 2, 0, tzinfo=UTC))
    admin = await admin_browser(demo, browsers)
    listing = await admin.get("/dashboard/reports")
    html = await listing.text()
    assert listing.status == 200 and 'href="/dashboard/reports/2026-11.xlsx"' in html
    assert "2026-10" not in html

    sheet = await admin.get("/dashboard/reports/2026-11.xlsx")
    assert sheet.status == 200
    assert "filename*=UTF-8''" in sheet.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(await sheet.read()), read_only=True)
    rows = [row for ws in book.worksheets for row in ws.iter_rows(values_only=True)]
    assert any("HZ-20261105-0001" in row for row in rows)
    book.close()
    text = await admin.get("/dashboard/reports/2026-11.md")
    assert text.status == 200 and "隐患闭环分析报告" in await text.text()
    chart = await admin.get("/dashboard/reports/2026-11.png")
    assert chart.status == 200 and (await chart.read()).startswith(b"\x89PNG")
    # Any month, even one with nothing in it; but a month it is.
    assert (await admin.get("/dashboard/reports/2025-02.md")).status == 200
    assert (await admin.get("/dashboard/reports/2026-13.md")).status == 400
    assert (await admin.get("/dashboard/reports", month="11/2026")).status == 400
    chosen = await admin.get("/dashboard/reports", month="2026-11", file="xlsx")
    assert chosen.status == 302
    assert chosen.headers["Location"] == "/dashboard/reports/2026-11.xlsx"

    worker = await person_browser(demo, "zhangsan", browsers)
    assert (await worker.get("/dashboard/reports/2026-11.xlsx")).status == 403
