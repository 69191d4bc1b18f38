"""Ticket numbers: dense per day, never given twice, the same for a 提交 tried again, and drawn
without waiting for the other 提交 under way."""

import asyncio

import pytest
from tortoise.context import TortoiseContext

from models import transaction
from models.hazard import TicketCounter, TicketNumber, draw_number
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
