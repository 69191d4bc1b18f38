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

from models.org import User
from tests.harness import DINGTALK_SECRET, SECRET, Service
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
    [back] = [url for url in (*(hop.url for hop in page.hops), page.url)
              if url.path.startswith("/dashboard/auth/")]
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


async def test_inside_the_wecom_app_the_sign_in_is_silent_and_on_a_pc_a_qr_code(
        db: TortoiseContext, database_url: str, media_dir: Path,
        browser: aiohttp.ClientSession) -> None:
    async with plant(database_url, media_dir) as (sim, service):
        world = World("wecom", sim, service)
        assert (await signs_in(world, browser, "sunli", **{"User-Agent": IN_WECOM})).status == 200
        assert (await signs_in(world, browser, "sunli")).status == 200
        assert sim.web_login.pages == ["/connect/oauth2/authorize", "/wwlogin/sso/login"]


async def test_the_sign_in_goes_on_to_the_page_asked_for_and_only_the_dashboard_s(
        world: World, browser: aiohttp.ClientSession) -> None:
    login = await opens(browser, f"{world.service.url}/dashboard/login?next=%2Fdashboard%2Fledger")
    assert f'href="/dashboard/login/{world.platform}?next=/dashboard/ledger"' in login.text
    page = await signs_in(world, browser, "sunli", "/dashboard/ledger")
    assert (page.status, page.url.path) == (200, "/dashboard/ledger")
    page = await signs_in(world, browser, "sunli", "https://evil.example/dashboard")
    assert (page.status, page.url.path, page.url.host) == (200, "/dashboard", "127.0.0.1")


async def test_a_forged_state_or_one_made_for_another_browser_is_refused(
        world: World, browser: aiohttp.ClientSession) -> None:
    page = await signs_in(world, browser, "sunli")
    back = callback(page)
    code_param = CODE[world.platform]
    # A state the service never made, with this browser's own cookie of a state it did make.
    async with browser.get(f"{world.service.url}/dashboard/login/{world.platform}",
                           allow_redirects=False) as started:
        assert started.status == 302
    forged = back.update_query({code_param: "x", "state": "forged"})
    assert (await opens(browser, forged)).status == 400
    # Someone else's sign-in: a state (and code) the platform handed to another browser.
    world.sim.web_login.signs_in("stranger")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        async with other.get(f"{world.service.url}/dashboard/login/{world.platform}",
                             allow_redirects=False) as theirs:
            to_platform = URL(theirs.headers["Location"])
        async with other.get(to_platform, allow_redirects=False) as platform:
            their_callback = platform.headers["Location"]
    refused = await opens(browser, their_callback)
    assert refused.status == 400
    assert "登录请求无效、已过期或已经用过" in refused.text


async def test_a_replayed_state_or_one_of_the_other_platform_is_refused(
        world: World, browser: aiohttp.ClientSession) -> None:
    page = await signs_in(world, browser, "sunli")
    back = callback(page)
    state = back.query["state"]
    # The same callback again, the browser still holding the state's cookie.
    replay = await opens(browser, back, Cookie=f"sb_oauth_state={state}")
    assert replay.status == 400
    async with browser.get(f"{world.service.url}/dashboard/login/{world.platform}",
                           allow_redirects=False) as started:
        state = URL(started.headers["Location"]).query["state"]
    other = OTHER[world.platform]
    elsewhere = URL(f"{world.service.url}/dashboard/auth/{other}").with_query(
        {CODE[other]: "x", "state": state})
    assert (await opens(browser, elsewhere)).status == 400


