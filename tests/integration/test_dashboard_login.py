"""Signing in to the dashboard with the platform's own login, end to end: the demo plant, the
real service on loopback and the platform's simulator playing its login pages and APIs, and a
browser (an aiohttp session with a cookie jar) following the redirects through both. Every
refusal the sign-in makes is a page a person reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from tortoise.context import TortoiseContext
from yarl import URL

from tests.harness import Service
from tests.plant import PLATFORMS, Simulator, plant

CODE = {"wecom": "code", "dingtalk": "authCode"}
OTHER = {"wecom": "dingtalk", "dingtalk": "wecom"}
IN_WECOM = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 "
            "Language/zh ColorScheme/Light")


@dataclass
class World:
    platform: str
    sim: Simulator
    service: Service


@dataclass(frozen=True)
class Page:
    status: int
    text: str
    url: URL
    hops: tuple[aiohttp.ClientResponse, ...]    # the redirects followed to get here


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path) -> AsyncIterator[World]:
    async with plant(database_url, media_dir, platform=request.param) as (sim, service):
        sim.add_user("stranger")        # in the platform's directory, not in our roster
        yield World(request.param, sim, service)


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies of an IP address (127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def opens(browser: aiohttp.ClientSession, url: str | URL, **headers: str) -> Page:
    async with browser.get(url, headers=headers) as resp:
        return Page(resp.status, await resp.text(), resp.url, tuple(resp.history))


async def signs_in(world: World, browser: aiohttp.ClientSession, person: str,
                   target: str = "/dashboard", **headers: str) -> Page:
    """`person` picks the platform's login on the sign-in page and is sent back to us."""
    world.sim.web_login.signs_in(person)
    return await opens(browser, f"{world.service.url}/dashboard/login/{world.platform}"
                                f"?next={quote(target, safe='')}", **headers)


def callback(page: Page) -> URL:
    """The platform's redirect back to us, as the browser followed it."""
    [back] = [hop.url for hop in page.hops if hop.url.path.startswith("/dashboard/auth/")]
    return back


async def test_safety_manager_signs_in_and_reaches_the_overview(
        world: World, browser: aiohttp.ClientSession) -> None:
    page = await signs_in(world, browser, "sunli")
    assert page.status == 200, page.text
    assert page.url.path == "/dashboard"
    assert "孙丽" in page.text
    [auth] = [hop for hop in page.hops if hop.url.path.startswith("/dashboard/auth/")]
    cookie = next(c for c in auth.headers.getall("Set-Cookie") if c.startswith("sb_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie              # plain HTTP on loopback
