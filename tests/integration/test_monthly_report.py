"""The monthly 《隐患闭环分析报告》 against numbers worked out by hand, and how it reaches people:
a markdown summary, a chart and the Excel ledger, through WeCom (the simulator) and the web chat.

The plant: areas 1号车间 (A1), 2号车间 (A2), 3号车间 (A3); categories from config/categories.toml
(H01 用电类, F02 消防类, M03 机械防护类); times are Asia/Shanghai wall-clock times. The report is
for 2026-11 (2026-10-31T16:00Z ≤ t < 2026-11-30T16:00Z), compared with 2026-10.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from openpyxl import load_workbook
from tortoise.context import TortoiseContext

from bot.media.folder import FolderStore
from models import markup, transaction
from models.catalog import Grade, load_catalog
from models.closure import Breakdown, MonthlyClosure, closure_for, ledger_pages, month_window
from models.hazard import Status, Ticket, TicketKind
from models.org import Area, User
from models.outbox import OutboxMessage
from models.outgoing import File
from scheduler.monthly import MARKDOWN_MAX_BYTES, render_markdown, send_monthly, write_monthly
from tests.harness import ROOT, Service
from tests.integration.test_outbox import World, make_world
from tests.webchat_client import Socket, queue

TZ = ZoneInfo("Asia/Shanghai")
CATALOG = load_catalog(ROOT / "config" / "categories.toml")
MONTH = "2026-11"
LEDGER = "隐患闭环分析报告-2026-11.xlsx"


def local(text: str) -> datetime:
    """A Shanghai wall-clock time, as stored (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).astimezone(UTC)


async def ticket(name: str, area: str, category: str, created: str, *, deadline: str | None,
                 closed: str | None = None, status: Status | None = None, reports: int = 1,
                 numbered: bool = True, grade: Grade = Grade.GENERAL,
                 recurs: list[str] | None = None, kind: TicketKind = TicketKind.HAZARD
                 ) -> Ticket:
    at = local(created)
    return await Ticket.create(
        number=f"HZ-{at.astimezone(TZ):%Y%m%d}-{name}" if numbered else None,
        status=status or (Status.CLOSED if closed else Status.OPEN), reporter_id="zhangsan",
        owner_id="gaofeng", reviewer_id="xuming", area_id=area, category=category,
        description=f"隐患{name}", grade=grade, deadline=local(deadline) if deadline else None,
        created_at=at, updated_at=at, opened_at=at, closed_at=local(closed) if closed else None,
        reports=reports, recurs=recurs, kind=kind)


async def people_and_areas(count: int = 3) -> None:
    for user_id, name in (("zhangsan", "张三"), ("gaofeng", "高峰"), ("xuming", "徐明")):
        await User.create(id=user_id, name=name, roles=["worker"])
    await Area.bulk_create([Area(code=f"A{i}", name=f"{i}号车间") for i in range(1, count + 1)])


