"""Patrol inspections end to end on the demo plant, through the simulators: a daily round opened
and announced, three checkpoints reached in order (WeCom's scanner, the short code typed, a photo
of the label decoded on the server), an 异常 and an out-of-range reading filed as tickets with
the checkpoint's area and the item's category, the round reminded and then missed and escalated
to the patroller's supervisor as the clock moves; the next day's same 异常 linked to its open
ticket; a by-risk plan walked daily once its area turns 高; and every bad scan and answer the
issue names.

The service's clock runs with the wall clock; the tests start tomorrow morning."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.inspection import load_inspections
from bot.settings import SHIPPED_CONFIG
from models.audit import AuditEvent
from models.catalog import Grade, load_catalog
from models.hazard import Status, Ticket
from models.inspection.codes import sign, signing_key
from models.inspection.rounds import Round, RoundStatus
from models.inspection.visits import ItemAnswer, NotCounted, Result, Source, Visit
from models.org import Area
from simulator.wecom import WeComSimulator
from tests.harness import Service
from tests.plant import PLATFORMS, Person, Phone, around_the_clock, phone_of, plant
from tests.qr_photos import label_photo

TZ = ZoneInfo("Asia/Shanghai")


def calendar(service: Service) -> Callable[[int, int, int], datetime]:
    """`at(days, hour, minute)`: local time `days` after the day the test started."""
    today = service.clock().astimezone(TZ).date()

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(today + timedelta(days=days), time(hour, minute), TZ)

    return at


async def sites_loaded(service: Service) -> None:
    categories = [c.code for c in load_catalog(SHIPPED_CONFIG / "categories.toml").categories]
    await load_inspections(SHIPPED_CONFIG / "inspection", categories, service.clock())


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    async with plant(database_url, media_dir, platform=request.param,
                     **around_the_clock(tmp_path)) as (sim, service):
        await sites_loaded(service)
        yield phone_of(sim), service


async def scans(phone: Phone[Any], person: Person, code: str, how: Source) -> None:
    """Reach a checkpoint: WeCom's scanner where there is one, a photo of its label, or its
    code typed."""
    payload = sign(await signing_key(), code)
    if how is Source.SCAN:
        assert isinstance(phone.sim, WeComSimulator), "the scanner is WeCom's"
        assert (await phone.sim.user(person.id).scans(payload)).status == 200
    elif how is Source.PHOTO:
        await person.sends_photo(label_photo(payload))
    else:
        await person.says(code)


async def files_finding(person: Person, note: str) -> None:
    """The 异常's photo and few words."""
    await person.expect("请拍一张异常部位的照片")
    await person.sends_photo()
    await person.expect("请用一句话说明异常情况")
    await person.says(note)


