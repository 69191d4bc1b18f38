"""The resource ledger end to end, on the demo plant through the WeCom simulator: keepers list
what they keep and confirm inspections in chat, a failed one reaches the safety managers, and an
activation's broadcast leaves out what is expired or failed for a usable one farther away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.plans import load_plans
from bot.resources import load_resources
from models.audit import AuditEvent
from models.resources import Inspection, Resource
from tests.e2e.test_emergency import start
from tests.harness import ROOT, Service
from tests.plant import LEDGER_WRITTEN, Person, Phone, demo_ledger, phone_of, plant

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def world(db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path
                ) -> AsyncIterator[tuple[Phone[Any], Service]]:
    """The demo plant, plans and ledger, with 3号车间's 药箱 (R-A3-05) expired yesterday."""
    async with plant(database_url, media_dir) as (sim, service):
        phone = phone_of(sim)
        now = service.clock()
        await load_plans(ROOT / "config" / "plans", now, phone.platform)
        yesterday = LEDGER_WRITTEN - timedelta(days=1)
        ledger = demo_ledger(tmp_path / "resources.toml", now.astimezone(TZ).date(),
                             {"expires_on = 2027-03-31": f"expires_on = {yesterday}"})
        await load_resources(ledger, now, TZ)
        await phone.group_chats_ready()
        yield phone, service


@pytest.fixture
def phone(world: tuple[Phone[Any], Service]) -> Phone[Any]:
    return world[0]


async def test_the_broadcast_leaves_out_the_expired_and_the_failed_for_usable_ones_farther(
        phone: Phone[Any]) -> None:
    # 李华 reads his breathing apparatus below its rule: 异常, and the safety managers hear.
    lihua = Person(phone, "lihua")
    await lihua.says("点检 R-A3-01 22MPa")
    await lihua.expect("已记录：R-A3-01 正压式空气呼吸器（3号车间东门应急柜）点检异常："
                       "气瓶压力 22MPa，不符合气瓶压力 ≥25MPa", "已通知安全管理员")
    for manager in ("liuyang", "sunli"):
        await Person(phone, manager).expect("【物资点检异常】R-A3-01", "点检人：李华")

    await start(Person(phone, "zhouwei"), "启动预案 氨泄漏 二级 3号车间")

    await phone.until(lambda: len(phone.group_messages("emergency01")) >= 1, 10)
    group = phone.group_messages("emergency01")[0]          # the text, before the map
    lines = group.text.splitlines()
    at_hand = lines[lines.index("**最近的应急物资**") + 1:]
    # The failed 4 sets in 3号车间 are out; 罐区's 2 sets come first.
    assert at_hand[0] == "> 空气呼吸器：正压式空气呼吸器 2套，罐区值班室（郭强 13800000016）"
    assert "> 防化服：重型防化服 2套，3号车间东门应急柜（黄军 13800000012）" in at_hand
    # The expired 药箱 next door is out; 仓库's is listed, then the office's (no map point).
    assert [line for line in at_hand if line.startswith("> 急救药箱")] == [
        "> 急救药箱：急救箱 2个，仓库东侧应急物资库（林芳 13800000017）",
        "> 急救药箱：应急药箱（含2%硼酸溶液） 1个，安全环保部办公室（孙丽 025-58881234）"]
    assert "3号车间交接班室" not in group.text


async def test_a_keeper_lists_and_confirms_and_others_are_refused(phone: Phone[Any]) -> None:
    lihua = Person(phone, "lihua")
    await lihua.says("我的物资")
    listed = await lihua.expect("我保管的应急物资", "（2项）")
    # Inspected 17 days before the day the ledger reads as (dates follow the service's clock).
    assert "> R-A3-01 正压式空气呼吸器（3号车间东门应急柜），4套：下次点检" in listed.text
    assert "> R-A3-04 干粉灭火器 MFZ/ABC8（3号车间东门应急柜），8具：下次点检" in listed.text

    await lihua.says("点检 r-a3-04 正常")
    await lihua.expect("已记录：R-A3-04 干粉灭火器 MFZ/ABC8（3号车间东门应急柜）点检正常",
                       "下次点检")
    await lihua.says("点检 R-A3-04 正常")           # sent twice
    await lihua.expect("R-A3-04 的这次点检已经记录，无需重复提交")
    assert await Inspection.filter(resource_id="R-A3-04").count() == 1

    # A reading is asked for, must be a number, and must be in the rule's unit.
    await lihua.says("点检 R-A3-01 正常")
    await lihua.expect("R-A3-01 需要填写气瓶压力读数（气瓶压力 ≥25MPa）")
    await lihua.says("点检 R-A3-01 二十八")
    await lihua.expect("没有看懂“二十八”")
    await lihua.says("点检 R-A3-01 28bar")
    await lihua.expect("气瓶压力的单位是MPa")
    await lihua.says("点检 R-A3-01 28 MPa")
    await lihua.expect("点检正常：气瓶压力 28MPa")
    await lihua.says("点检 R-A9-99 正常")
    await lihua.expect("没有找到物资 R-A9-99")
    await lihua.says("点检 R-A3-04 异常")
    await lihua.expect("请说明异常情况")

    # Not the keeper: refused, and the refusal recorded.
    zhangsan = Person(phone, "zhangsan")
    await zhangsan.says("点检 R-A3-04 正常")
    await zhangsan.expect("您不是它的保管人")
    refused = await AuditEvent.get(actor="zhangsan", action="refused")
    assert (refused.subject_type, refused.subject_id) == ("resource", "R-A3-04")
    await zhangsan.says("我的物资")
    await zhangsan.expect("您没有保管的应急物资")

    # A safety manager may record for a keeper; the other managers are told of a failure.
    sunli = Person(phone, "sunli")
    await sunli.says("点检 R-A3-03 异常 喷淋头堵塞")
    await sunli.expect("点检异常：喷淋头堵塞")
    await Person(phone, "liuyang").expect("【物资点检异常】R-A3-03", "点检人：孙丽")
    assert not [m for m in sunli.unread() if "【物资点检异常】" in m.text]
    assert (await Resource.get(code="R-A3-03")).result == "异常"