@pytest.fixture
async def plant(db: TortoiseContext) -> None:
    """Sixteen hazards and three other tickets; the comments say what each one counts for."""
    await people_and_areas()
    # September: closed in September, reported 4 times: in no month of interest.
    await ticket("S1", "A1", "H01", "2026-09-10 09:00", deadline="2026-09-13 09:00",
                 closed="2026-09-12 09:00", reports=4)
    # October.
    await ticket("P1", "A1", "H01", "2026-10-05 08:00", deadline="2026-10-08 08:00",
                 closed="2026-10-07 08:00")                          # 48 h, on time
    await ticket("P2", "A2", "F02", "2026-10-20 10:00", deadline="2026-10-22 10:00",
                 closed="2026-11-02 10:00")                          # closed in Nov, 312 h, late
    await ticket("P3", "A1", "M03", "2026-10-25 09:00", deadline="2026-10-30 09:00",
                 reports=2)                                          # still open, overdue
    # November.
    await ticket("N1", "A1", "H01", "2026-11-01 00:30", deadline="2026-11-04 00:30",
                 closed="2026-11-03 00:30")                          # 2026-10-31T16:30Z; 48 h
    await ticket("N2", "A1", "H01", "2026-11-03 09:00", deadline="2026-11-06 09:00",
                 closed="2026-11-07 09:00", reports=3)               # 96 h, late
    await ticket("N3", "A2", "F02", "2026-11-05 08:00", deadline="2026-11-07 08:00",
                 closed="2026-11-06 20:00")                          # 36 h, on time
    await ticket("N4", "A2", "F02", "2026-11-10 10:00", deadline="2026-11-12 10:00",
                 status=Status.SUBMITTED)                            # open, overdue
    await ticket("N5", "A3", "M03", "2026-11-12 14:00", deadline="2026-11-17 14:00",
                 closed="2026-11-13 02:00",                          # 12 h, on time
                 recurs=["HZ-20261025-P3"])                          # 复发
    await ticket("N6", "A3", "H01", "2026-11-20 08:00", deadline="2026-11-23 08:00",
                 closed="2026-11-22 08:00",                          # 48 h, on time
                 recurs=["HZ-20261005-P1"])                          # 复发
    await ticket("N7", "A3", "M03", "2026-11-28 10:00", deadline="2026-12-03 10:00")  # open
    await ticket("N8", "A1", "M03", "2026-11-29 10:00", deadline="2026-12-04 10:00",
                 closed="2026-12-01 10:00")                          # closed in December
    await ticket("N9", "A2", "H01", "2026-11-15 09:00", deadline="2026-11-18 09:00",
                 status=Status.CANCELLED)
    await ticket("N10", "A1", "H01", "2026-11-16 09:00", deadline=None, status=Status.LINKED,
                 numbered=False)                                     # a repeat of N2
    await ticket("N11", "A2", "F02", "2026-11-30 23:30", deadline=None, status=Status.PLAN,
                 grade=Grade.MAJOR)                                  # 15:30Z: still November
    await ticket("N12", "A3", "H01", "2026-12-01 00:30", deadline="2026-12-04 00:30")
    # 2026-11-30T16:30Z: December
    # An emergency review and its improvement actions are tickets, but not hazards: counted
    # nowhere in the report.
    await ticket("R1", "A1", "", "2026-11-08 10:00", deadline="2026-11-10 10:00",
                 closed="2026-11-09 10:00", kind=TicketKind.REVIEW)
    await ticket("G1", "A1", "", "2026-11-09 10:00", deadline="2026-11-12 10:00",
                 closed="2026-11-20 10:00", kind=TicketKind.ACTION)   # late
    await ticket("G2", "A2", "", "2026-11-09 10:00", deadline="2026-11-12 10:00",
                 kind=TicketKind.ACTION, reports=2)                    # open, overdue


@pytest.fixture
async def report(plant: None) -> MonthlyClosure:
    return await closure_for(MONTH, TZ, CATALOG)


async def ledger_numbers(month: str) -> list[str]:
    return [row.number async for page in ledger_pages(month, TZ, CATALOG) for row in page]


async def test_the_headline_numbers_match_the_hand_count(report: MonthlyClosure) -> None:
    c = report.current
    # Filed in November: N1–N9 and N11 (N10 is linked, N12 is December); N9 is cancelled.
    assert (c.filed, c.cancelled) == (9, 1)
    # Of the 9, closed before 2026-12-01 00:00: N1 N2 N3 N5 N6 (N8 closed in December) → 5/9.
    assert c.closed_of_filed == 5
    assert c.closure_rate == pytest.approx(5 / 9)
    # Closed in November: P2 N1 N2 N3 N5 N6; on time all but P2 and N2 → 4/6.
    assert (c.closed, c.on_time) == (6, 4)
    assert c.on_time_rate == pytest.approx(4 / 6)
    # Hours: 312 + 48 + 96 + 36 + 12 + 48 = 552; mean 552 / 6 = 92; median (48 + 48) / 2.
    assert (c.mean_hours, c.median_hours) == (pytest.approx(92), pytest.approx(48))
    # Open at month end: P3 N4 N7 N8 N11; overdue then: P3 (10-30) and N4 (11-12).
    assert (c.open_at_end, c.overdue_at_end) == (5, 2)


