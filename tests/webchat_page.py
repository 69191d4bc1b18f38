"""Driving the local web chat page in headless Chromium (Debian's browser; playwright's own
download is not used). Helpers for browser tests: pick a person, type, send a photo, find the
bot's replies and cards, click and choose on cards."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, Locator, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 20_000   # how long to wait for the page to show something; a hang guard, not a limit

expect.set_options(timeout=WAIT_MS)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_chat(browser: Browser, base_url: str, user: str) -> Page:
    """A fresh page at /chat, chatting as `user`, its live connection open."""
    page = await browser.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{base_url}/chat")
    await act_as(page, user)
    return page


async def act_as(page: Page, user: str) -> None:
    await page.select_option("#person", user)
    await expect(page.locator("#status")).to_have_attribute("data-state", "open")


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await expect(page.locator(".line.me").filter(has_text=text).last).to_be_visible()


async def send_photo(page: Page, data: bytes, name: str = "photo.png") -> None:
    before = await page.locator(".line.me").count()
    await page.set_input_files("#photo", files=[
        {"name": name, "mimeType": "image/png", "buffer": data}])
    await expect(page.locator(".line.me")).to_have_count(before + 1)


def tiny_png() -> bytes:
    """A valid 1×1 PNG, so the page can show it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def bot_says(page: Page, text: str) -> Locator:
    """The bot's latest message containing `text` (wait on it with `expect`)."""
    return page.locator(".line.bot").filter(has_text=text).last


def card(page: Page, title: str) -> Locator:
    """The latest card with this title; `.done` once it was updated (greyed out)."""
    return page.locator(".card").filter(has=page.locator(".card-title", has_text=title)).last


async def choose(card_: Locator, option_text: str) -> None:
    await card_.locator(".card-select select").select_option(label=option_text)


async def press(card_: Locator, button_text: str) -> None:
    await card_.locator(".card-buttons button", has_text=button_text).click()
