"""The dashboard's door and its pages, over real HTTP on loopback: no page or file without a
live session; sign-in and sign-out of a local administrator with CSRF; a session that expired or
whose person left; what a worker, a supervisor and a safety manager may see (refusals answered
403 and recorded); the ledger's filter refusing a bad date, an unknown field and a page past the
end by name; a description's HTML shown escaped; the export of the current filter; the overview's
figures and its live updates."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openpyxl import load_workbook
from tortoise.context import TortoiseContext
from yarl import URL

from models.audit import AuditEvent
from models.catalog import Grade
from models.dashboard.access import Scope, Viewer
from models.dashboard.overview import month_start, overview
from models.hazard import Status, Ticket
from models.org import User
from simulator.photos import photo
from tests.dashboard_client import admin_signs_in, filed, person_signs_in
from tests.harness import Service
from tests.plant import plant


@pytest.fixture
async def site(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[Service]:
    async with plant(database_url, media_dir) as (_, service):
        yield service


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def status(http: aiohttp.ClientSession, url: str, **kw: Any) -> int:
    async with http.get(url, allow_redirects=False, **kw) as answer:
        return answer.status


async def test_nothing_is_served_without_a_live_session(site: Service,
                                                        http: aiohttp.ClientSession) -> None:
    base = site.url
    async with http.get(f"{base}/dashboard/ledger?area=A1", allow_redirects=False) as page:
        assert page.status == 302
        target = URL(page.headers["Location"])
        assert target.path == "/dashboard/login"
        assert target.query["next"] == "/dashboard/ledger?area=A1"
    ticket = await filed(site.clock(), photos=["0" * 64])
    for path in ("/dashboard/api/overview", "/dashboard/live", "/dashboard/ledger.xlsx",
                 f"/dashboard/tickets/{ticket.id}/photos/{'0' * 64}"):
        assert await status(http, base + path) == 401, path
    http.cookie_jar.update_cookies({"sb_session": "forged"})
    assert await status(http, f"{base}/dashboard") == 302


async def test_a_local_administrator_signs_in_and_out(site: Service,
                                                      http: aiohttp.ClientSession) -> None:
    base = site.url
    cookie = await admin_signs_in(http, base, site.clock())
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    async with http.get(f"{base}/dashboard") as page:
        text = await page.text()
        assert page.status == 200 and "admin" in text and "未闭环" in text
        assert page.headers["X-Frame-Options"] == "DENY"
    csrf = re.search(r'name="csrf" value="([^"]+)"', text)
    assert csrf is not None
    # A cross-site form (no token, or another) signs nobody out.
    for data in ({}, {"csrf": "guessed"}):
        async with http.post(f"{base}/dashboard/logout", data=data,
                             allow_redirects=False) as forged:
            assert forged.status == 403
    assert await status(http, f"{base}/dashboard") == 200
    async with http.post(f"{base}/dashboard/logout", data={"csrf": csrf.group(1)},
                         allow_redirects=False) as out:
        assert out.status == 302
    assert await status(http, f"{base}/dashboard") == 302


async def test_a_wrong_password_a_missing_form_token_and_a_far_next_are_refused(
        site: Service, http: aiohttp.ClientSession) -> None:
    base = site.url
    await admin_signs_in(http, base, site.clock())
    http.cookie_jar.clear()
    async with http.get(f"{base}/dashboard/login?next=https://evil.example/x") as page:
        form = await page.text()
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None and 'value="/dashboard"' in form      # never another site
    async with http.post(f"{base}/dashboard/login", allow_redirects=False, data={
            "csrf": token.group(1), "name": "admin", "password": "wrong"}) as wrong:
        assert wrong.status == 302 and "error=1" in wrong.headers["Location"]
    http.cookie_jar.clear()
    async with http.post(f"{base}/dashboard/login", allow_redirects=False, data={
            "csrf": token.group(1), "name": "admin", "password": "x"}) as no_cookie:
        assert no_cookie.status == 403


async def test_a_session_ends_when_it_expires_or_its_person_leaves(
        site: Service, http: aiohttp.ClientSession) -> None:
    base, now = site.url, site.clock()
    await person_signs_in(http, base, "sunli", now, lasts=timedelta(hours=1))
    assert await status(http, f"{base}/dashboard") == 200
    await site.time_passes(now + timedelta(hours=1, minutes=1))
    assert await status(http, f"{base}/dashboard") == 302
    await person_signs_in(http, base, "liuyang", site.clock())
    assert await status(http, f"{base}/dashboard") == 200
    await User.filter(id="liuyang").update(active=False)
    assert await status(http, f"{base}/dashboard") == 302
    assert await status(http, f"{base}/dashboard/api/overview") == 401


async def test_what_a_worker_a_supervisor_and_a_safety_manager_may_see(
        site: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    base, now = site.url, site.clock()
    mine = await filed(now, area="A1", reporter="zhangsan", photos=[])
    tank = await filed(now, area="T1", category="C04", reporter="guoqiang",
                       description="储罐区呼吸阀堵塞")
    # The worker: the ledger and someone else's ticket refused (recorded); their own shown.
    await person_signs_in(http, base, "zhangsan", now)
    async with http.get(f"{base}/dashboard/ledger") as refused:
        assert refused.status == 403 and "我的隐患" in await refused.text()
    assert await status(http, f"{base}/dashboard/ledger.xlsx") == 403
    assert await status(http, f"{base}/dashboard/tickets/{tank.id}") == 403
    assert await status(http, f"{base}/dashboard/tickets/{mine.id}") == 200
    assert await AuditEvent.filter(action="dashboard.refused", actor="zhangsan").count() == 3
    # Their supervisor: their department's tickets, not the tank farm's.
    http.cookie_jar.clear()
    await person_signs_in(http, base, "wangqiang", now)
    async with http.get(f"{base}/dashboard/ledger") as ledger:
        text = await ledger.text()
        assert ledger.status == 200 and mine.number in text and tank.number not in text
    assert await status(http, f"{base}/dashboard/tickets/{tank.id}") == 403
    # A safety manager: the whole plant.
    http.cookie_jar.clear()
    await person_signs_in(http, base, "sunli", now)
    async with http.get(f"{base}/dashboard/ledger") as ledger:
        text = await ledger.text()
        assert mine.number in text and tank.number in text


async def test_photos_are_shown_to_those_who_may_see_their_ticket(
        site: Service, http: aiohttp.ClientSession) -> None:
    from bot.media import open_store, opened

    base, now = site.url, site.clock()
    async with opened(open_store(site.settings)) as media:
        digest = await media.put(photo(5))
    ticket = await filed(now, area="T1", category="C04", reporter="guoqiang", photos=[digest])
    await person_signs_in(http, base, "sunli", now)
    async with http.get(f"{base}/dashboard/tickets/{ticket.id}") as page:
        assert f"/dashboard/tickets/{ticket.id}/photos/{digest}" in await page.text()
    async with http.get(f"{base}/dashboard/tickets/{ticket.id}/photos/{digest}") as image:
        assert image.status == 200 and image.content_type.startswith("image/")
        assert await image.read() == photo(5)
    http.cookie_jar.clear()
    await person_signs_in(http, base, "zhangsan", now)
    assert await status(http, f"{base}/dashboard/tickets/{ticket.id}/photos/{digest}") == 403


async def test_the_ledger_filters_pages_escapes_and_exports(site: Service,
                                                           http: aiohttp.ClientSession) -> None:
    base, now = site.url, site.clock()
    for n in range(3):
        await filed(now - timedelta(days=n), area="A3", category="H01",
                    description=f"配电箱门没关{n}")
    await filed(now, area="A1", description="<script>alert('x')</script>通道堵塞",
                grade=Grade.GENERAL)
    await admin_signs_in(http, base, now)
    async with http.get(f"{base}/dashboard/ledger?area=A3&per_page=2&sort=created") as page:
        text = await page.text()
        assert "共 3 条" in text and "第 1/2 页" in text
        assert text.index("配电箱门没关2") < text.index("配电箱门没关1")
    async with http.get(f"{base}/dashboard/ledger?q=通道") as page:
        text = await page.text()
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;通道堵塞" in text
        assert "<script>alert" not in text
    for query, field in (("from=2026-13-01", "from"), ("colour=red", "colour"),
                         ("area=A3&per_page=2&page=3", "page"), ("sort=color", "sort")):
        async with http.get(f"{base}/dashboard/ledger?{query}") as bad:
            assert bad.status == 400, query
            assert f"筛选条件有误（{field}）" in await bad.text()
    async with http.get(f"{base}/dashboard/ledger.xlsx?area=A3") as export:
        assert export.status == 200
        sheet = load_workbook(io.BytesIO(await export.read()), read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "编号" and len(rows) == 4
    assert {r[5] for r in rows[1:]} == {"配电箱门没关0", "配电箱门没关1", "配电箱门没关2"}
    async with http.get(f"{base}/dashboard/ledger.xlsx?from=yesterday") as bad:
        assert bad.status == 400 and (await bad.json())["field"] == "from"


async def test_the_overview_counts_and_changes_live(site: Service,
                                                    http: aiohttp.ClientSession) -> None:
    base, now = site.url, site.clock()
    await filed(now - timedelta(days=5), area="A3", category="H01")         # overdue by now
    await filed(now, area="T1", category="C04", grade=Grade.MAJOR, reporter="guoqiang")
    await person_signs_in(http, base, "sunli", now)
    async with http.get(f"{base}/dashboard/api/overview") as answer:
        o = await answer.json()
    assert (o["open"], o["overdue"], o["major_open"]) == (2, 1, 1)
    assert dict(o["by_area"]) == {"3号车间": 1, "罐区": 1}
    async with http.get(f"{base}/dashboard/live", timeout=aiohttp.ClientTimeout(total=20)
                        ) as events:
        assert events.content_type == "text/event-stream"
        assert (await events.content.readline()).startswith(b"retry:")
        await asyncio.sleep(1.5)                     # the watcher has read the mark once
        await filed(site.clock(), area="E1", category="H01")
        line = b""
        while not line.startswith(b"event: change"):
            line = await asyncio.wait_for(events.content.readline(), 10)
    await asyncio.sleep(2.1)                          # the figures' cache has expired
    async with http.get(f"{base}/dashboard/api/overview") as answer:
        assert (await answer.json())["open"] == 3


async def test_the_months_rates_count_filed_closed_and_on_time(site: Service) -> None:
    """Last month: two filed, one of them closed by its deadline; this month: two filed, one
    closed after its deadline, plus last month's other one closed late this month."""
    tz = site.settings.tz
    now = site.clock()
    this = month_start(now, tz)
    last = month_start(this - timedelta(days=1), tz)
    early, late_one = (await filed(last + timedelta(days=1)),
                       await filed(last + timedelta(days=2)))
    fresh, _ = (await filed(this + timedelta(minutes=1)), await filed(this + timedelta(minutes=2)))
    for ticket, closed in ((early, early.deadline - timedelta(hours=1)),
                           (late_one, this + timedelta(minutes=3)),
                           (fresh, this + timedelta(minutes=4))):
        await Ticket.filter(id=ticket.id).update(status=Status.CLOSED, closed_at=closed)
    await Ticket.filter(id=fresh.id).update(deadline=this)      # closed after its deadline
    o = await overview(Viewer("sunli", "孙丽", Scope.PLANT), max(now, this + timedelta(
        minutes=5)), tz, {})
    assert (o.last_month.filed, o.last_month.closed, o.last_month.closed_in_month,
            o.last_month.on_time) == (2, 2, 1, 1)
    assert (o.this_month.filed, o.this_month.closed, o.this_month.closed_in_month,
            o.this_month.on_time) == (2, 1, 2, 0)
    assert o.closed_month == 2 and o.open == 1
    assert o.this_month.closure == 0.5 and o.last_month.punctual == 1.0