async def test_the_previous_month_and_the_change(report: MonthlyClosure) -> None:
    p, d = report.previous, report.change
    assert report.previous_month == "2026-10"
    # October: filed P1 P2 P3; closed in October P1 only (48 h, on time); open at its end
    # P2 and P3, both past their deadlines.
    assert (p.filed, p.cancelled, p.closed_of_filed, p.closed, p.on_time) == (3, 0, 1, 1, 1)
    assert (p.closure_rate, p.on_time_rate) == (pytest.approx(1 / 3), 1.0)
    assert (p.mean_hours, p.median_hours, p.open_at_end, p.overdue_at_end) == (48, 48, 2, 2)
    # Change: 9 − 3 filed; 55.6 % − 33.3 % = +22.2 points; 66.7 % − 100 % = −33.3 points;
    # mean 92 − 48 = +44 h; median and overdue unchanged; open 5 − 2.
    assert (d.filed, d.closed, d.open_at_end, d.overdue_at_end) == (6, 5, 3, 0)
    assert d.closure_rate == pytest.approx(100 * (5 / 9 - 1 / 3))
    assert d.on_time_rate == pytest.approx(100 * (4 / 6 - 1))
    assert (d.mean_hours, d.median_hours) == (pytest.approx(44), 0)


async def test_rows_by_area_and_by_category(report: MonthlyClosure) -> None:
    # 1号车间: filed N1 N2 N8, closed N1 N2, overdue P3.  2号车间: filed N3 N4 N11 (N9 is
    # cancelled), closed N3, overdue N4.  3号车间: filed N5 N6 N7, closed N5 N6.
    # Equal filed counts: the most overdue first, then by name.
    assert report.by_area == (Breakdown("1号车间", 3, 2, 1), Breakdown("2号车间", 3, 1, 1),
                              Breakdown("3号车间", 3, 2, 0))
    assert report.by_area[0].closure_rate == pytest.approx(2 / 3)
    # 用电类: N1 N2 N6, all closed.  消防类: N3 N4 N11, closed N3, overdue N4.
    # 机械防护类: N5 N7 N8, closed N5, overdue P3.
    assert report.by_category == (Breakdown("机械防护类 M03", 3, 1, 1),
                                  Breakdown("消防类 F02", 3, 1, 1),
                                  Breakdown("用电类 H01", 3, 3, 0))
    # The rows add up to the headline numbers.
    for rows in (report.by_area, report.by_category):
        assert sum(b.filed for b in rows) == report.current.filed
        assert sum(b.closed for b in rows) == report.current.closed_of_filed
        assert sum(b.overdue for b in rows) == report.current.overdue_at_end


async def test_the_most_repeated_hazards(report: MonthlyClosure) -> None:
    # N2 (3 reports, filed in November) and P3 (2, open all November); S1 (4) was closed in
    # September.
    assert [(r.number, r.reports, r.area, r.category, r.status) for r in report.repeated] == [
        ("HZ-20261103-N2", 3, "1号车间", "用电类 H01", "已闭环"),
        ("HZ-20261025-P3", 2, "1号车间", "机械防护类 M03", "整改中"),
    ]


async def test_a_month_is_a_calendar_month_in_the_plant_time_zone(report: MonthlyClosure
                                                                  ) -> None:
    window = month_window(MONTH, TZ)
    assert (window.start, window.end) == (datetime(2026, 10, 31, 16, tzinfo=UTC),
                                          datetime(2026, 11, 30, 16, tzinfo=UTC))
    numbers = await ledger_numbers(MONTH)
    assert "HZ-20261101-N1" in numbers          # 2026-10-31T16:30Z: November in Shanghai
    assert "HZ-20261130-N11" in numbers         # 2026-11-30T15:30Z
    assert not any(n.endswith("-N12") for n in numbers)   # 2026-11-30T16:30Z: December
    assert await ledger_numbers("2026-10") == [
        "HZ-20261005-P1", "HZ-20261020-P2", "HZ-20261025-P3"]
    with pytest.raises(ValueError, match="2026-11"):
        await closure_for("2026-13", TZ, CATALOG)


