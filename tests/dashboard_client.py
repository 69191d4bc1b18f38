"""Signing in to the dashboard in tests, as people do (a local administrator's form) or as the
platforms' login leaves it (a session opened for a person), and tickets filed as the report
dialog files them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from yarl import URL

from bot.settings import SHIPPED_CONFIG
from models.calendar import WorkCalendar
from models.catalog import Grade, load_catalog
from models.dashboard.accounts import add_admin, open_session
from models.hazard import Ticket, assignment, file_ticket

TZ = ZoneInfo("Asia/Shanghai")
CATALOG = load_catalog(SHIPPED_CONFIG / "categories.toml")
HOURS = timedelta(hours=12)


async def admin_signs_in(http: aiohttp.ClientSession, base: str, now: datetime,
                         name: str = "admin") -> str:
    """A local administrator made and signed in through the form; the session's Set-Cookie
    header."""
    password = await add_admin(name, now)
    async with http.get(f"{base}/dashboard/login") as page:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    async with http.post(f"{base}/dashboard/login", allow_redirects=False, data={
            "csrf": csrf.group(1), "next": "/dashboard", "name": name,
            "password": password}) as answer:
        assert answer.status == 302 and answer.headers["Location"] == "/dashboard"
        return next(h for h in answer.headers.getall("Set-Cookie")
                    if h.startswith("sb_session="))


async def person_signs_in(http: aiohttp.ClientSession, base: str, user_id: str,
                          now: datetime, lasts: timedelta = HOURS) -> None:
    """A person as the platform's login leaves them: a session and its cookie."""
    opened = await open_session(now, lasts, user_id=user_id)
    http.cookie_jar.update_cookies({"sb_session": opened.token}, URL(base))


async def filed(now: datetime, *, area: str = "A1", category: str = "F02",
                grade: Grade = Grade.GENERAL, description: str = "灭火器压力不足",
                reporter: str = "zhangsan", photos: Sequence[str] = ()) -> Ticket:
    """A ticket filed as the report dialog files it, due two working days on."""
    draft = await Ticket.create(reporter_id=reporter, area_id=area, category=category,
                                description=description, grade=grade, photos=list(photos),
                                created_at=now, updated_at=now)
    kind = CATALOG.get(category)
    assert kind is not None
    await file_ticket(draft, now, f"{now.astimezone(TZ):%Y%m%d}", await assignment(draft, kind),
                      kind, WorkCalendar(TZ, weekend=frozenset()))
    await draft.refresh_from_db()
    return draft
