"""Two service processes on one PostgreSQL, callbacks spread across both, one of them killed:
every event is handled once, each person's in order, and one token refresh happens at a time."""

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from models.inbox import InboxEvent, InboxStatus
from models.outbox import OutboxMessage
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    BACKEND,
    CORP_ID,
    SECRET,
    TOKEN,
    settled,
    spawn,
    stop,
)

pytestmark = pytest.mark.skipif(BACKEND != "postgres",
                                reason="several instances need PostgreSQL (SQLite is embedded)")

CROWD = [f"worker{n:02d}" for n in range(8)]
MESSAGES = 8


async def start_instance(name: str, database_url: str, api_base: str, media: Path
                         ) -> tuple[subprocess.Popen[bytes], str]:
    return await spawn(["serve"], database_url, api_base, media, instance_id=name,
                       lease_seconds=2)


def suppressed(sim: WeComSimulator, user: str) -> list[object]:
    return [s for s in sim.suppressed if s.user == user]


@pytest.fixture
async def crowd_sim() -> AsyncIterator[WeComSimulator]:
    async with WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=CROWD) as sim:
        yield sim


async def test_two_instances_share_the_work_without_doubling(
        db: TortoiseContext, database_url: str, crowd_sim: WeComSimulator,
        media_dir: Path) -> None:
    from models.org import User
    for user in CROWD:
        await User.create(id=user, name=user, roles=["worker"])
    a, url_a = await start_instance("inst-a", database_url, crowd_sim.base_url, media_dir)
    b, url_b = await start_instance("inst-b", database_url, crowd_sim.base_url, media_dir)
    try:
        async def person(user: str) -> None:
            sender = crowd_sim.user(user)
            for n in range(MESSAGES):
                crowd_sim.callback_url = f"{(url_a, url_b)[n % 2]}/wecom/callback"
                assert (await sender.says(f"第{n}条")).status == 200

        await asyncio.gather(*(person(u) for u in CROWD[:4]))
        # Once a reply went out the shared token is stored; killed mid-refresh, A would leave
        # B to fetch another (allowed, but not what the token count below checks).
        await crowd_sim.until(lambda: any(crowd_sim.messages_for(u) for u in CROWD[:4]))
        a.send_signal(signal.SIGKILL)          # instance A dies with whatever it had leased
        a.wait()
        crowd_sim.callback_url = f"{url_b}/wecom/callback"
        for user in CROWD[4:]:
            for n in range(MESSAGES):
                assert (await crowd_sim.user(user).says(f"第{n}条")).status == 200

        async def answered(user: str) -> None:
            await crowd_sim.until(lambda: len(crowd_sim.messages_for(user))
                                  + len(suppressed(crowd_sim, user)) >= MESSAGES, timeout=20)

        await asyncio.gather(*(answered(u) for u in CROWD))
        # What A left leased is B's once the lease runs out: all of it handled and sent, and any
        # doubled reply already in, before anything is counted.
        await settled(timeout=30)
    finally:
        for proc in (a, b):
            await stop(proc)

    for user in CROWD:
        # Every reply arrived, except where the dispatcher repeated a send that A's death left
        # unsettled and WeCom's duplicate check recognised the same text sent moments before.
        delivered = len(crowd_sim.messages_for(user))
        assert delivered <= MESSAGES, f"{user} got a reply twice"
        assert delivered + len(suppressed(crowd_sim, user)) >= MESSAGES, f"{user} lost a reply"
        rows = await InboxEvent.filter(user_id=user).order_by("id")
        assert [r.status for r in rows] == [InboxStatus.DONE] * MESSAGES
        done = [r.processed_at for r in rows]
        assert done == sorted(done), f"{user}'s events were handled out of order"
    assert await OutboxMessage.all().count() == len(CROWD) * MESSAGES
    assert crowd_sim.dropped == []
    assert crowd_sim.token_fetches == 1