async def test_the_ledger_read_in_pages_keeps_every_ticket_once_in_order(plant: None) -> None:
    # Three more filed at the same instant as N3: a page may end between tickets of one time.
    for name in ("T1", "T2", "T3"):
        await ticket(name, "A2", "H01", "2026-11-05 08:00", deadline="2026-11-08 08:00")
    whole = await ledger_numbers(MONTH)
    assert len(whole) == 13 and len(set(whole)) == 13
    for size in (1, 2, 3, 5):
        pages = [page async for page in ledger_pages(MONTH, TZ, CATALOG, size)]
        assert [row.number for page in pages for row in page] == whole
        assert max(len(page) for page in pages) == size


async def test_the_summary_reads_with_the_change_from_last_month(report: MonthlyClosure
                                                                 ) -> None:
    text = markup.render_markdown(render_markdown(report), room=MARKDOWN_MAX_BYTES)
    assert text.startswith("## 隐患闭环分析报告（2026年11月）")
    for line in ("> 上报隐患：9项，较上月+6项，另有已取消1项",
                 "> 闭环率：55.6%（5/9），较上月+22.2个百分点",
                 "> 本月闭环：6项，按期闭环率：66.7%（4/6），较上月−33.3个百分点",
                 "> 闭环用时：平均3天20小时，较上月+1天20小时，中位数2天，与上月持平",
                 '> 月末未闭环：5项，其中逾期<font color="warning">2项</font>，与上月持平',
                 "> 1号车间：上报3项，闭环2项（66.7%），逾期1项",
                 "> 用电类 H01：上报3项，闭环3项（100.0%），逾期0项",
                 "> HZ-20261103-N2（1号车间 · 用电类 H01）：上报3次，已闭环，隐患N2",
                 "**复发隐患**（本月2项）",
                 "> 按区域：3号车间 2项；按类别：机械防护类 M03 1项、用电类 H01 1项；"
                 "按整改责任人：高峰 2项",
                 "> HZ-20261112-N5（3号车间 · 机械防护类 M03）：复发自HZ-20261025-P3，已闭环",
                 "> HZ-20261120-N6（3号车间 · 用电类 H01）：复发自HZ-20261005-P1，已闭环"):
        assert line in text.splitlines()


async def test_a_hundred_areas_fit_one_wecom_markdown_message(db: TortoiseContext) -> None:
    await people_and_areas(0)
    for i in range(1, 101):
        await Area.create(code=f"Z{i:03d}", name=f"第{i:03d}号联合生产车间东区")
        await ticket(f"{i:04d}", f"Z{i:03d}", "H01", "2026-11-10 09:00",
                     deadline="2026-11-13 09:00")
    report = await closure_for(MONTH, TZ, CATALOG)
    text = render_markdown(report)
    # message/send takes 2048 bytes of markdown (well under the 4096 of a group robot).
    assert len(text.encode()) <= MARKDOWN_MAX_BYTES
    shown = [line for line in text.splitlines() if "号联合生产车间东区：" in line]
    [rest] = [line for line in text.splitlines() if line.endswith("个区域见附件")]
    assert rest == f"> 其余{100 - len(shown)}个区域见附件" and len(shown) >= 5
    assert text.endswith("图表和《隐患台账》见随后的图片与附件。")


