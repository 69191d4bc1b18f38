"""The README's walk-through of the pre-work check, in the local web chat on the demo plant as
`make run` leaves it (the demo roster, the courses and the demo training ledger loaded by the
CLI): 黄军's
crew with 王海燕, whose welding certificate has expired; 刘洋 files the proposed 重大
ticket; the contractor's 赵刚 is refused, admitted by card, and passes; 王海燕 reads her file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from models.catalog import Grade
from models.hazard import Status, Ticket
from tests.harness import Service
from tests.plant import web_chat_plant
from tests.webchat_client import Person, words


@pytest.fixture
async def demo(db: TortoiseContext, database_url: str, media_dir: Path
               ) -> AsyncIterator[tuple[aiohttp.ClientSession, Service]]:
    async with web_chat_plant(database_url, media_dir) as plant:
        yield plant


async def test_the_readme_walk_through_of_the_pre_work_check(
        demo: tuple[aiohttp.ClientSession, Service]) -> None:
    http, service = demo
    huangjun, liuyang, wanghaiyan = (Person(http, service, p)
                                     for p in ("huangjun", "liuyang", "wanghaiyan"))
    await huangjun.says("开工 动火作业 3号车间 黄军 王海燕")
    answer = await huangjun.sees("开工前资格校验")
    assert "可以开工（1人）：黄军" in words(answer)
    assert ("王海燕：熔化焊接与热切割作业证已于2026-05-05到期；未通过培训考核：动火作业安全"
            in words(answer))
    asked = await huangjun.sees("有1人不可开工")
    await huangjun.presses(asked, "通知安全员")
    await huangjun.sees("已通知安全员")

    proposal = await liuyang.sees("【建议立案】特种作业人员未持证上岗")
    await liuyang.presses(proposal, "确认为重大隐患")
    await liuyang.sees("已立案，编号 HZ-")
    ticket = await Ticket.get(grade=Grade.MAJOR)
    assert ticket.status is Status.PLAN and "王海燕" in ticket.description
    await Person(http, service, "chenjianguo").sees("治理方案")

    await huangjun.says("开工 动火作业 3号车间 赵刚")
    await huangjun.sees("赵刚：承包商人员未办理准入")
    await huangjun.says("申请准入 赵刚 动火作业")
    await huangjun.sees("已提交赵刚的准入申请")
    card = await liuyang.sees("承包商人员准入审批")
    await liuyang.presses(card, "准入")
    await liuyang.sees("赵刚已准入")
    await huangjun.says("开工 动火作业 3号车间 赵刚")
    await huangjun.sees("可以开工（1人）：赵刚")

    await wanghaiyan.says("我的档案")
    mine = await wanghaiyan.sees("一人一档 · 王海燕")
    assert "T320102198807150026：已于2026-05-05到期" in words(mine)
    assert "通过0次，未通过1次" in words(mine)
    for person in (huangjun, liuyang, wanghaiyan):
        if person.socket is not None:
            await person.socket.close()
