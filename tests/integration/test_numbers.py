"""Ticket numbers: dense per day, never given twice, the same for a 提交 tried again, and drawn
without waiting for the other 提交 under way."""

import asyncio
from datetime import UTC, datetime

import pytest
from tortoise.context import TortoiseContext

from models import transaction
from models.hazard import Status, Ticket, TicketCounter, TicketNumber, cancel, draw_number
from models.org import Area, User
from tests.harness import BACKEND


async def test_numbers_are_dense_per_day_and_a_draft_keeps_its_own(db: TortoiseContext) -> None:
    assert await draw_number(11, "20261129") == "HZ-20261129-0001"
    assert await draw_number(12, "20261129") == "HZ-20261129-0002"
    assert await draw_number(11, "20261129") == "HZ-20261129-0001"
    assert await draw_number(13, "20261129") == "HZ-20261129-0003"
    assert await draw_number(14, "20261130") == "HZ-20261130-0001"


async def test_the_ten_thousandth_of_a_day_gets_a_fifth_digit(db: TortoiseContext) -> None:
    await TicketCounter.create(day="20261129", issued=9998)
    assert await draw_number(41, "20261129") == "HZ-20261129-9999"
    assert await draw_number(42, "20261129") == "HZ-20261129-10000"


async def test_a_failed_submit_leaves_no_gap(db: TortoiseContext) -> None:
    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with transaction():
            assert await draw_number(21, "20261129") == "HZ-20261129-0001"
            raise Crash
    assert await draw_number(21, "20261129") == "HZ-20261129-0001"   # the retry
    assert await draw_number(22, "20261129") == "HZ-20261129-0002"
    assert await TicketNumber.all().count() == 2


async def test_a_draft_cancelled_after_its_failed_submit_keeps_its_number(
        db: TortoiseContext) -> None:
    """The ledger then shows the number as 已取消 instead of a gap. (On SQLite the draw is
    part of the 提交's transaction, so the failed 提交 drew nothing to keep.)"""
    reporter = await User.create(id="zhangsan", name="张三", roles=["worker"])
    await Area.create(code="A1", name="1号车间")
    now = datetime(2026, 11, 29, 9, tzinfo=UTC)
    draft = await Ticket.create(reporter_id=reporter.id, area_id="A1", category="F02",
                                description="灭火器压力不足", created_at=now, updated_at=now)
    with pytest.raises(ZeroDivisionError):
        async with transaction():
            await draw_number(draft.id, "20261129")
            raise ZeroDivisionError      # the 提交 fails after the draw, every time
    await cancel(draft, reporter, "上报人取消", now)
    assert (await Ticket.get(id=draft.id)).status is Status.CANCELLED
    numbers = set(await Ticket.filter(number__isnull=False).values_list("number", flat=True))
    numbers.add(await draw_number(draft.id + 1, "20261129"))
    assert numbers == {f"HZ-20261129-{n:04d}" for n in range(1, len(numbers) + 1)}
    assert len(numbers) == (2 if BACKEND == "postgres" else 1)


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite has one writer at a time by design")
async def test_a_draw_does_not_wait_for_the_submit_that_drew_before(db: TortoiseContext) -> None:
    first_drawn, let_go = asyncio.Event(), asyncio.Event()

    async def slow_submit() -> None:
        async with transaction():
            await draw_number(31, "20261129")
            first_drawn.set()
            await let_go.wait()      # the rest of the 提交: cards, messages, the commit

    submit = asyncio.create_task(slow_submit())
    await first_drawn.wait()
    async with transaction():
        second = await asyncio.wait_for(draw_number(32, "20261129"), timeout=5)
    let_go.set()
    await submit
    assert second == "HZ-20261129-0002"
