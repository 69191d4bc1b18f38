"""The README's walk-through of patrol inspections, in the local web chat on the demo plant as
`make run` leaves it: the 08:00 tick opens 黄军's round; he reaches A1-01 and A1-02 by typing
their codes, files the blocked exit, reads an out-of-range pressure at A3-01; the window ends
and 李华 hears of the checkpoint left."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp

from models.hazard import Status, Ticket
from models.inspection.rounds import Round, RoundStatus
from simulator.photos import photo
from tests.harness import Service
from tests.webchat_client import Person, upload

TZ = ZoneInfo("Asia/Shanghai")



async def test_the_readme_walk_through_of_patrols(
        web_chat_demo: tuple[aiohttp.ClientSession, Service]) -> None:
    http, service = web_chat_demo
    huangjun, lihua = Person(http, service, "huangjun"), Person(http, service, "lihua")
    tomorrow = service.clock().astimezone(TZ).date() + timedelta(days=1)
    await service.tick_at(datetime.combine(tomorrow, time(8), TZ))
    await huangjun.sees("【巡检任务】", "生产区日常巡检")
    await huangjun.says("巡检")
    await huangjun.next("今天的巡检任务", "已完成0/4", "待检查：A1-01")

    await huangjun.says("A1-01")
    await huangjun.presses(await huangjun.next("以下项目是否全部正常"), "全部正常")
    await huangjun.next("排气压力")
    await huangjun.says("0.52")
    await huangjun.next("已完成1/4", "下一个：A1-02")

    await huangjun.says("A1-02")
    await huangjun.presses(await huangjun.next("以下项目是否全部正常"), "逐项检查")
    await huangjun.presses(await huangjun.next("灭火器在位"), "正常")
    await huangjun.presses(await huangjun.next("安全出口"), "异常")
    await huangjun.next("请拍一张异常部位的照片")
    status, _ = await upload(http, service.url, "huangjun", photo(3))
    assert status == 200
    await huangjun.next("请用一句话说明异常情况")
    await huangjun.says("通道堆放纸箱")
    await huangjun.presses(await huangjun.next("消火栓箱"), "完好")
    await huangjun.presses(await huangjun.next("请确认隐患上报"), "提交")
    await huangjun.next("已提交，编号")
    assert await Ticket.filter(area_id="A1", category="F02", status=Status.OPEN).exists()

    await huangjun.says("A3-01")
    await huangjun.presses(await huangjun.next("以下项目是否全部正常"), "全部正常")
    await huangjun.next("排气压力")
    await huangjun.says("0.7")
    await huangjun.next("超出正常范围")
    await huangjun.says("0.7")
    await huangjun.next("请拍一张异常部位的照片")

    await service.tick_at(datetime.combine(tomorrow, time(10), TZ))
    await lihua.sees("【巡检漏检】", "黄军", "生产区日常巡检", "2/4")
    assert (await Round.get(plan_id="P-PROD")).status is RoundStatus.MISSED
