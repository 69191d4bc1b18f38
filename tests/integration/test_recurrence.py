"""Which closed tickets a new report is a recurrence of: the same area and category, closed
within the window, and alike in its words; the most alike first, at most three."""

from datetime import UTC, datetime, timedelta

from tortoise.context import TortoiseContext

from bot.roster import load_org
from models.hazard import Status, Ticket, earlier_alike
from tests.harness import ROSTER_MEDIA
from tests.plant import DEMO_ORG

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


async def ticket(number: str, description: str, *, status: Status = Status.CLOSED,
                 closed_days_ago: int = 7, area: str = "A3", category: str = "H01") -> Ticket:
    closed = NOW - timedelta(days=closed_days_ago) if status is Status.CLOSED else None
    return await Ticket.create(
        number=number, status=status, reporter_id="zhangsan", area_id=area, category=category,
        description=description, created_at=NOW - timedelta(days=closed_days_ago + 3),
        updated_at=NOW, closed_at=closed)


async def test_only_alike_closed_tickets_of_the_area_and_category_within_the_window(
        db: TortoiseContext) -> None:
    await load_org(DEMO_ORG, NOW, ROSTER_MEDIA)
    await ticket("HZ-1", "配电箱门没关，有裸露电线")
    await ticket("HZ-2", "配电箱门没关 电线裸露", closed_days_ago=20)
    await ticket("HZ-3", "配电箱门没关，有裸露电线", closed_days_ago=100)     # too long ago
    await ticket("HZ-4", "配电箱门没关，有裸露电线", area="A1")              # another area
    await ticket("HZ-5", "配电箱门没关，有裸露电线", category="F02")         # another category
    await ticket("HZ-6", "插座烧焦发黑")                                     # another hazard
    await ticket("HZ-7", "配电箱门没关，有裸露电线", status=Status.OPEN)     # not closed
    new = await ticket("HZ-8", "配电箱门又没关，里面电线裸露", status=Status.OPEN)
    found = await earlier_alike(new, NOW - timedelta(days=90))
    assert [t.number for t in found] == ["HZ-2", "HZ-1"]
