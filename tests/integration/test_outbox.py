"""The outbox reaches people once, within WeCom's limits, through busy spells and token expiry.

Time is a parameter here: the dispatcher and the simulator share a clock the test moves."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.channels.token import PlatformToken
from bot.channels.wecom import WeComChannel
from bot.channels.wecom_api import WeComApi
from bot.clock import ManualClock
from bot.dispatcher import Dispatcher, MemberTurns
from bot.media import MediaStore
from bot.media.folder import FolderStore
from bot.settings import Settings
from models import transaction
from models.outbox import DeliveryStatus, OutboxDelivery, OutboxMessage, enqueue, outbox_claim
from models.outgoing import (
    Button,
    Card,
    CardUpdate,
    File,
    GroupCreate,
    Image,
    Priority,
    Text,
    fit,
)
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    PEOPLE,
    SECRET,
    TOKEN,
    cli,
    service_settings,
)


@dataclass
class World:
    sim: WeComSimulator
    clock: ManualClock
    dispatcher: Dispatcher
    media: MediaStore
    settings: Settings

    async def send(self, key: str, message: object, *users: str, **kw: object) -> None:
        await enqueue(key, message, now=self.clock(), platform="wecom",  # type: ignore[arg-type]
                      to_users=users, **kw)  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Run the dispatcher until nothing more is due at the current instant."""
        while await self.dispatcher.run_once():
            pass


async def make_world(database_url: str, media_dir: Path, media: MediaStore | None = None,
                     **overrides: object) -> AsyncIterator[World]:
    """The dispatcher and WeCom's channel against the simulator; photos from `media` (by
    default the folder `media_dir`)."""
    clock = ManualClock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=PEOPLE,
                         clock=clock.seconds)
    base = await sim.start()
    settings = service_settings(database_url, base, media_dir, **overrides)
    media = media or FolderStore(media_dir)
    async with aiohttp.ClientSession() as session:
        api = WeComApi(settings.wecom, session, "test-1", clock)
        channel = WeComChannel(settings.wecom, api, media)
        dispatcher = Dispatcher(settings, channels={"wecom": channel}, media=media, clock=clock,
                                instance="test-1")
        yield World(sim, clock, dispatcher, media, settings)
    await sim.stop()