async def test_a_daily_round_walked_with_findings_then_missed(world: tuple[Phone[Any], Service]
                                                              ) -> None:
    phone, service = world
    at = calendar(service)
    wecom = isinstance(phone.sim, WeComSimulator)
    patroller, boss = Person(phone, "huangjun"), Person(phone, "lihua")

    await service.tick_at(at(1, 8))
    await patroller.expect("【巡检任务】", "生产区日常巡检", "A1-01 1号车间空压机")
    assert await Round.filter(plan_id="P-PROD", status=RoundStatus.OPEN).count() == 1

    # 1. A1-01, by WeCom's scanner (DingTalk: the code typed): the two plain items together,
    # then the reading, refused while it is not a number or in another unit.
    await scans(phone, patroller, "A1-01", Source.SCAN if wecom else Source.TYPED)
    together = await patroller.expect("以下项目是否全部正常", "联轴器防护罩完好")
    await patroller.clicks(together, "全部正常")
    await patroller.expect("排气压力", "0.4–0.6 MPa")
    await patroller.says("看不清")
    await patroller.expect("请回复数字读数")
    await patroller.says("450 kPa")
    await patroller.expect("单位是MPa")
    await patroller.says("0.52MPa")
    await patroller.expect("A1-01 1号车间空压机 检查完成：正常3项", "已完成1/4", "下一个：A1-02")
    await patroller.clicks(together, "全部正常")           # pressed again: nothing twice
    await patroller.expect("该项已记录，无需重复操作")
    assert await ItemAnswer.filter(checkpoint="A1-01").count() == 3

    # 2. A1-02, its code typed: item by item, an 异常 with a photo that fails to download first.
    await service.time_passes(at(1, 8, 6))
    await scans(phone, patroller, "A1-02", Source.TYPED)
    await patroller.clicks(await patroller.expect("以下项目是否全部正常"), "逐项检查")
    await patroller.clicks(await patroller.expect("灭火器在位"), "正常")
    await patroller.clicks(await patroller.expect("安全出口、疏散通道畅通"), "异常")
    await patroller.expect("请拍一张异常部位的照片")
    await phone.sends_lost_photo(patroller.id)
    await patroller.expect("照片没有接收成功")
    await patroller.sends_photo()
    await patroller.expect("请用一句话说明异常情况")
    await patroller.says("疏散通道堆放纸箱")
    await patroller.clicks(await patroller.expect("消火栓箱"), "完好")
    await patroller.expect("检查完成：正常2项，异常1项", "已完成2/4")
    summary = await patroller.expect("请确认隐患上报", "1号车间")
    await patroller.clicks(summary, "提交")
    await patroller.expect("已提交，编号")
    exit_ticket = await Ticket.get(area_id="A1", category="F02", status=Status.OPEN)
    assert "安全出口" in exit_ticket.description and "疏散通道堆放纸箱" in exit_ticket.description
    assert exit_ticket.photos
    finding = await ItemAnswer.get(checkpoint="A1-02", item="exit")
    assert finding.result is Result.ABNORMAL and finding.ticket_id == exit_ticket.id

    # 3. A3-01, a photo of its label decoded on the server; a reading out of range is
    # questioned once, then filed.
    await service.time_passes(at(1, 8, 15))
    await scans(phone, patroller, "A3-01", Source.PHOTO)
    await patroller.clicks(await patroller.expect("以下项目是否全部正常", "3号车间空压机"),
                           "全部正常")
    await patroller.expect("排气压力")
    await patroller.says("0.7")
    await patroller.expect("超出正常范围", "请再次发送该读数")
    await patroller.says("0.7")
    await files_finding(patroller, "压力表指针偏高")
    await patroller.expect("检查完成", "已完成3/4", "下一个：A3-02")
    await patroller.clicks(await patroller.expect("请确认隐患上报", "3号车间"), "提交")
    await patroller.expect("已提交，编号")
    reading = await Ticket.get(area_id="A3", category="S05")
    assert "0.7 MPa" in reading.description and "0.4–0.6 MPa" in reading.description
    assert (await ItemAnswer.get(checkpoint="A3-01", item="pressure")).out_of_range

    visits = await Visit.filter(not_counted="").order_by("at")
    assert [(v.checkpoint_id, v.source) for v in visits] == [
        ("A1-01", Source.SCAN if wecom else Source.TYPED), ("A1-02", Source.TYPED),
        ("A3-01", Source.PHOTO)]
    await patroller.says("巡检")
    await patroller.expect("生产区日常巡检", "已完成3/4", "待检查：A3-02")

    # The round is reminded before its window ends, then missed and escalated.
    await service.tick_at(at(1, 9, 30))
    await patroller.expect("【巡检提醒】", "10:00截止", "A3-02")
    await service.tick_at(at(1, 10))
    await boss.expect("【巡检漏检】", "黄军", "生产区日常巡检", "3/4")
    await patroller.expect("【巡检漏检】", "已告知您的上级")
    assert (await Round.get(plan_id="P-PROD")).status is RoundStatus.MISSED
    await service.tick_at(at(1, 10, 5))          # told once
    assert sum("【巡检漏检】" in m.text for m in boss.unread()) == 0

    # The next day's round finds the same 异常 while its ticket is open: linked, not filed.
    await service.tick_at(at(2, 8))
    await patroller.expect("【巡检任务】", "生产区日常巡检")
    await scans(phone, patroller, "A1-02", Source.TYPED)
    await patroller.clicks(await patroller.expect("以下项目是否全部正常"), "逐项检查")
    await patroller.clicks(await patroller.expect("灭火器在位"), "正常")
    await patroller.clicks(await patroller.expect("安全出口"), "异常")
    await files_finding(patroller, "纸箱仍未清理")
    await patroller.clicks(await patroller.expect("消火栓箱"), "完好")
    await patroller.expect(f"与未闭环的隐患 {exit_ticket.number} 相同，已关联")
    assert await Ticket.filter(area_id="A1", category="F02").exclude(
        status=Status.DRAFT).count() == 1
    assert await ItemAnswer.filter(checkpoint="A1-02", item="exit",
                                   ticket_id=exit_ticket.id).count() == 2
    assert exit_ticket.number
    await patroller.says(exit_ticket.number)          # the ticket's record names both rounds
    record = await patroller.expect(exit_ticket.number, "巡检发现", "巡检再次发现")
    assert "A1-02 1号车间东侧消防点：安全出口、疏散通道畅通（异常）" in record.text


