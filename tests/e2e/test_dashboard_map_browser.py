"""The risk map in headless Chromium: a safety manager taps an area and reads its panel (its open
ticket, last inspection and the rule behind its status); nothing the page loads is refused by
its Content-Security-Policy. Screenshots at 360 px and 1920 px go to
test-artefacts/dashboard/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from tortoise.context import TortoiseContext

from bot.inspection import load_inspections
from bot.settings import SHIPPED_CONFIG
from models.dashboard.accounts import open_session
from models.inspection.visits import Source, record_visit
from models.org import Area
from tests.dashboard_client import CATALOG, filed
from tests.e2e.test_dashboard_browser import ARTEFACTS, PHONE, SCREEN
from tests.harness import Service
from tests.plant import plant
from tests.webchat_page import WAIT_MS, chromium


@pytest.fixture
async def demo(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[Service]:
    async with plant(database_url, media_dir) as (_, service):
        yield service


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.mark.parametrize(("viewport", "name"), [(PHONE, "map-360.png"), (SCREEN, "map-1920.png")])
async def test_a_manager_taps_an_area_on_the_map(demo: Service, browser: Browser,
                                                 viewport: dict[str, int], name: str) -> None:
    now = demo.clock()
    await Area.filter(code="A3").update(risk_status="高", risk_reason="近3个月有重大隐患")
    await Area.filter(code__in=["A1", "E1"]).update(risk_status="中", risk_reason="有未闭环的隐患")
    await Area.filter(code="W1").update(risk_status="低", risk_reason="近6个月无隐患")
    ticket = await filed(now, area="A3", description="硝化釜区灭火器压力不足")
    await load_inspections(SHIPPED_CONFIG / "inspection", [c.code for c in CATALOG.categories],
                           now)
    await record_visit(None, "A3-01", "huangjun", now - timedelta(hours=2), Source.SCAN)
    session = await open_session(now, timedelta(hours=12), user_id="liuyang")
    context = await browser.new_context(viewport=viewport)
    await context.add_cookies([{"name": "sb_session", "value": session.token,
                                "url": demo.url}])
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)
    await page.goto(f"{demo.url}/dashboard/map")
    await expect(page.locator("body[data-map-loaded]")).to_have_count(1)
    await page.locator('g.area[data-code="A3"]').click()
    panel = page.locator("#area-panel")
    await expect(panel).to_contain_text("3号车间（A3）")
    await expect(panel).to_contain_text("近3个月有重大隐患")
    await expect(panel).to_contain_text("3号车间空压机")
    link = panel.locator(f'a[href="/dashboard/tickets/{ticket.id}"]')
    await expect(link).to_have_text(str(ticket.number))
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTEFACTS / name, full_page=True)
    assert refused == []
    await context.close()
