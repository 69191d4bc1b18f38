"""The dashboard in headless Chromium (Debian's), as a safety manager and a worker use it, each
signed in through the simulated WeCom login: the overview changes by itself when a ticket is
filed by chat; the ledger filtered, exported and opened; a ticket with its photo; a worker
refused the ledger. Screenshots at 360 px (a phone in WeCom) and 1920 px (the control room) are
kept in test-artefacts/dashboard/."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.async_api import Browser, Page, expect
from tortoise.context import TortoiseContext

from simulator.photos import photo
from simulator.wecom import WeComSimulator
from tests.harness import ROOT, Service
from tests.plant import Person, plant
from tests.webchat_page import WAIT_MS, chromium

PHONE = {"width": 360, "height": 740}
SCREEN = {"width": 1920, "height": 1080}
ARTEFACTS = ROOT / "test-artefacts" / "dashboard" / os.environ.get("SAFETYBOT_TEST_BACKEND",
                                                                  "sqlite")


@pytest.fixture
async def site(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[tuple[Service, WeComSimulator, Person]]:
    async with plant(database_url, media_dir) as (sim, service):
        assert isinstance(sim, WeComSimulator)
        yield service, sim, Person(sim, "zhangsan")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def shot(page: Page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTEFACTS / name, full_page=True)


async def signed_in_by_wecom(browser: Browser, service: Service, sim: WeComSimulator,
                             person: str, viewport: dict[str, int]) -> Page:
    """The sign-in page's 企业微信登录, through the simulated WeCom login (the QR login on a
    PC), back on the dashboard."""
    sim.web_login.signs_in(person)
    context = await browser.new_context(viewport=viewport, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{service.url}/dashboard")
    await page.click("text=企业微信登录")
    await expect(page.locator("[data-key=open]")).to_be_visible()
    return page


async def test_a_safety_manager_watches_the_plant_and_a_worker_is_refused_the_ledger(
        site: tuple[Service, Person, Person], browser: Browser) -> None:
    service, sim, worker = site
    page = await signed_in_by_wecom(browser, service, sim, "sunli", SCREEN)
    await expect(page.locator(".who span")).to_have_text("孙丽")
    await expect(page.locator("[data-key=open]")).to_have_text("0")
    await expect(page.locator("body")).to_have_attribute("data-live", "open")

    # A ticket filed by chat shows on the open overview without a reload.
    await worker.sends_photo(photo(9))
    await worker.expect("哪个区域")
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    number = (await worker.expect("已提交，编号")).text.split("编号 ")[1].split("。")[0]
    await expect(page.locator("[data-key=open]")).to_have_text("1")
    await shot(page, "overview-1920.png")

    # The ledger, filtered by area, exported and opened.
    await page.click("nav >> text=台账")
    await page.select_option("select[name=area]", "A3")
    await page.click("form.filters button")
    row = page.locator("table.tickets tbody tr").filter(has_text=number)
    await expect(row).to_have_count(1)
    async with page.expect_download() as waiting:
        await page.click("text=导出 Excel")
    download = await waiting.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = ARTEFACTS / "ledger.xlsx"
    await download.save_as(saved)
    sheet = load_workbook(saved, read_only=True).active
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [number]
    await shot(page, "ledger-1920.png")

    # The ticket, with its photo.
    await row.locator("a").first.click()
    image = page.locator(".photos img").first
    await expect(image).to_be_visible()
    assert await image.evaluate("i => i.complete && i.naturalWidth > 0")
    await page.set_viewport_size(PHONE)
    await shot(page, "ticket-360.png")
    await page.goto(f"{service.url}/dashboard")
    await shot(page, "overview-360.png")

    # A worker signed in by their platform is refused the whole ledger.
    mine = await signed_in_by_wecom(browser, service, sim, "zhangsan", PHONE)
    answer = await mine.goto(f"{service.url}/dashboard/ledger")
    assert answer is not None and answer.status == 403
    await expect(mine.locator("h1")).to_have_text("无权查看")
    await shot(mine, "worker-refused-360.png")