async def test_a_by_risk_plan_is_walked_daily_once_its_area_turns_high(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    at = calendar(service)
    electrician = Person(phone, "gaofeng")
    # A 重大 hazard in the switch room: the day's risk status (a job after the rounds) turns
    # the area 高, so the plan, monthly for a 黄 area, is walked daily from the next day.
    await Ticket.create(reporter_id="gaofeng", area_id="E1", category="H01",
                        description="低压配电柜母排过热变色", grade=Grade.MAJOR,
                        status=Status.PLAN,
                        created_at=service.clock(), updated_at=service.clock())
    await service.tick_at(at(1, 14))
    await electrician.expect("【巡检任务】", "配电与仓库巡检", "每月")
    monthly = await Round.get(plan_id="P-UTIL")
    assert monthly.period == f"{at(1, 14):%Y-%m}"
    assert (await Area.get(code="E1")).risk_status == "高"
    for day in (2, 3):
        await service.tick_at(at(day, 14))
        await electrician.expect("【巡检任务】", "配电与仓库巡检", "每天", "今天14:00–16:00")
        assert await Round.filter(plan_id="P-UTIL",
                                  period=f"{at(day, 14).date()}").exists()


async def test_bad_scans_are_recorded_and_answered_and_count_for_nothing(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    at = calendar(service)
    patroller = Person(phone, "huangjun")
    await service.tick_at(at(1, 8))
    await patroller.expect("【巡检任务】")

    await patroller.says("ZZ-99")                     # a code no checkpoint has
    await patroller.expect("没有找到编号为 ZZ-99 的巡检点")
    await patroller.sends_photo(label_photo("https://example.com/menu"))   # not a label's
    await patroller.expect("这不是巡检点的二维码")
    await patroller.sends_photo(label_photo(sign(b"another plant's key", "A1-01")))
    await patroller.expect("不是本厂签发的巡检点标签")
    assert await AuditEvent.filter(action="inspection.scan.refused").count() == 1
    await patroller.says("T1-01")                     # a checkpoint of someone else's route
    await patroller.expect("已记录您到达T1-01 1号甲醇储罐", "不在您当前的巡检任务中")
    off_route = await Visit.get(checkpoint_id="T1-01")
    assert off_route.not_counted == NotCounted.OFF_ROUTE and off_route.round_id is None

    await patroller.says("A1-01")
    await patroller.clicks(await patroller.expect("以下项目是否全部正常"), "全部正常")
    await patroller.expect("排气压力")
    await patroller.says("跳过")                        # skipped, with a reason
    await patroller.expect("请说明跳过“排气压力”的原因")
    await patroller.says("空压机停机检修")
    await patroller.expect("检查完成：正常2项，跳过1项")
    skipped = await ItemAnswer.get(checkpoint="A1-01", item="pressure")
    assert skipped.result is Result.SKIPPED and skipped.note == "空压机停机检修"
    await patroller.says("A1-01")                     # done already this round
    await patroller.expect("本轮已于", "检查完毕")

    await service.time_passes(at(1, 12, 30))   # after the window and its grace
    await patroller.says("A1-02")
    await patroller.expect("不在“生产区日常巡检”的巡检时段（08:00–10:00）内")
    late = await Visit.get(checkpoint_id="A1-02")
    assert late.not_counted == NotCounted.OFF_WINDOW
    counted = await Visit.filter(not_counted="").values_list("checkpoint_id", flat=True)
    assert list(counted) == ["A1-01"]
    assert {v.not_counted for v in await Visit.filter(checkpoint_id="A1-01")} == {
        "", NotCounted.DONE_BEFORE.value}


async def test_a_required_photo_and_a_reading_at_a_tank(world: tuple[Phone[Any], Service]
                                                       ) -> None:
    phone, service = world
    at = calendar(service)
    keeper = Person(phone, "guoqiang")
    await service.tick_at(at(1, 9))
    await keeper.expect("【巡检任务】", "罐区巡检", "每天")     # 罐区 is 红: daily by its colour
    await keeper.says("T1-01")
    together = await keeper.expect("以下项目是否全部正常", "阀门、法兰无泄漏")
    await keeper.clicks(together, "全部正常")
    await keeper.expect("液位", "10–85 %")
    await keeper.says("3")                            # a reading of 3 is a reading, not 跳过
    await keeper.expect("读数 3 % 超出正常范围")
    await keeper.says("52")
    await keeper.expect("请拍照：现场照片")
    await keeper.says("拍好了")
    await keeper.expect("请发送照片：现场照片")
    await phone.sends_lost_photo(keeper.id)
    await keeper.expect("照片没有接收成功")
    await keeper.sends_photo()
    await keeper.expect("T1-01 1号甲醇储罐 检查完成：正常4项", "已完成1/2")
    site = await ItemAnswer.get(checkpoint="T1-01", item="site")
    assert site.photo and site.result is Result.OK
    level = await ItemAnswer.get(checkpoint="T1-01", item="level")
    assert level.value == 52 and not level.out_of_range