@pytest.fixture
async def world(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[World]:
    async for w in make_world(database_url, media_dir):
        yield w


async def statuses(key: str) -> dict[str, DeliveryStatus]:
    rows = await OutboxDelivery.filter(message__idempotency_key=key)
    return {d.recipient: d.status for d in rows}


async def test_per_member_limit_is_kept_by_queueing_not_dropping(world: World) -> None:
    for n in range(35):
        await world.send(f"burst-{n}", Text(f"第{n}条提醒"), "zhangsan")
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 30
    world.clock.advance(30)
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 30     # still inside the minute
    world.clock.advance(31)
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 35
    assert world.sim.dropped == []


async def test_a_broadcast_goes_at_once_to_everyone_but_a_member_at_the_limit(
        world: World) -> None:
    for n in range(30):
        await world.send(f"busy-{n}", Text(f"第{n}条提醒"), "zhangsan")
    await world.drain()
    first_sent = world.clock()
    world.clock.advance(10)
    await world.send("alert", Text("【应急】氨泄漏，请立即确认"), "lisi", "zhangsan", "wangwu",
                     priority=Priority.EMERGENCY)
    await world.drain()
    # 李四 and 王五 have it now; 张三 waits until his oldest send leaves the minute.
    assert await statuses("alert") == {"lisi": DeliveryStatus.SENT,
                                          "wangwu": DeliveryStatus.SENT,
                                          "zhangsan": DeliveryStatus.PENDING}
    message = await OutboxMessage.get(idempotency_key="alert")
    assert message.next_attempt_at == first_sent + timedelta(minutes=1)
    world.clock.advance(51)
    await world.drain()
    assert set((await statuses("alert")).values()) == {DeliveryStatus.SENT}
    assert "氨泄漏" in world.sim.messages_for("zhangsan")[-1].body["text"]["content"]
    assert world.sim.calls["message/send"] == 32 and world.sim.dropped == []


async def test_a_card_reaches_a_member_who_waited_for_the_limit(world: World) -> None:
    """A card's task_id is single-use: the member served after the others gets an id of their
    own, and a timed-out repeat of that send is still refused as the duplicate it is."""
    for n in range(30):
        await world.send(f"busy-{n}", Text(f"第{n}条提醒"), "zhangsan")
    await world.drain()
    world.clock.advance(10)
    card = Card(task_id="emg-1-abc", title="【应急】请确认",
                buttons=(Button("收到", "emg:ack:1"),))
    await world.send("card", card, "lisi", "zhangsan", priority=Priority.EMERGENCY)
    await world.drain()
    world.clock.advance(51)
    world.sim.hang_next("message/send", 1.5)
    await world.drain()                      # 张三's turn: WeCom takes it, the answer times out
    world.clock.advance(5)
    await world.drain()                      # the repeat is refused as a duplicate task_id
    assert await statuses("card") == {"lisi": DeliveryStatus.SENT,
                                         "zhangsan": DeliveryStatus.SENT}

    def cards(user: str) -> list[str]:
        return [m.body["template_card"]["task_id"] for m in world.sim.messages_for(user)
                if m.body["msgtype"] == "template_card"]

    assert cards("lisi") == ["emg-1-abc"]
    [late] = cards("zhangsan")
    assert late.startswith("emg-1-abc@")
    assert world.sim.calls["message/send"] == 33 and world.sim.dropped == []


async def test_attempts_sharing_a_member_take_turns_in_order_the_others_go_at_once() -> None:
    """Between counting a member's sends and reserving theirs, nobody else may hand them one;
    cards to different thousands of responders need not wait for each other."""
    turns = MemberTurns()
    log: list[str] = []
    b_through = asyncio.Event()

    async def attempt(name: str, members: set[str]) -> None:
        async with turns.turn(frozenset(members)):
            log.append(f"{name}+")
            if name == "a":       # a holds its turn until b, who shares nobody with it, is through
                async with asyncio.timeout(10):
                    await b_through.wait()
            await asyncio.sleep(0)          # room for an attempt that should wait to barge in
            log.append(f"{name}-")
        if name == "b":
            b_through.set()

    await asyncio.gather(attempt("a", {"zhangsan", "lisi"}), attempt("b", {"wangwu"}),
                         attempt("c", {"lisi"}), attempt("d", {"lisi", "wangwu"}))
    assert log == ["a+", "b+", "b-", "a-", "c+", "c-", "d+", "d-"]


async def test_busy_twice_then_expired_token_then_success_delivers_once(world: World) -> None:
    world.sim.fail_next("message/send", -1, times=2)
    await world.send("k1", Text("请注意安全"), "zhangsan")
    await world.drain()
    assert world.sim.messages_for("zhangsan") == []
    world.clock.advance(1)
    await world.drain()
    world.sim.expire_tokens()
    world.clock.advance(3)
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 1
    assert world.sim.token_fetches == 2
    world.clock.advance(600)
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 1
    assert await statuses("k1") == {"zhangsan": DeliveryStatus.SENT}


async def test_one_persons_messages_arrive_in_the_order_they_were_queued(world: World) -> None:
    """Eight senders at once, yet 张三 reads her messages in the order the service queued them."""
    world.sim.latency = 0.02
    for n in range(6):
        await world.send(f"order-{n}", Text(f"第{n}条"), "zhangsan")
        await world.send(f"other-{n}", Text(f"第{n}条"), "lisi")
    await world.send("everyone", Text("全体通知"), "zhangsan", "lisi", "wangwu")
    await world.drain()
    for user in ("zhangsan", "lisi"):
        got = [m.body["text"]["content"] for m in world.sim.messages_for(user)]
        assert [g for g in got if g != "全体通知"] == [f"第{n}条" for n in range(6)]
    assert len(world.sim.messages_for("wangwu")) == 1


async def test_many_instances_share_one_token_refresh(world: World) -> None:
    """Instances that find the token stale together fetch it once; the rest use its result."""
    world.sim.latency = 0.05
    async with aiohttp.ClientSession() as session:
        apis = [WeComApi(world.settings.wecom, session, f"inst-{n}", world.clock)
                for n in range(8)]
        for _ in range(3):
            tokens = await asyncio.gather(*(api.token() for api in apis for _ in range(3)))
            assert len(set(tokens)) == 1
            world.clock.advance(7200)
    assert world.sim.token_fetches == 3


async def test_invalid_users_are_recorded_per_recipient(world: World) -> None:
    await world.send("k2", Text("通知"), "zhangsan", "ghost1", "Ghost2")
    await world.drain()
    assert await statuses("k2") == {"zhangsan": DeliveryStatus.SENT,
                                    "ghost1": DeliveryStatus.INVALID,
                                    "Ghost2": DeliveryStatus.INVALID}
    assert (await OutboxMessage.get(idempotency_key="k2")).status == "done"


async def test_all_recipients_invalid_is_settled_not_retried(world: World) -> None:
    await world.send("k3", Text("通知"), "ghost1", "ghost2")
    await world.drain()
    world.clock.advance(600)
    await world.drain()
    assert set((await statuses("k3")).values()) == {DeliveryStatus.INVALID}
    assert world.sim.calls["message/send"] == 1


async def test_recipients_are_chunked_to_a_thousand(world: World) -> None:
    crowd = [f"worker{n:04d}" for n in range(1500)]
    for user in crowd:
        world.sim.add_user(user)
    await world.send("k4", Text("全厂通知"), *crowd)
    await world.drain()
    assert world.sim.calls["message/send"] == 2
    assert set((await statuses("k4")).values()) == {DeliveryStatus.SENT}


async def test_the_same_idempotency_key_is_sent_once(world: World) -> None:
    await world.send("k5", Text("一次"), "zhangsan")
    await world.send("k5", Text("一次"), "zhangsan")
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 1


async def test_messages_commit_with_the_callers_transaction_or_on_their_own(
        db: TortoiseContext) -> None:
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError):
        async with transaction():
            await enqueue("undone", Text("撤回"), now=now, platform="wecom",
                          to_users=["zhangsan"])
            raise RuntimeError("the decision failed")
    assert await OutboxMessage.all().count() == 0
    assert await OutboxDelivery.all().count() == 0
    await enqueue("alone", Text("你好"), now=now, platform="wecom", to_users=["zhangsan", "lisi"])
    message = await OutboxMessage.get(idempotency_key="alone")
    assert sorted(await OutboxDelivery.filter(message_id=message.id).values_list(
        "recipient", flat=True)) == ["lisi", "zhangsan"]


