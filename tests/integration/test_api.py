"""The JSON API at /api/v1 as the plant's other systems call it: the demo plant on loopback,
tokens made by `create_token` or by `safetybot api-token`, tickets filed by the models' own
functions. A system pages through a filter until `next_cursor` is null, reads one ticket with its
record, the areas with their risk, the activations with their responders; a call without a live
token, a bad date, an unknown field or a bad cursor is refused, naming what is wrong; the OpenAPI
document names every path the service routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.web.api import API
from models.calendar import WorkCalendar
from models.catalog import Grade, load_catalog
from models.dashboard.tokens import create_token
from models.emergency import Activation, ActivationStatus, Responder
from models.hazard import Status, Ticket, assignment, file_ticket
from models.org import Area, set_risk_status
from tests.harness import ROOT, Service, cli
from tests.plant import plant

TZ = ZoneInfo("Asia/Shanghai")
CATALOG = load_catalog(ROOT / "config" / "categories.toml")
DIGEST = "ab" * 32


@pytest.fixture
async def service(db: TortoiseContext, database_url: str, media_dir: Path
                  ) -> AsyncIterator[Service]:
    async with plant(database_url, media_dir) as (_, running):
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def token(service: Service) -> str:
    _, secret = await create_token("mes", service.clock())
    return secret


async def call(http: aiohttp.ClientSession, service: Service, path: str, token: str | None,
               method: str = "GET", **params: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.request(method, f"{service.url}{API}{path}", params=params,
                            headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def every_page(http: aiohttp.ClientSession, service: Service, path: str, token: str,
                     **params: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor = ""
    while True:
        status, body = await call(http, service, path, token,
                                  **params, **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        pages.append(body["items"])
        if body["next_cursor"] is None:
            return pages
        cursor = body["next_cursor"]
        assert len(pages) < 100


async def filed(now: datetime, area: str, category: str, description: str,
                photos: tuple[str, ...] = (), grade: Grade = Grade.GENERAL) -> Ticket:
    """A ticket filed as the report dialog files it: numbered, assigned, its deadline counted
    in working days, its record begun."""
    draft = await Ticket.create(reporter_id="zhangsan", area_id=area, category=category,
                                description=description, grade=grade, photos=list(photos),
                                created_at=now, updated_at=now)
    kind = CATALOG.get(category)
    assert kind is not None
    await file_ticket(draft, now, f"{now.astimezone(TZ):%Y%m%d}",
                      await assignment(draft, kind), kind, WorkCalendar(TZ))
    await draft.refresh_from_db()
    return draft


async def many(now: datetime) -> list[Ticket]:
    """Twenty-three tickets over three weeks in two areas, some closed, two overdue, and a
    draft nobody may see."""
    made = [await filed(now - timedelta(days=20), "A3", "H01", "配电箱门没关，电线裸露"),
            await filed(now - timedelta(days=15), "A1", "F02", "灭火器压力不足")]
    for n in range(21):
        day = now - timedelta(days=n % 7, hours=n)
        closed = n % 4 == 0
        made.append(await Ticket.create(
            number=f"HZ-API-{n:04d}", status=Status.CLOSED if closed else Status.OPEN,
            reporter_id="zhangsan", owner_id="lihua", reviewer_id="huangjun",
            area_id="A3" if n % 3 else "A1", category="H01" if n % 2 else "M03",
            description=f"第{n}处 护栏松动", deadline=day + timedelta(days=30),
            created_at=day, updated_at=day, opened_at=day, closed_at=day if closed else None))
    await Ticket.create(reporter_id="zhangsan", area_id="A3", description="还在填写",
                        created_at=now, updated_at=now)
    return made


async def test_a_system_pages_through_a_filter_and_misses_nothing(
        service: Service, http: aiohttp.ClientSession, token: str) -> None:
    now = service.clock()
    made = await many(now)
    pages = await every_page(http, service, "/tickets", token, limit="5")
    ids = [item["id"] for page in pages for item in page]
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert ids == sorted((t.id for t in made), reverse=True)      # newest first, each once

    pages = await every_page(http, service, "/tickets", token, limit="4", area="A3",
                             status="open")
    assert {i["id"] for p in pages for i in p} == {
        t.id for t in made if t.area_id == "A3" and t.status is Status.OPEN}
    item = pages[0][0]
    assert item["area"] == {"code": "A3", "name": "3号车间"}
    assert item["status"] == "open" and item["status_label"] == "整改中"
    assert item["category"]["name"] in ("用电类", CATALOG.name_of("M03"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00", item["created_at"])
    assert item["owner"] == "lihua" and item["reporter"] == "zhangsan"

    # The two filed weeks ago are past their deadlines; the rest have a month.
    _, overdue = await call(http, service, "/tickets", token, overdue="true")
    assert [i["number"] for i in overdue["items"]] == [made[1].number, made[0].number]
    assert all(i["overdue"] for i in overdue["items"])
    day = (now - timedelta(days=20)).astimezone(TZ).date().isoformat()
    _, on_the_day = await call(http, service, "/tickets", token, **{"from": day, "to": day})
    assert [i["id"] for i in on_the_day["items"]] == [made[0].id]
    _, found = await call(http, service, "/tickets", token, q="电线裸露")
    assert [i["description"] for i in found["items"]] == ["配电箱门没关，电线裸露"]
    _, last = await call(http, service, "/tickets", token, limit="200")
    assert len(last["items"]) == 23 and last["next_cursor"] is None


async def test_one_ticket_with_its_photos_and_record(
        service: Service, http: aiohttp.ClientSession, token: str) -> None:
    t = await filed(service.clock(), "A3", "H01", "<b>配电箱</b>门没关", photos=(DIGEST,))
    async with http.get(f"{service.url}{API}/tickets/{t.id}",
                        headers={"Authorization": f"Bearer {token}"}) as response:
        text = await response.text()
        assert response.status == 200
    assert "配电箱" in text and "\\u" not in text            # JSON as UTF-8, not escaped
    _, body = await call(http, service, f"/tickets/{t.id}", token)
    assert body["number"] == t.number and body["description"] == "<b>配电箱</b>门没关"
    assert body["photos"] == {"before": [DIGEST], "after": []}
    assert (body["owner"], body["checklist"]["责任"]) == ("gaofeng", "高峰")   # H01 names him
    assert [(e["action"], e["words"], e["to"]) for e in body["history"]] == [
        ("filed", "登记", "open")]
    assert body["deadline"].endswith("+08:00")

    draft = await Ticket.create(reporter_id="zhangsan", created_at=t.created_at,
                                updated_at=t.created_at)
    for missing in (str(draft.id), "999999", "abc", "9" * 30):
        status, body = await call(http, service, f"/tickets/{missing}", token)
        assert status == 404 and body["error"]


async def test_areas_with_their_colour_status_and_open_tickets(
        service: Service, http: aiohttp.ClientSession, token: str) -> None:
    now = service.clock()
    await many(now)
    await set_risk_status(await Area.get(code="A3"), "高", "重大隐患未闭环", now)
    status, body = await call(http, service, "/areas", token)
    assert status == 200
    areas = {a["code"]: a for a in body["items"]}
    assert set(areas) == set(await Area.all().values_list("code", flat=True))
    a3, a1, t1 = areas["A3"], areas["A1"], areas["T1"]
    assert (a3["name"], a3["risk_color"], a3["risk_status"], a3["risk_reason"]) == (
        "3号车间", "红", "高", "重大隐患未闭环")
    assert a3["risk_status_at"].endswith("+08:00")
    assert (a1["risk_color"], a1["risk_status"]) == ("橙", None)
    open_in = {code: await Ticket.filter(area_id=code, status=Status.OPEN).count()
               for code in ("A1", "A3")}
    assert (a3["open_tickets"], a1["open_tickets"], t1["open_tickets"]) == (
        open_in["A3"], open_in["A1"], 0)
    assert (a3["overdue_tickets"], a1["overdue_tickets"]) == (1, 1)


async def test_activations_with_their_responders_paged_and_filtered(
        service: Service, http: aiohttp.ClientSession, token: str) -> None:
    start = service.clock() - timedelta(days=3)
    held = []
    for n, drill in enumerate((True, False, True)):
        at = start + timedelta(days=n)
        a = await Activation.create(
            status=ActivationStatus.CLOSED, plan_id=None, level="三级", area_id="T1",
            drill=drill, token=f"t{n}", raised_by="liuyang", commander="liuyang",
            created_at=at, activated_at=at, closed_at=at + timedelta(hours=1))
        await Responder.create(activation=a, user_id="zhouwei", task_id=f"t{n}a",
                               notified_at=at, answer="收到",
                               answered_at=at + timedelta(seconds=40 + n))
        await Responder.create(activation=a, user_id="sunli", task_id=f"t{n}b",
                               notified_at=at)
        held.append(a)
    pages = await every_page(http, service, "/activations", token, limit="1")
    assert [p[0]["id"] for p in pages] == [a.id for a in reversed(held)]
    _, drills = await call(http, service, "/activations", token, drill="true")
    assert [a["id"] for a in drills["items"]] == [held[2].id, held[0].id]
    first = drills["items"][1]
    assert (first["drill"], first["status"], first["level"], first["area"]) == (
        True, "closed", "三级", {"code": "T1", "name": await area_name("T1")})
    assert first["responders"] == [
        {"user": "zhouwei", "deputy_for": None, "answer": "收到",
         "notified_at": local(held[0].activated_at),
         "answered_at": local(held[0].activated_at + timedelta(seconds=40)),
         "seconds_to_answer": 40.0, "late": False},
        {"user": "sunli", "deputy_for": None, "answer": None,
         "notified_at": local(held[0].activated_at), "answered_at": None,
         "seconds_to_answer": None, "late": False}]
    day = start.astimezone(TZ).date().isoformat()
    _, that_day = await call(http, service, "/activations", token, **{"from": day, "to": day})
    assert [a["id"] for a in that_day["items"]] == [held[0].id]


async def area_name(code: str) -> str:
    return (await Area.get(code=code)).name


def local(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(TZ).isoformat()


async def test_only_a_live_token_gets_in_and_a_read_only_one_changes_nothing(
        service: Service, http: aiohttp.ClientSession, database_url: str,
        media_dir: Path) -> None:
    async with http.get(f"{service.url}{API}/tickets") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"]
    for wrong in ("", "sbt_not-a-token", "nonsense"):
        status, body = await call(http, service, "/areas", wrong)
        assert status == 401 and body["error"]

    env = {"SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_MEDIA_DIR": str(media_dir)}
    made = cli("api-token", "create", "erp", env=env)
    assert made.returncode == 0, made.stderr
    number, secret = re.search(r"token (\d+) \(erp, read only\): (\S+)", made.stdout).groups()
    assert (await call(http, service, "/areas", secret))[0] == 200
    status, body = await call(http, service, "/tickets", secret, "POST")
    assert status == 403 and body["error"] == "this token reads only"
    _, writer = await create_token("dispatch", service.clock(), writes=True)
    status, _ = await call(http, service, "/tickets", writer, "POST")
    assert status == 405                                  # may write, but nothing here does
    assert cli("api-token", "revoke", number, env=env).returncode == 0
    status, body = await call(http, service, "/areas", secret)
    assert status == 401 and body["error"]
    listed = cli("api-token", "list", env=env).stdout
    assert re.search(rf"^{number}\terp\tread\trevoked .*last used \d", listed, re.M)


async def test_a_bad_query_is_refused_naming_its_field(
        service: Service, http: aiohttp.ClientSession, token: str) -> None:
    await many(service.clock())
    _, page = await call(http, service, "/tickets", token, limit="2")
    activation_cursor = "YTo1"                       # base64 of "a:5": another list's cursor
    for path, params, field in (
            ("/tickets", {"from": "2026-13-01"}, "from"),
            ("/tickets", {"to": "yesterday"}, "to"),
            ("/tickets", {"from": "2026-12-07", "to": "2026-12-01"}, "to"),
            ("/tickets", {"colour": "red"}, "colour"),
            ("/tickets", {"page": "2"}, "page"),            # the API pages by cursor only
            ("/tickets", {"cursor": "not-a-cursor!"}, "cursor"),
            ("/tickets", {"cursor": activation_cursor}, "cursor"),
            ("/tickets", {"limit": "0"}, "limit"),
            ("/tickets", {"limit": "201"}, "limit"),
            ("/tickets", {"status": "draft"}, "status"),
            ("/tickets", {"grade": "big"}, "grade"),
            ("/tickets", {"overdue": "yes"}, "overdue"),
            ("/activations", {"drill": "maybe"}, "drill"),
            ("/activations", {"from": "2026-02-30"}, "from"),
            ("/activations", {"cursor": page["next_cursor"]}, "cursor"),
            ("/activations", {"area": "A3"}, "area")):
        status, body = await call(http, service, path, token, **params)
        assert (status, body.get("field")) == (400, field), (path, params, body)
        assert field in body["error"]


async def test_the_openapi_document_describes_every_route(
        service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{service.url}{API}/openapi.json") as response:   # no token
        assert response.status == 200
        doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    assert service.app is not None
    routed = {r.canonical for r in service.app.router.resources()
              if r.canonical.startswith(API)}
    assert set(doc["paths"]) == routed
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [node["$ref"]] if "$ref" in node else [r for v in node.values()
                                                          for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for ref in refs(doc):
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]                     # every reference resolves
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            assert "200" in operation["responses"]
            named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"{(\w+)}", path))
            if operation.get("security") != []:
                assert "401" in operation["responses"]
    described = {p["name"] for p in doc["paths"][f"{API}/tickets"]["get"]["parameters"]}
    assert described == {"area", "category", "grade", "status", "owner", "from", "to",
                         "overdue", "q", "limit", "cursor"}