async def test_the_report_files_are_written_to_a_folder(plant: None, tmp_path: Path) -> None:
    paths = await write_monthly(MONTH, TZ, CATALOG, tmp_path / "reports")
    assert [p.name for p in paths] == [
        "隐患闭环分析报告-2026-11.md", "隐患闭环分析报告-2026-11.png", LEDGER]
    md, png, xlsx = paths
    assert md.read_text(encoding="utf-8").startswith("## 隐患闭环分析报告（2026年11月）")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    book = load_workbook(xlsx)
    assert book.sheetnames == ["隐患台账", "统计"]
    rows = list(book["隐患台账"].iter_rows(values_only=True))
    assert rows[0][:3] == ("编号", "区域", "类别") and rows[0][-2:] == ("是否逾期", "复发自")
    # Every ticket filed in November, the cancelled one included, oldest first.
    assert [r[0].split("-")[-1] for r in rows[1:]] == [
        "N1", "N2", "N3", "N4", "N5", "N9", "N6", "N7", "N8", "N11"]
    n2 = rows[2]
    assert n2[1:9] == ("1号车间", "用电类 H01", "一般", "物的状态", "隐患N2", "张三", "高峰",
                       "徐明")
    assert n2[9:] == (datetime(2026, 11, 3, 9), datetime(2026, 11, 6, 9), "已闭环",  # noqa: DTZ001
                      datetime(2026, 11, 7, 9), "是", None)  # noqa: DTZ001  (local wall-clock)
    assert [r[-2] for r in rows[1:]].count("是") == 2     # N2 closed late, N4 past due
    assert [r[-1] for r in rows[1:] if r[-1]] == ["HZ-20261025-P3", "HZ-20261005-P1"]
    stats = {r[0]: r[1:] for r in book["统计"].iter_rows(values_only=True) if r and r[0]}
    assert stats["上报隐患（项）"][:3] == (9, 3, 6)
    assert stats["闭环率"][:2] == (pytest.approx(5 / 9, abs=1e-4), pytest.approx(1 / 3, abs=1e-4))
    assert stats["1号车间"][:4] == (3, 2, pytest.approx(2 / 3), 1)


async def test_sent_twice_the_report_is_queued_once(plant: None, media_dir: Path) -> None:
    media = FolderStore(media_dir)
    now = datetime(2026, 12, 1, 1, 7, tzinfo=UTC)
    for expected in (True, False):
        async with transaction():
            assert await send_monthly(MONTH, now, TZ, CATALOG, media, "wecom",
                                      ["lisi", "xuming"]) is expected
    rows = await OutboxMessage.all().order_by("id")
    assert [(m.idempotency_key, m.kind) for m in rows] == [
        ("monthly:2026-11:text", "markdown"), ("monthly:2026-11:chart", "image"),
        ("monthly:2026-11:ledger", "file")]
    ledger = rows[2].message
    assert isinstance(ledger, File) and ledger.filename == LEDGER
    assert (await media.get(ledger.media)).startswith(b"PK")       # a zip: the xlsx


@pytest.fixture
async def world(plant: None, database_url: str, media_dir: Path) -> AsyncIterator[World]:
    async for w in make_world(database_url, media_dir):
        yield w


async def test_the_report_reaches_wecom_as_text_chart_and_ledger(world: World) -> None:
    async with transaction():
        await send_monthly(MONTH, world.clock(), TZ, CATALOG, world.media, "wecom", ["lisi"])
    await world.drain()
    text, chart, ledger = world.sim.messages_for("lisi")
    assert text.msgtype == "markdown"
    assert text.body["markdown"]["content"].startswith("## 隐患闭环分析报告（2026年11月）")
    assert chart.msgtype == "image"
    assert world.sim.media[chart.body["image"]["media_id"]].kind == "image"
    assert ledger.msgtype == "file"
    upload = world.sim.media[ledger.body["file"]["media_id"]]
    assert (upload.kind, upload.filename) == ("file", LEDGER)
    assert load_workbook(io.BytesIO(upload.data)).sheetnames == ["隐患台账", "统计"]


async def test_the_web_chat_offers_the_ledger_as_a_download(
        service: Service, media_dir: Path) -> None:
    data = b"PK\x03\x04 not really a workbook"
    digest = await FolderStore(media_dir).put(data)
    async with aiohttp.ClientSession() as http:
        sock = await Socket.open(http, service.url, "lisi")
        await queue("ledger-1", File(digest, LEDGER), ["lisi"])
        line = await sock.until(lambda line: line["kind"] == "file")
        assert line["payload"] == {"type": "file", "media": digest, "filename": LEDGER,
                                   "about": ""}
        await sock.close()
        link = f"{service.url}/chat/media/{digest}/{quote(LEDGER)}"
        async with http.get(link, params={"user": "lisi"}) as resp:
            assert resp.status == 200 and await resp.read() == data
            assert resp.headers["Content-Disposition"] == (
                f"attachment; filename*=UTF-8''{quote(LEDGER)}")
        # Only for the people it was sent to: not for another person, nor for no one.
        for query in ({"user": "zhangsan"}, {}):
            async with http.get(link, params=query) as resp:
                assert resp.status == 404
