"""`safetybot load-resources`: the resource ledger loaded whole or not at all, checked against the
roster, kept through reloads; and the scheduler keeping it current (keepers reminded once per due
date and before expiry, on working days; the digest's 应急物资)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.plans import load_plans
from bot.resources import LedgerError, LedgerReport, load_resources
from bot.roster import load_org
from models.audit import AuditEvent
from models.emergency import Plan
from models.org import Area
from models.resources import Inspection, Resource, Result, at_hand, inspect
from tests.harness import ROOT, ROSTER_MEDIA, cli, edit, plant_jobs, queued_texts
from tests.plant import DEMO_LEDGER, DEMO_ORG

TZ = ZoneInfo("Asia/Shanghai")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


NOW = local("2026-12-01 09:00")


@pytest.fixture
async def org(db: TortoiseContext) -> None:
    await load_org(DEMO_ORG, NOW, ROSTER_MEDIA)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A copy of the demo ledger, to edit."""
    path = tmp_path / "resources.toml"
    shutil.copy(DEMO_LEDGER, path)
    return path


def drop(path: Path, code: str) -> None:
    """Take the resource `code` out of the file."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f'[[resources]]\ncode = "{code}"')
    end = text.find("[[resources]]", start + 1)
    path.write_text(text[:start] + (text[end:] if end >= 0 else ""), encoding="utf-8")


async def snapshot() -> dict[str, Any]:
    return {"resources": await Resource.all().order_by("code").values(),
            "audit": await AuditEvent.all().count()}


async def test_the_demo_ledger_loads_with_kinds_defaults_and_audit(org: None) -> None:
    report = await load_resources(DEMO_LEDGER, NOW, TZ)

    assert report == LedgerReport(resources=20, created=20, updated=0, unchanged=0,
                                  deactivated=0)
    breathing = await Resource.get(code="R-A3-01")
    assert (breathing.kind, breathing.amount, breathing.keeper, breathing.area_id) == (
        "空气呼吸器", "4套", "lihua", "A3")
    # The kind's interval and reading rule, declared once.
    assert breathing.interval_days == 30 and breathing.reading_rule == "气瓶压力 ≥25MPa"
    assert breathing.due_on == date(2026, 12, 20) and breathing.added_on == date(2026, 12, 1)
    office = await Resource.get(code="R-HQ-01")
    assert (office.area_id, office.phone, office.expires_on) == (
        None, "025-58881234", date(2027, 6, 30))
    events = await AuditEvent.filter(actor="resources").order_by("id")
    assert [e.action for e in events] == ["emergency.resource.created"] * 20
    again = await load_resources(DEMO_LEDGER, local("2026-12-02 09:00"), TZ)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 20)


async def test_a_bad_ledger_names_each_bad_entry_and_changes_nothing(
        org: None, ledger: Path) -> None:
    await load_resources(ledger, NOW, TZ)
    before = await snapshot()
    edit(ledger, 'name = "担架"', 'name = "折叠担架"')         # a good change beside the bad
    edit(ledger, 'keeper = "gaofeng"\ninspected_on = 2026-11-22\n\n[[resources]]\n'
                 'code = "R-E1-02"', 'keeper = "nobody"\ninspected_on = 2026-11-22\n\n'
                                     '[[resources]]\ncode = "R-E1-02"')
    edit(ledger, 'area = "W1"\nplace = "仓库北墙外"', 'area = "W9"\nplace = "仓库北墙外"')

    with pytest.raises(LedgerError) as refused:
        await load_resources(ledger, local("2026-12-02 09:00"), TZ)

    assert refused.value.problems == (
        'resources[15] (R-W1-05): area "W9" is not in the roster',
        'resources[17] (R-E1-01): keeper "nobody" is not in the roster',
    )
    assert await snapshot() == before


async def test_a_resource_left_out_is_deactivated_and_keeps_its_inspections(
        org: None, ledger: Path) -> None:
    await load_resources(ledger, NOW, TZ)
    extinguisher = await Resource.get(code="R-A3-04")
    await inspect(extinguisher, "lihua", local("2026-12-03 10:00"), date(2026, 12, 3),
                  Result.OK, None, "")
    drop(ledger, "R-A3-04")

    report = await load_resources(ledger, local("2026-12-04 09:00"), TZ)

    assert (report.deactivated, report.unchanged) == (1, 19)
    assert not (await Resource.get(code="R-A3-04")).active
    assert await Inspection.filter(resource_id="R-A3-04").count() == 1
    # Back in the file (with its older paper date): active again, the chat inspection stands.
    shutil.copy(DEMO_LEDGER, ledger)
    await load_resources(ledger, local("2026-12-05 09:00"), TZ)
    back = await Resource.get(code="R-A3-04")
    assert back.active and back.inspected_on == date(2026, 12, 3) and back.result == "正常"


async def test_a_load_warns_of_kinds_the_plans_need_and_the_ledger_lacks(
        org: None, ledger: Path) -> None:
    await load_plans(ROOT / "config" / "plans", NOW, "webchat")
    drop(ledger, "R-W1-02")                 # the only 担架

    report = await load_resources(ledger, NOW, TZ)

    assert report.gaps == ('plan GENERAL names "担架", which the ledger has none of',)


async def test_the_broadcast_takes_the_nearest_usable_of_each_kind(org: None) -> None:
    await load_resources(DEMO_LEDGER, NOW, TZ)
    areas = list(await Area.all())
    a3 = await Area.get(code="A3")
    today = date(2026, 12, 1)
    found = dict(await at_hand(["灭火器", "空气呼吸器", "担架"], a3, areas, today))
    assert [r.code for r in found["灭火器"]] == ["R-A3-04", "R-E1-01"]
    assert [r.code for r in found["空气呼吸器"]] == ["R-A3-01", "R-T1-03"]
    # A failed inspection takes it out; the next nearest comes in.
    await inspect(found["空气呼吸器"][0], "lihua", NOW, today, Result.FAILED, 22.0, "")
    found = dict(await at_hand(["空气呼吸器"], a3, areas, today))
    assert [r.code for r in found["空气呼吸器"]] == ["R-T1-03"]
    # Past its expiry date, a resource is left out too.
    found = dict(await at_hand(["急救药箱"], a3, areas, date(2027, 4, 1)))
    assert [r.code for r in found["急救药箱"]] == ["R-W1-04", "R-HQ-01"]


async def test_load_resources_on_the_command_line(org: None, database_url: str,
                                                  ledger: Path) -> None:
    env = {"SAFETYBOT_DATABASE_URL": database_url}
    good = await asyncio.to_thread(cli, "load-resources", str(ledger), env=env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines()[0] == (f"safetybot: {ledger}: 20 resources: 20 created, "
                                           "0 updated, 0 unchanged, 0 deactivated")
    edit(ledger, "quantity = 8\n", "quantity = 0\n")
    edit(ledger, 'code = "R-T1-02"', 'code = "R-T1-01"')

    bad = await asyncio.to_thread(cli, "load-resources", str(ledger), env=env)

    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        f"safetybot: {ledger}: resources[3] (R-A3-04): quantity must be a number above 0 "
        "(quantity = 4), not 0",
        f'safetybot: {ledger}: resources[6] (R-T1-01): code "R-T1-01" is already used by '
        "resources[5]"]


# ---------------------------------------------------------------------------------------------
# The scheduler

SMALL = """
[[resources]]
code = "R-1"
kind = "灭火器"
name = "干粉灭火器 MFZ/ABC8"
quantity = 8
unit = "具"
area = "A3"
place = "3号车间东门应急柜"
keeper = "lihua"
interval_days = 30
inspected_on = 2026-11-20