async def test_a_bad_or_reused_code_is_refused(world: World,
                                               browser: aiohttp.ClientSession) -> None:
    used = callback(await signs_in(world, browser, "sunli"))
    code_param = CODE[world.platform]
    for code in ("forged-code", used.query[code_param]):
        async with browser.get(f"{world.service.url}/dashboard/login/{world.platform}",
                               allow_redirects=False) as started:
            state = URL(started.headers["Location"]).query["state"]
        page = await opens(browser, used.update_query({code_param: code, "state": state}))
        assert page.status == 400, code
        assert "登录凭证无效或已经用过" in page.text
    # A callback without a code (DingTalk's `error=` when the person declines).
    async with browser.get(f"{world.service.url}/dashboard/login/{world.platform}",
                           allow_redirects=False) as started:
        state = URL(started.headers["Location"]).query["state"]
    page = await opens(browser, used.with_query({"error": "access_denied", "state": state}))
    assert page.status == 400 and "没有完成授权" in page.text


@pytest.mark.parametrize("person", ["stranger", "outsider", "deactivated"])
async def test_someone_not_on_the_roster_or_deactivated_is_refused(
        world: World, browser: aiohttp.ClientSession, person: str) -> None:
    """stranger: a member of the organisation on the platform, not in our roster; outsider:
    not even a member there; deactivated: 孙丽, after she left."""
    if person == "deactivated":
        await User.filter(id="sunli").update(active=False)
    page = await signs_in(world, browser, "sunli" if person == "deactivated" else person)
    assert page.status == 403
    assert "您不在本厂名册中" in page.text
    assert "sb_session" not in {c.key for c in browser.cookie_jar}


async def test_a_person_deactivated_after_signing_in_is_sent_to_the_sign_in(
        world: World, browser: aiohttp.ClientSession) -> None:
    assert (await signs_in(world, browser, "sunli")).status == 200
    await User.filter(id="sunli").update(active=False)
    page = await opens(browser, f"{world.service.url}/dashboard")
    assert page.url.path == "/dashboard/login"
    assert "孙丽" not in page.text


async def test_the_platform_failing_is_a_clear_page_and_a_log_without_secrets(
        world: World, browser: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    if world.platform == "wecom":
        world.sim.fail_next("auth/getuserinfo", -1)
    else:
        world.sim.fail_next("oauth2/userAccessToken", 500, "InternalError")
    page = await signs_in(world, browser, "sunli")
    assert page.status == 502
    assert "暂时没有回应，请稍后重新登录" in page.text
    back = callback(page)
    assert "dashboard sign-in failed" in caplog.text
    for secret in (SECRET, DINGTALK_SECRET, back.query[CODE[world.platform]],
                   back.query["state"]):
        assert secret not in caplog.text


async def test_a_platform_not_switched_on_has_no_sign_in(
        world: World, browser: aiohttp.ClientSession) -> None:
    page = await opens(browser, f"{world.service.url}/dashboard/login/{OTHER[world.platform]}")
    assert page.status == 404
    login = await opens(browser, f"{world.service.url}/dashboard/login")
    assert f"/dashboard/login/{world.platform}?" in login.text
    assert f"/dashboard/login/{OTHER[world.platform]}?" not in login.text


async def test_behind_an_https_proxy_the_cookies_are_secure_and_the_platform_sends_back_to_https(
        world: World, browser: aiohttp.ClientSession) -> None:
    world.sim.web_login.signs_in("sunli")
    proxied = {"X-Forwarded-Proto": "https"}
    async with browser.get(f"{world.service.url}/dashboard/login/{world.platform}",
                           headers=proxied, allow_redirects=False) as started:
        assert all("Secure" in c for c in started.headers.getall("Set-Cookie"))
        to_platform = URL(started.headers["Location"])
    assert to_platform.query["redirect_uri"].startswith("https://127.0.0.1:")
    async with browser.get(to_platform, allow_redirects=False) as platform:
        back = URL(platform.headers["Location"]).with_scheme("http")   # the proxy's hop
    # The browser sends its Secure cookie to the https address the proxy serves.
    state = back.query["state"]
    async with browser.get(back, headers={**proxied, "Cookie": f"sb_oauth_state={state}"},
                           allow_redirects=False) as signed:
        assert signed.status == 302, await signed.text()
        session = next(c for c in signed.headers.getall("Set-Cookie")
                       if c.startswith("sb_session="))
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Lax" in session