async def test_permanent_errors_are_recorded_and_never_retried(world: World) -> None:
    world.sim.fail_next("message/send", 48002)
    await world.send("k6", Text("无权限"), "zhangsan")
    await world.drain()
    world.clock.advance(3600)
    await world.drain()
    assert world.sim.calls["message/send"] == 1
    delivery = await OutboxDelivery.get(message__idempotency_key="k6")
    assert delivery.status is DeliveryStatus.FAILED and delivery.error.startswith("48002")


async def test_failed_deliveries_are_listed_and_sent_again_on_request(
        world: World, database_url: str) -> None:
    """`safetybot outbox parked` lists what a recipient never got; `outbox retry` sends it
    once more, once the cause (here the app's permission) is mended."""
    world.sim.fail_next("message/send", 48002)
    await world.send("k-retry", Text("整改通知"), "zhangsan")
    await world.drain()            # alone, so the failure is surely this message's
    await world.send("k-fine", Text("另一条"), "lisi")
    await world.drain()
    message = await OutboxMessage.get(idempotency_key="k-retry")
    env = {"SAFETYBOT_DATABASE_URL": database_url}

    listed = await asyncio.to_thread(cli, "outbox", "parked", env=env)
    assert listed.returncode == 0, listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if row.startswith(f"{message.id}\t")]
    assert "zhangsan" in line and "48002" in line
    assert "1 with failed deliveries" in listed.stdout

    put_back = await asyncio.to_thread(cli, "outbox", "retry", "--all", env=env)
    assert put_back.returncode == 0 and f"1 put back ({message.id})" in put_back.stdout
    # `outbox retry`, a process of its own, put it back as of the system clock.
    world.clock.set(datetime.now(UTC) + timedelta(seconds=1))
    await world.drain()
    assert [m.body["text"]["content"] for m in world.sim.messages_for("zhangsan")] == ["整改通知"]
    assert await statuses("k-retry") == {"zhangsan": DeliveryStatus.SENT}
    again = await asyncio.to_thread(cli, "outbox", "retry", "--all", env=env)
    assert again.returncode == 0 and "0 put back" in again.stdout
    assert len(world.sim.messages_for("lisi")) == 1      # the other message was left alone


