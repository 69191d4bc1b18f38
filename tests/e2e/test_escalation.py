"""The escalation ladder end to end, on each platform: a ticket filed in chat passes its deadline
as the service's clock moves; the scheduler's jobs, ticked as of that clock, remind the owner,
then send the escalation card to the owner's supervisor and to the next one up, whose button
opens the ticket. The demo ladder: reminders 24 and 2 hours before the deadline, then the
supervisors at the deadline and a day after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.clock import ManualClock
from models.hazard import Ticket
from tests.harness import Service, settled
from tests.plant import PLATFORMS, Person, Phone, around_the_clock, phone_of, plant

TZ = ZoneInfo("Asia/Shanghai")      # the demo plant's


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    """Every hour of every day is working time (`around_the_clock`)."""
    async with plant(database_url, media_dir, platform=request.param,
                     **around_the_clock(tmp_path)) as (sim, service):
        yield phone_of(sim), service


async def overdue_ticket(phone: Phone[Any], service: Service) -> tuple[Ticket, Person]:
    """赵磊 reports a fire extinguisher in 1号车间 (消防类, two days); 王强 owns it and does
    nothing: he is reminded twice, and the deadline passes. Returns the ticket and him."""
    worker, owner = Person(phone, "zhaolei"), Person(phone, "wangqiang")
    await worker.says("1号车间 灭火器压力不足，指针在红区")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    await worker.expect("已提交，编号")
    ticket = await Ticket.get(reporter_id="zhaolei")
    assert ticket.deadline is not None and ticket.number is not None
    assert ticket.chain == ["zhouwei", "chenjianguo"]
    await owner.expect(f"隐患整改 {ticket.number}")
    await service.tick_at(service.clock())           # its ladder is written
    for before in (timedelta(hours=24), timedelta(hours=2)):
        await service.tick_at(ticket.deadline - before)
        reminder = await owner.expect("整改提醒", ticket.number)
        assert "还有约" in reminder.text and "请回复“申请延期”" in reminder.text
    await service.tick_at(ticket.deadline + timedelta(minutes=1))
    return ticket, owner


async def test_an_overdue_ticket_climbs_the_ladder_and_each_card_opens_it(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    ticket, owner = await overdue_ticket(phone, service)
    deadline, number = ticket.deadline, ticket.number
    assert deadline is not None and number is not None
    # 王强's supervisor at the deadline, his supervisor's a day later.
    for level, supervisor, overdue in ((1, "zhouwei", timedelta(minutes=1)),
                                       (2, "chenjianguo", timedelta(hours=24, minutes=1))):
        await service.tick_at(deadline + overdue)
        boss = Person(phone, supervisor)
        card = await boss.expect("隐患超期督办", number)
        assert card.kind == "card" and "王强尚未接收" in card.text
        await boss.clicks(card, "查看详情")
        details = await boss.expect(f"已督办至第{level}级")
        assert number in details.text and "1号车间" in details.text
    await settled()
    assert owner.unread() == []          # reminded twice; the escalations speak to others


async def test_the_supervisor_opens_the_ticket_from_the_card_again_the_next_day(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    ticket, _ = await overdue_ticket(phone, service)
    supervisor = Person(phone, "zhouwei")
    card = await supervisor.expect("隐患超期督办", ticket.number or "")
    await supervisor.clicks(card, "查看详情")
    await supervisor.expect("已督办至第1级")
    await service.tick_at(service.clock() + timedelta(hours=20))
    await supervisor.clicks(card, "查看详情")
    await settled()
    assert [m for m in supervisor.unread() if "已督办至第1级" in m.text]


async def test_a_general_deadline_is_a_working_day_at_1730_and_the_ladder_waits_for_monday(
        db: TortoiseContext, database_url: str, media_dir: Path) -> None:
    """On the shipped calendar: 消防类 is due in two working days, so a report on Wednesday
    morning is due on Friday at 17:30 (shown as that date); the supervisor hears at 17:30, the
    next level, due on Saturday, waits for Monday's working time."""
    clock = ManualClock()
    clock.set(datetime(2026, 12, 9, 10, 0, tzinfo=TZ))            # a Wednesday
    async with plant(database_url, media_dir, clock, schedule_spread_minutes=0) as (sim,
                                                                                    service):
        phone = phone_of(sim)
        worker, owner = Person(phone, "zhaolei"), Person(phone, "wangqiang")
        await worker.says("1号车间 灭火器压力不足，指针在红区")
        await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
        await worker.expect("已提交，编号")
        ticket = await Ticket.get(reporter_id="zhaolei")
        friday = datetime(2026, 12, 11, 17, 30, tzinfo=TZ)
        assert ticket.deadline == friday and ticket.number is not None
        card = await owner.expect(f"隐患整改 {ticket.number}")
        assert card.field("期限") == "12月11日 17:30"
        await service.tick_at(service.clock())
        await service.tick_at(friday + timedelta(minutes=1))
        await Person(phone, "zhouwei").expect("隐患超期督办", ticket.number)
        boss = Person(phone, "chenjianguo")
        await service.tick_at(datetime(2026, 12, 12, 18, 0, tzinfo=TZ))   # Saturday
        await service.tick_at(datetime(2026, 12, 14, 6, 50, tzinfo=TZ))   # Monday, early
        await settled()
        assert [m for m in boss.unread() if ticket.number in m.text] == []
        await service.tick_at(datetime(2026, 12, 14, 7, 1, tzinfo=TZ))
        await boss.expect("隐患超期督办", ticket.number)
