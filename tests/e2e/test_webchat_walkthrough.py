"""The README's walk-through, entirely in the local web chat in headless Chromium, against the real
service with the demo org: 张三 reports with a photo, 高峰 rectifies, 徐明 approves and the ticket
closes. Nobody touches WeCom; every step is a click, an upload or a line typed on the page.
Screenshots of each step land in the test's tmp_path (pytest --basetemp=DIR to keep them)."""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect
from tortoise.context import TortoiseContext

from handlers.hazard.rectify import NUMBER
from models.audit import AuditEvent
from models.hazard import Status, Ticket
from models.inbox import InboxEvent, InboxStatus
from models.org import User
from models.webchat import WebChatLine
from tests.harness import Service
from tests.plant import plant
from tests.webchat_client import eventually
from tests.webchat_page import (
    act_as,
    bot_says,
    card,
    chromium,
    open_chat,
    press,
    say,
    send_photo,
)

_shades = itertools.count(1)


def photo() -> bytes:
    """A 160×120 PNG of one colour, distinct each time: big enough to see in the screenshot."""
    n = next(_shades)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    row = b"\x00" + bytes([200, 40 * n % 256, 60]) * 160
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 160, 120, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * 120)) + chunk(b"IEND", b""))


@pytest.fixture
async def demo(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[Service]:
    """The demo org loaded and the real service running; WeCom stays configured, and the
    plant's people say they use the web chat (`platform`), so everyone's cards come there."""
    async with plant(database_url, media_dir) as (_, service):
        await User.all().update(platform="webchat")
        yield service


async def decided(page: Page, card_: Locator, note: str) -> None:
    """The card shows who decided, and offers nothing more to press."""
    await expect(card_).to_have_class(re.compile(r"\bdone\b"))
    await expect(card_.locator(".card-note")).to_have_text(note)
    await expect(card_.locator(".card-buttons")).to_be_hidden()
    for button in await card_.locator(".card-buttons button").all():
        await expect(button).to_be_disabled()


async def test_report_rectify_and_approve_entirely_in_the_web_chat(
        demo: Service, tmp_path: Path) -> None:
    async with chromium() as browser:
        # 1. 张三 (a worker) reports: a photo, one sentence, 提交 on the summary card.
        page = await open_chat(browser, demo.url, "zhangsan")
        await send_photo(page, photo())
        await expect(page.locator(".line.me img").last).to_be_visible()
        await expect(bot_says(page, "已收到照片（共1张）")).to_be_visible()
        asked = bot_says(page, "哪个区域")
        await expect(asked).to_be_visible()
        assert "\n1. 1号车间\n2. 3号车间" in await asked.inner_text()   # one choice a line
        await say(page, "3号车间 配电箱门没关 有裸露电线")
        summary = card(page, "请确认隐患上报")
        await expect(summary).to_be_visible()
        await expect(summary.locator(".card-fields")).to_contain_text("用电类")
        await expect(summary.locator(".card-buttons button")).to_have_text(
            ["提交", "修改", "取消"])
        await press(summary, "提交")
        filed = bot_says(page, "已提交，编号")
        await expect(filed).to_contain_text("整改责任人：高峰")
        found = NUMBER.search(await filed.inner_text())
        assert found is not None
        number = found.group()
        await decided(page, summary, "已由张三提交")
        await page.screenshot(path=tmp_path / "1-zhangsan.png")

        # 2. 高峰 (the 用电类 owner) gets the photo and the card, accepts, fixes, reports back.
        await act_as(page, "gaofeng")
        assigned = card(page, f"隐患整改 {number}")
        await expect(assigned).to_be_visible()
        await expect(page.locator(".line.bot img").first).to_be_visible()
        await expect(assigned.locator(".card-select select option")).not_to_have_count(0)
        await expect(assigned.locator(".card-buttons button")).to_have_text(
            ["接收", "已整改", "转派", "申请延期"])
        await press(assigned, "接收")
        await expect(bot_says(page, f"已接收 {number}")).to_be_visible()
        # The accepted card is greyed out and a new one follows, without 接收.
        cards = page.locator(".card").filter(
            has=page.locator(".card-title", has_text=f"隐患整改 {number}"))
        await expect(cards).to_have_count(2)
        await decided(page, cards.first, "已由高峰接收")
        await expect(cards.last.locator(".card-buttons button")).to_have_text(
            ["已整改", "转派", "申请延期"])
        await press(cards.last, "已整改")
        await expect(bot_says(page, "整改后的照片")).to_be_visible()
        await send_photo(page, photo(), "after.png")
        await expect(bot_says(page, "已收到整改照片")).to_be_visible()
        await say(page, "提交")
        await expect(bot_says(page, f"{number} 已提交复查，复查人：徐明")).to_be_visible()

        # 3. 徐明 (the reviewer) sees the photos before and after, and approves.
        await page.screenshot(path=tmp_path / "2-gaofeng.png")
        await act_as(page, "xuming")
        review = card(page, f"整改复查 {number}")
        await expect(review).to_be_visible()
        await expect(bot_says(page, f"{number} 整改前照片")).to_be_visible()
        await expect(bot_says(page, f"{number} 整改后照片")).to_be_visible()
        images = page.locator(".line.bot img")
        await expect(images).to_have_count(2)
        for n in range(2):   # both photos load from the media store (a broken one is replaced)
            assert await images.nth(n).evaluate("img => img.complete && img.naturalWidth > 0")
        await expect(review.locator(".card-fields")).to_contain_text("1张")
        await press(review, "通过")
        await expect(bot_says(page, f"{number} 复查通过，已闭环")).to_be_visible()
        await decided(page, review, "已由徐明通过")

        await page.screenshot(path=tmp_path / "3-xuming.png")
        ticket = await Ticket.get(number=number)
        assert ticket.status is Status.CLOSED and ticket.closed_at is not None
        assert (ticket.reporter_id, ticket.owner_id, ticket.reviewer_id) == (
            "zhangsan", "gaofeng", "xuming")
        assert len(ticket.photos) == 1 and len(ticket.evidence) == 1
        actions = await AuditEvent.filter(subject_id=str(ticket.id)).order_by("id") \
            .values_list("action", flat=True)
        assert actions == ["filed", "accepted", "submitted", "closed"]

        # A second press on the decided card (as from a page that missed the update) is
        # refused by the page's own click path, and nothing changes.
        events = await InboxEvent.all().count()
        lines = await WebChatLine.filter(user_id="xuming").count()
        await review.locator(".card-buttons button", has_text="通过").evaluate(
            "b => { b.disabled = false; b.click(); }")
        await expect(page.locator("#error")).to_have_text("这张卡片已处理或已失效。")
        await expect(page.locator("#error")).to_be_visible()

        async def quiet() -> bool:
            return not await InboxEvent.exclude(status=InboxStatus.DONE).exists()

        await eventually(quiet, "the inbox settled")
        assert await InboxEvent.all().count() == events
        assert await WebChatLine.filter(user_id="xuming").count() == lines
        await ticket.refresh_from_db()
        assert ticket.status is Status.CLOSED
        assert await AuditEvent.filter(subject_id=str(ticket.id)).count() == len(actions)

        # 4. The closing message reached 张三's chat, and 高峰's.
        await act_as(page, "zhangsan")
        await expect(bot_says(page, f"{number}（")).to_contain_text("复查通过，已闭环")
        await decided(page, card(page, "请确认隐患上报"), "已由张三提交")
        await act_as(page, "gaofeng")
        await expect(bot_says(page, f"{number}（")).to_contain_text("已闭环")
        await act_as(page, "zhangsan")
        await expect(bot_says(page, f"{number}（")).to_be_visible()
        await page.screenshot(path=tmp_path / "4-zhangsan.png")