async def test_frequency_ban_waits_a_minute(world: World) -> None:
    world.sim.fail_next("message/send", 45009)
    await world.send("k7", Text("稍后"), "zhangsan")
    await world.drain()
    world.clock.advance(30)
    await world.drain()
    assert world.sim.calls["message/send"] == 1
    world.clock.advance(31)
    await world.drain()
    assert len(world.sim.messages_for("zhangsan")) == 1


async def test_a_timed_out_send_is_repeated_without_a_duplicate(world: World) -> None:
    world.sim.hang_next("message/send", 1.5)
    await world.send("k8", Text("超时重试"), "zhangsan")
    await world.drain()
    world.clock.advance(5)
    await world.drain()
    assert world.sim.calls["message/send"] == 2
    assert len(world.sim.messages_for("zhangsan")) == 1
    assert await statuses("k8") == {"zhangsan": DeliveryStatus.SENT}


async def test_emergency_goes_ahead_of_routine(db: TortoiseContext, database_url: str,
                                               media_dir: Path) -> None:
    async for world in make_world(database_url, media_dir, outbox_concurrency=1):
        await world.send("routine", Text("日常提醒"), "zhangsan")
        await world.send("alarm", Text("氨泄漏，请立即撤离"), "zhangsan",
                         priority=Priority.EMERGENCY)
        await world.drain()
        first, second = world.sim.messages_for("zhangsan")
        assert first.body["text"]["content"] == "氨泄漏，请立即撤离"
        assert second.body["text"]["content"] == "日常提醒"


async def test_a_card_and_its_single_use_update(world: World) -> None:
    card = Card(task_id="hz-0001-review-1", title="隐患复查 HZ-20261129-0001",
                description="3号车间 配电箱门未关", fields=(("等级", "一般"),),
                buttons=(Button("通过", "review:1:yes"), Button("驳回", "review:1:no", 2)))
    await world.send("card", card, "lisi", "wangwu")
    await world.drain()
    [received] = world.sim.messages_for("lisi")
    assert received.body["template_card"]["task_id"] == "hz-0001-review-1"
    code = (await OutboxMessage.get(idempotency_key="card")).result["response_codes"][0]
    await enqueue("upd-1", CardUpdate(code, "已由李四通过"), now=world.clock(), platform="wecom")
    await enqueue("upd-2", CardUpdate(code, "重复更新"), now=world.clock(), platform="wecom")
    await world.drain()
    assert len(world.sim.card_updates) == 1
    assert set((await statuses("upd-2")).values()) == {DeliveryStatus.FAILED}


async def test_group_chat_create_and_send(world: World) -> None:
    await enqueue("grp", GroupCreate("emergency01", "应急指挥群", "lisi",
                                     ("lisi", "wangwu", "zhangsan")),
                  now=world.clock(), platform="wecom")
    await world.drain()
    await enqueue("grp-msg", Text("预案已启动"), now=world.clock(), platform="wecom",
                  to_chat="emergency01")
    await world.drain()
    [said] = world.sim.chat_messages("emergency01")
    assert said.body["text"]["content"] == "预案已启动"
    with pytest.raises(ValueError, match="group"):
        await enqueue("grp-card", Card("t1", "卡片", buttons=(Button("收到", "ack:1"),)),
                      now=world.clock(), platform="wecom", to_chat="emergency01")


async def test_an_image_is_uploaded_then_sent(world: World) -> None:
    digest = await world.media.put(b"\x89PNG\r\n\x1a\n" + b"chart" * 50)
    await world.send("img", Image(digest), "zhangsan")
    await world.drain()
    [received] = world.sim.messages_for("zhangsan")
    assert received.msgtype == "image" and received.body["image"]["media_id"]