[[resources]]
code = "R-2"
kind = "急救药箱"
name = "急救箱"
quantity = 1
unit = "个"
area = "W1"
keeper = "huangjun"
expires_on = 2027-01-15
"""


async def test_keepers_are_reminded_once_per_due_date_and_before_expiry_on_working_days(
        org: None, tmp_path: Path, database_url: str, media_dir: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    await load_resources(path, NOW, TZ)
    plant = plant_jobs(database_url, media_dir)
    # 12-20 (due) is a Sunday: reminded on Monday, once.
    for day in ("2026-12-15", "2026-12-16", "2026-12-17", "2026-12-20", "2026-12-21",
                "2026-12-22", "2027-01-08", "2027-01-09"):
        report = await plant.tick(local(f"{day} 09:00"))
        assert not report.failed, report.summary()
    sent = await queued_texts("res-")
    assert [(key, to) for key, _, to in sent] == [
        ("res-expiry:R-2:2027-01-15:30", ["huangjun"]),
        ("res-due:R-1:2026-12-20", ["lihua"]),
        ("res-expiry:R-2:2027-01-15:7", ["huangjun"]),
    ]
    assert sent[1][1] == ("【物资点检提醒】您保管的R-1 干粉灭火器 MFZ/ABC8（3号车间东门应急柜）"
                          "应于2026年12月20日前点检（每30天一次）。点检后回复“点检 R-1 正常”；"
                          "有问题回复“点检 R-1 异常 情况说明”。")
    assert "将于2027年01月15日到期，还有30天" in sent[0][1]
    # Inspected: the next due date gets its own reminder.
    await inspect(await Resource.get(code="R-1"), "lihua", local("2027-01-11 10:00"),
                  date(2027, 1, 11), Result.OK, None, "")
    await plant.tick(local("2027-02-10 09:00"))
    assert [key for key, _, _ in await queued_texts("res-due:")] == [
        "res-due:R-1:2026-12-20", "res-due:R-1:2027-02-10"]


async def test_the_digest_lists_expired_failed_and_overdue_resources(
        org: None, database_url: str, media_dir: Path) -> None:
    await load_resources(DEMO_LEDGER, NOW, TZ)
    await inspect(await Resource.get(code="R-A3-01"), "lihua", local("2027-04-01 10:00"),
                  date(2027, 4, 1), Result.FAILED, 22.0, "")

    await plant_jobs(database_url, media_dir).tick(local("2027-04-02 09:00"))

    [(_, digest, _)] = await queued_texts("digest:")
    lines = digest.splitlines()
    at = lines.index("**应急物资**")
    assert lines[at + 1] == "> 已过期：1项（R-A3-05 应急药箱（含2%硼酸溶液））"
    assert lines[at + 2] == "> 点检异常：1项（R-A3-01 正压式空气呼吸器）"
    # Each named once, by its worst: the expired 药箱 is not counted overdue as well.
    assert lines[at + 3] == ("> 点检逾期：13项（R-A1-02 干粉灭火器 MFZ/ABC4、R-A3-02 重型防化服、"
                             "R-A3-03 洗眼器和应急喷淋、R-A3-04 干粉灭火器 MFZ/ABC8、"
                             "R-E1-01 二氧化碳灭火器 MT7，……）")
    assert await Plan.all().count() == 0       # no plans needed for the ledger's lines
