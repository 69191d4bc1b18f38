"""The inbox: arrival order per person, people in parallel, failures retried then parked,
and nothing lost or doubled across a restart."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from bot.app import SUPERVISOR, instance_name
from bot.clock import utc_now
from bot.db import connect_params
from handlers.router import Context, Router
from models import transaction
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, InboxStatus, inbox_claim, inbox_put
from models.org import User
from models.outbox import OutboxDelivery, OutboxMessage, enqueue
from models.outgoing import Text
from simulator.wecom import WeComSimulator
from tests.harness import BACKEND, Service, drain, service_settings, settled, text, worker


async def test_each_persons_events_in_order_people_in_parallel(
        db: TortoiseContext, people: None, media_dir: Path, database_url: str) -> None:
    seen: list[tuple[str, str]] = []
    busy: set[str] = set()
    overlap: list[bool] = []
    router = Router()

    @router.kind(InboundKind.TEXT)
    async def record(ctx: Context) -> None:
        overlap.append(bool(busy - {ctx.event.user_id}))
        busy.add(ctx.event.user_id)
        await asyncio.sleep(0.02)           # a handler that takes a moment: others may overlap it
        seen.append((ctx.event.user_id, ctx.event.text))
        busy.discard(ctx.event.user_id)

    for n in range(5):
        for user in ("zhangsan", "lisi", "wangwu"):
            await inbox_put(text(user, n, str(n)), utc_now())
    await drain(worker(media_dir, database_url, router))
    for user in ("zhangsan", "lisi", "wangwu"):
        assert [t for u, t in seen if u == user] == ["0", "1", "2", "3", "4"]
    if BACKEND == "postgres":
        # SQLite has one connection and tortoise serialises its transactions, so there people
        # are handled one after another; PostgreSQL gives each handler its own connection.
        assert any(overlap), "different people should be handled at the same time"


async def test_a_failing_event_is_retried_then_parked_and_later_events_go_on(
        db: TortoiseContext, people: None, media_dir: Path, database_url: str) -> None:
    tries: list[str] = []
    router = Router()

    @router.kind(InboundKind.TEXT)
    async def fragile(ctx: Context) -> None:
        tries.append(ctx.event.text)
        await ctx.reply(Text("处理中"))            # rolled back with the failure
        if ctx.event.text == "坏":
            raise RuntimeError("handler bug")

    await inbox_put(text("zhangsan", 1, "坏"), utc_now())
    await inbox_put(text("zhangsan", 2, "好"), utc_now())
    await drain(worker(media_dir, database_url, router, inbox_max_attempts=3,
                       inbox_retry_seconds=0.01))
    assert tries == ["坏", "坏", "坏", "好"]
    bad, good = await InboxEvent.all().order_by("id")
    assert (bad.status, bad.attempts) == (InboxStatus.PARKED, 3)
    assert "handler bug" in bad.last_error
    assert good.status is InboxStatus.DONE
    assert await OutboxMessage.all().count() == 1   # only the good event's reply survived


async def test_a_follow_up_runs_once_after_its_decision_commits(
        db: TortoiseContext, people: None, media_dir: Path, database_url: str) -> None:
    """A handler's next step is queued in its transaction: a failed try queues nothing, the
    step runs once, after what the person sent before it, and even if the person left."""
    seen: list[str] = []
    router = Router()

    @router.kind(InboundKind.TEXT)
    async def decide(ctx: Context) -> None:
        seen.append(ctx.event.text)
        await ctx.reply(Text("已决定"))
        if ctx.event.text == "启动":
            await ctx.follow_up("step:7")
            await ctx.follow_up("step:7")             # asked twice, one step
            if seen.count("启动") == 1:
                raise RuntimeError("the first try fails after queueing its step")
        else:
            await User.filter(id="zhangsan").update(active=False)   # leaves the roster

    @router.follow_up("step")
    async def step(ctx: Context) -> None:
        assert ctx.user is None
        # Both decisions committed before the step began: their replies are in the outbox.
        assert await OutboxMessage.all().count() == 2
        seen.append(ctx.event.event_key)

    await inbox_put(text("zhangsan", 1, "启动"), utc_now())
    await inbox_put(text("zhangsan", 2, "再说一句"), utc_now())
    await drain(worker(media_dir, database_url, router, inbox_retry_seconds=0.01))
    assert seen == ["启动", "启动", "再说一句", "step:7"]
    events = await InboxEvent.all().order_by("id")
    assert [(e.kind, e.user_id, e.status) for e in events] == [
        ("text", "zhangsan", InboxStatus.DONE), ("text", "zhangsan", InboxStatus.DONE),
        ("follow_up", "zhangsan", InboxStatus.DONE)]


async def test_a_queued_step_nobody_handles_is_logged_not_retried(
        db: TortoiseContext, people: None, media_dir: Path, database_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    await inbox_put(Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.FOLLOW_UP,
                            dedup_key="follow:gone:1", event_key="gone:1"), utc_now())
    await drain(worker(media_dir, database_url, Router()))
    assert (await InboxEvent.get()).status is InboxStatus.DONE
    assert any("no handler for a queued step" in r.message and r.levelname == "ERROR"
               for r in caplog.records)


async def test_acknowledged_but_unhandled_events_are_handled_after_restart(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path) -> None:
    svc = Service(service_settings(database_url, wecom.base_url, media_dir))
    await svc.start(workers=False)            # acknowledges, then "dies" before handling
    wecom.callback_url = f"{svc.url}/wecom/callback"
    assert (await wecom.user("zhangsan").says("帮助")).status == 200
    await svc.stop()
    assert wecom.messages_for("zhangsan") == []

    await svc.start()
    await wecom.wait_for("zhangsan")
    await settled()
    await svc.stop()
    assert len(wecom.messages_for("zhangsan")) == 1


async def test_an_event_leased_by_a_dead_run_is_taken_back_on_start(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path) -> None:
    settings = service_settings(database_url, wecom.base_url, media_dir)
    await inbox_put(text("zhangsan", 1, "帮助"), utc_now())
    [claimed] = await inbox_claim(instance_name(settings), utc_now(), timedelta(hours=1), 10)
    assert claimed.lease_owner == instance_name(settings)   # the previous life died holding it

    svc = Service(settings)
    await svc.start()
    await wecom.wait_for("zhangsan")
    await svc.stop()
    assert (await InboxEvent.get()).status is InboxStatus.DONE


async def test_a_repeated_key_is_a_no_op_that_leaves_the_transaction_usable(
        db: TortoiseContext, people: None) -> None:
    now = utc_now()
    assert await inbox_put(text("zhangsan", 1, "帮助"), now)
    async with transaction():
        assert not await inbox_put(text("zhangsan", 1, "帮助"), now)   # a platform retry
        assert await enqueue("reply:1", Text("好"), now=now, platform="wecom",
                             to_users=["zhangsan"])
        assert not await enqueue("reply:1", Text("好"), now=now, platform="wecom",
                                 to_users=["zhangsan"])
        # On PostgreSQL an INSERT that failed with a unique violation would abort the
        # transaction here; ON CONFLICT DO NOTHING does not.
        assert await InboxEvent.all().count() == 1
    assert await OutboxMessage.all().count() == 1
    assert [d.recipient for d in await OutboxDelivery.all()] == ["zhangsan"]


async def test_claims_at_the_same_time_lease_each_persons_oldest_event_once(
        db: TortoiseContext, people: None) -> None:
    now = utc_now()
    for n in range(3):
        for user in ("zhangsan", "lisi", "wangwu"):
            await inbox_put(text(user, n, str(n)), now)
    heads = [row.id for row in await InboxEvent.filter(dedup_key__endswith=":0")]
    lease = timedelta(minutes=1)
    batches = await asyncio.gather(*(inbox_claim(f"worker-{i}", now, lease, 10)
                                     for i in range(4)))
    claimed = [row for batch in batches for row in batch]
    assert sorted(row.id for row in claimed) == sorted(heads)
    for batch, owner in zip(batches, (f"worker-{i}" for i in range(4)), strict=True):
        assert {row.lease_owner for row in batch} <= {owner}
    # The heads are leased, and everyone's next event waits behind its head.
    assert await inbox_claim("late", now, lease, 10) == []
    # A lease that ran out (its worker died) is taken over, still only the heads.
    later = now + lease + timedelta(seconds=1)
    assert sorted(row.id for row in await inbox_claim("late", later, lease, 10)) == sorted(heads)


@pytest.mark.skipif(BACKEND != "postgres", reason="LISTEN/NOTIFY is PostgreSQL's")
async def test_a_callback_answered_elsewhere_wakes_the_workers_without_waiting_for_the_poll(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path) -> None:
    """`serve --no-workers` beside a worker process, as in the split deployment."""
    worker = Service(service_settings(database_url, wecom.base_url, media_dir, poll_seconds=60))
    front = Service(service_settings(database_url, wecom.base_url, media_dir, poll_seconds=60))
    await worker.start()
    await front.start(workers=False)
    try:
        assert worker.app is not None
        loops = worker.app[SUPERVISOR].loops

        def listening() -> bool:
            """The listener connected, and the worker's claim upon its wake-up is done."""
            heard, claimed = (loops[name].last_success if name in loops else None
                              for name in ("wakeups", "inbox-worker"))
            return heard is not None and claimed is not None and claimed > heard

        async with asyncio.timeout(10):
            while not listening():            # noqa: ASYNC110 (supervision announces nothing)
                await asyncio.sleep(0.02)
        wecom.callback_url = f"{front.url}/wecom/callback"
        assert (await wecom.user("zhangsan").says("帮助")).status == 200
        # Far sooner than the 60 s poll: the front's NOTIFY woke the worker.
        await wecom.wait_for("zhangsan", timeout=10)
    finally:
        await front.stop()
        await worker.stop()


def test_the_wakeup_listener_connects_where_the_pool_does() -> None:
    """A unix-socket URL keeps its directory; tortoise's pool options are not asyncpg's."""
    assert connect_params("postgres://bot:s%40fe@/safety?host=/var/run/postgresql&maxsize=20") == {
        "host": "/var/run/postgresql", "port": 5432, "user": "bot", "password": "s@fe",
        "database": "safety"}
    assert connect_params("postgres://bot@10.0.0.5:6432/safety?maxsize=20")["host"] == "10.0.0.5"