async def test_a_photo_upload_met_by_an_expired_token_is_sent_whole_with_a_fresh_one(
        world: World) -> None:
    """The upload is read from its spooled file: the retry sends every byte again."""
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2000
    digest = await world.media.put(data)
    await world.send("first", Text("先取得令牌"), "zhangsan")
    await world.drain()
    world.sim.expire_tokens()
    await world.send("expired", Image(digest), "zhangsan")
    await world.drain()
    [_, received] = world.sim.messages_for("zhangsan")
    assert world.sim.media[received.body["image"]["media_id"]].data == data
    assert world.sim.calls["media/upload"] == 2 and world.sim.calls["gettoken"] == 2


async def test_a_photo_or_file_missing_from_the_store_is_sent_as_a_note(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Lost evidence is said, once, with the ticket it belongs to, never sent as nothing and
    never retried for ever; the messages around it still go."""
    assert isinstance(world.media, FolderStore)
    kept = await world.media.put(b"\x89PNG\r\n\x1a\n" + b"before" * 50)
    lost = await world.media.put(b"\x89PNG\r\n\x1a\n" + b"after" * 50)
    world.media.path(lost).unlink()
    ledger = await world.media.put(b"PK\x03\x04 ledger")
    world.media.path(ledger).unlink()
    await world.send("before", Image(kept, about="HZ-20261207-0003"), "zhangsan")
    await world.send("after", Image(lost, about="HZ-20261207-0003"), "zhangsan")
    await world.send("ledger", File(ledger, "隐患台账-2026-11.xlsx", about="2026-11 月报"),
                     "zhangsan")
    await world.send("card", Text("整改复查 HZ-20261207-0003"), "zhangsan")
    with caplog.at_level(logging.ERROR):
        await world.drain()
    got = world.sim.messages_for("zhangsan")
    assert [m.msgtype for m in got] == ["image", "text", "text", "text"]
    assert got[1].body["text"]["content"] == (
        "（HZ-20261207-0003 的照片在存储中缺失，未能发送，已记录。请联系管理员核查。）")
    assert "文件《隐患台账-2026-11.xlsx》在存储中缺失" in got[2].body["text"]["content"]
    assert world.sim.calls["media/upload"] == 1
    assert {r.ticket for r in caplog.records if hasattr(r, "ticket")} == {  # type: ignore[attr-defined]
        "HZ-20261207-0003", "2026-11 月报"}
    for key in ("after", "ledger"):
        assert set((await statuses(key)).values()) == {DeliveryStatus.SENT}


async def test_logs_show_neither_the_secret_nor_the_token(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    world.sim.hang_next("message/send", 1.5)
    world.sim.fail_next("message/send", 48002)
    await world.send("quiet", Text("日志检查"), "zhangsan")
    await world.drain()
    world.clock.advance(5)
    await world.drain()
    token = (await PlatformToken.get()).token
    assert caplog.records, "the failures should have been logged"
    assert token not in caplog.text and SECRET not in caplog.text


async def test_claims_at_the_same_time_lease_each_message_once(db: TortoiseContext) -> None:
    now = datetime.now(UTC)
    for n in range(6):
        await enqueue(f"m{n}", Text(str(n)), now=now, platform="wecom",
                      to_users=[f"person{n}"])
    lease = timedelta(minutes=1)
    batches = await asyncio.gather(*(outbox_claim(f"dispatcher-{i}", now, lease, 4)
                                     for i in range(3)))
    claimed = [leased.message.id for batch in batches for leased in batch]
    assert sorted(claimed) == sorted(m.id for m in await OutboxMessage.all())
    assert await outbox_claim("late", now, lease, 10) == []
    for batch, i in zip(batches, range(3), strict=True):
        assert {leased.message.lease_owner for leased in batch} <= {f"dispatcher-{i}"}
        ids = [leased.message.id for leased in batch]
        owners = await OutboxMessage.filter(id__in=ids).values_list("lease_owner", flat=True)
        assert set(owners) <= {f"dispatcher-{i}"}


def test_fit_keeps_whole_lines_within_the_room_and_says_what_it_left_out() -> None:
    lines = [f"第{n}行" for n in range(10)]              # 7 bytes each, 79 with the newlines
    assert fit(lines, room=79) == "\n".join(lines)       # exactly full: nothing left out
    assert fit(lines, room=78) == "\n".join([*lines[:9], "……"])           # 78 bytes
    assert fit(lines, room=40, newest_last=True) == "……\n第6行\n第7行\n第8行\n第9行"
    assert fit(["一" * 700], room=100) == "……"         # a line is never cut in the middle
