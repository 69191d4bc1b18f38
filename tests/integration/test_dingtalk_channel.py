"""The DingTalk channel against the DingTalk simulator over loopback: both ways in (Stream and the
HTTP callback) end in one inbox, de-duplicated on msgId; what is refused is refused before
anything is stored; sending survives the token API and batchSend failing; one instance holds the
stream at a time (chat-protocols.md §7)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from bot.app import INBOX
from bot.channels.dingtalk_groups import conversation_of
from bot.clock import utc_now
from bot.plans import load_plans
from bot.roster import load_org, parse_roster
from bot.settings import SettingError, load_settings
from models.chats import GroupChat
from models.dialog import Dialog
from models.inbound import InboundKind
from models.inbox import InboxEvent
from models.org import User
from models.outbox import DeliveryStatus, OutboxDelivery, enqueue
from models.outgoing import Text
from simulator.dingtalk import DingTalkSimulator, callback_sign
from simulator.photos import photo
from tests.harness import (
    BACKEND,
    DINGTALK_CLIENT_ID,
    DINGTALK_ROBOT,
    DINGTALK_SECRET,
    ROOT,
    ROSTER_MEDIA,
    Service,
    demo_roster_copy,
    service_settings,
    settled,
    spawn,
    stop,
)

PEOPLE = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五"}


@pytest.fixture
async def staff(db: TortoiseContext) -> None:
    for user_id, name in PEOPLE.items():
        await User.create(id=user_id, name=name, roles=["worker"])


def simulator(mode: str = "stream", **options: Any) -> DingTalkSimulator:
    return DingTalkSimulator(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT,
                             users=list(PEOPLE), mode=mode, **options)  # type: ignore[arg-type]


async def _service(mode: str, database_url: str, media_dir: Path
                   ) -> AsyncIterator[tuple[DingTalkSimulator, Service]]:
    async with simulator(mode) as sim:
        service = Service(service_settings(database_url, "", media_dir, dingtalk=sim.base_url,
                                           dingtalk_mode=mode, lease_seconds=2))
        await service.start()
        sim.callback_url = f"{service.url}/dingtalk/callback"
        try:
            yield sim, service
        finally:
            await service.stop()


@pytest.fixture
async def stream(staff: None, database_url: str, media_dir: Path
                 ) -> AsyncIterator[tuple[DingTalkSimulator, Service]]:
    async for both in _service("stream", database_url, media_dir):
        yield both


@pytest.fixture
async def http(staff: None, database_url: str, media_dir: Path
               ) -> AsyncIterator[tuple[DingTalkSimulator, Service]]:
    async for both in _service("http", database_url, media_dir):
        yield both


@pytest.fixture(params=["stream", "http"])
async def either(request: pytest.FixtureRequest, staff: None, database_url: str,
                 media_dir: Path) -> AsyncIterator[tuple[DingTalkSimulator, Service]]:
    """One service per test: two on one database would share each other's queues."""
    async for both in _service(request.param, database_url, media_dir):
        yield both


def texts(sim: DingTalkSimulator, user: str) -> list[str]:
    return [str(m.body.get("content") or m.body.get("text") or m.msgtype)
            for m in sim.messages_for(user)]


async def replies(sim: DingTalkSimulator, user: str, count: int) -> list[str]:
    await sim.until(lambda: len(sim.messages_for(user)) >= count, 10,
                    lambda: f"{user} got {texts(sim, user)}")
    await settled()
    return texts(sim, user)


# ---------------------------------------------------------------------------------------------
# Receiving


async def test_stream_and_http_callback_reach_the_same_handlers(
        either: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = either
    answer = await sim.user("zhangsan").says("帮助")
    assert answer.status == 200
    [help_text] = await replies(sim, "zhangsan", 1)
    assert "安全助手 使用说明" in help_text
    assert await InboxEvent.filter(platform="dingtalk").count() == 1


async def test_a_redelivered_frame_or_callback_is_one_event(
        either: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = either
    first = await sim.user("lisi").says("帮助")
    again = await sim.user("lisi").resend(first)          # the same msgId once more
    assert again.status == 200
    await replies(sim, "lisi", 1)
    assert len(sim.messages_for("lisi")) == 1
    assert await InboxEvent.filter(user_id="lisi").count() == 1


async def test_pictures_rich_text_and_audio_become_the_events_people_meant(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = stream
    await sim.user("zhangsan").sends_rich_text(photo(1), "配电箱门没关", photo(2))
    await sim.user("wangwu").sends_audio("帮助")
    await sim.user("lisi").sends_audio("")                # nothing recognised
    await replies(sim, "zhangsan", 2)
    rows = await InboxEvent.filter(user_id="zhangsan").order_by("id")
    assert [r.kind for r in rows] == ["image", "image", "text"]
    assert rows[2].event.text == "配电箱门没关"
    assert all(r.event.media for r in rows[:2])           # both pictures fetched and stored
    assert "安全助手 使用说明" in (await replies(sim, "wangwu", 1))[0]
    assert (await InboxEvent.get(user_id="lisi")).kind == InboundKind.VOICE
    assert "没有理解" in (await replies(sim, "lisi", 1))[0]


async def test_a_staff_id_the_roster_keys_otherwise_is_that_person(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    """李四 is `lisi` in the roster and `0312456` on DingTalk: his messages are his, his
    question is kept under his roster id, and every answer reaches his DingTalk id."""
    sim, _ = stream
    await User.filter(id="lisi").update(platform="dingtalk", platform_id="0312456")
    await sim.user("0312456").says("上报")
    [asked] = await replies(sim, "0312456", 1)
    assert "开始上报隐患" in asked
    assert (await Dialog.get(user_id="lisi")).kind == "report"
    assert not sim.messages_for("lisi")


async def test_an_outsider_is_answered_and_never_handled(
        either: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = either
    assert (await sim.external("访客小王").says("你好")).status == 200
    await sim.until(lambda: bool(sim.session_replies), 5)
    [reply] = sim.session_replies
    assert "只为本企业员工服务" in json.dumps(reply.body, ensure_ascii=False)
    assert await InboxEvent.all().count() == 0


async def test_an_unknown_topic_and_a_foreign_robot_are_acked_and_dropped(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = stream
    assert (await sim.send_event("/v1.0/contact/unknown", {"x": 1})).status == 200
    payload = (await sim.user("zhangsan").says("帮助", wait=False)).payload
    # the frame above is answered; now the same message for some other app's robot
    foreign = {**payload, "msgId": "msg-foreign", "robotCode": "someone-else"}
    assert (await sim.send(foreign)).status == 200
    await replies(sim, "zhangsan", 1)
    assert await InboxEvent.all().count() == 1


async def test_a_socket_dropped_mid_frame_loses_nothing_and_doubles_nothing(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = stream
    await sim.user("zhangsan").says("帮助")
    opened = sim.connections_opened
    pending = [await sim.user(u).says("帮助", wait=False) for u in ("lisi", "wangwu")]
    sim.drop_socket()
    await sim.until(lambda: sim.connections_opened > opened, 15)
    for user in ("lisi", "wangwu"):
        await replies(sim, user, 1)
    await sim.send_disconnect()                            # DingTalk's own "reconnect, please"
    await sim.until(lambda: sim.connections_opened > opened + 1, 15)
    assert (await sim.user("zhangsan").says("帮助")).status == 200
    await replies(sim, "zhangsan", 2)
    assert await sim.ping()
    for user in ("lisi", "wangwu"):
        assert len(sim.messages_for(user)) == 1
        assert await InboxEvent.filter(user_id=user).count() == 1
    assert {p.message_id for p in pending} <= set(sim.acks)


async def test_a_silent_socket_is_noticed_and_replaced(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = stream
    await sim.until(lambda: sim.connections_opened == 1, 10)
    sim.silence_socket()                 # open, but nothing comes back: not even a pong
    await sim.until(lambda: sim.connections_opened == 2, 15)     # within about two leases
    await sim.user("zhangsan").says("帮助")
    await replies(sim, "zhangsan", 1)


async def test_a_picture_whose_download_fails_is_told_and_fetched_again(
        staff: None, database_url: str, media_dir: Path) -> None:
    """DingTalk's download fails: the event waits (nothing lost, no try counted), the worker
    hears once after a minute that the message is safe, and the photo is handled once the
    download works."""
    async with simulator() as sim:
        service = Service(service_settings(database_url, "", media_dir, dingtalk=sim.base_url,
                                           inbox_retry_seconds=5))
        await service.start()
        try:
            sim.fail_downloads(times=2)
            await sim.user("zhangsan").sends_photo(photo(3), "image/png")
            for _ in range(2):                  # the second failure comes a minute later
                await until_failed(service)
                service.clock.advance(61)
                assert service.app is not None
                service.app[INBOX].wake()
            said = await replies(sim, "zhangsan", 2)
            assert "您的消息已收到" in said[0] and "已收到照片" in said[1]
            row = await InboxEvent.get(user_id="zhangsan")
            assert row.event.media and row.attempts == 0
            assert sim.calls["robot/messageFiles/download"] == 3
        finally:
            await service.stop()


async def until_failed(service: Service, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Until the photo's latest try failed and waits for a later one."""
    async with asyncio.timeout(timeout):
        while True:
            row = await InboxEvent.get_or_none(user_id="zhangsan")
            if row is not None and row.failing_since is not None \
                    and row.next_attempt_at > service.clock():
                return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("case", ["missing sign", "wrong sign", "two hours old",
                                  "malformed JSON", "oversized", "another robot"])
async def test_a_bad_callback_is_refused_and_nothing_stored(
        http: tuple[DingTalkSimulator, Service], case: str) -> None:
    sim, _ = http
    message = (await sim.user("zhangsan").says("帮助")).payload
    await replies(sim, "zhangsan", 1)
    before = await InboxEvent.all().count()
    fresh = {**message, "msgId": f"msg-{case}"}
    old = str(int((time.time() - 2 * 3600) * 1000))
    status = {
        "missing sign": lambda: sim.post_callback(fresh, omit=("sign", "timestamp")),
        "wrong sign": lambda: sim.post_callback(fresh, sign=callback_sign("1", "guess")),
        "two hours old": lambda: sim.post_callback(fresh, timestamp=old),
        "malformed JSON": lambda: sim.post_callback(b'{"msgId": "x", '),
        "oversized": lambda: sim.post_callback(b" " * 70_000 + json.dumps(fresh).encode()),
        "another robot": lambda: sim.post_callback({**fresh, "robotCode": "not-ours"}),
    }
    expected = {"missing sign": 401, "wrong sign": 401, "two hours old": 401,
                "malformed JSON": 400, "oversized": 413, "another robot": 403}
    assert (await status[case]()).status == expected[case]
    assert await InboxEvent.all().count() == before


async def test_an_unknown_or_forged_card_changes_nothing(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = stream
    assert (await sim.user("zhangsan").clicks("rv:999", {"key": "rv:approve:999"})).status \
        == 200
    assert (await sim.user("zhangsan").clicks("", {"key": "x"})).status == 200   # malformed
    [answer] = await replies(sim, "zhangsan", 1)
    assert "无法识别这个操作" in answer
    assert await InboxEvent.all().count() == 1


# ---------------------------------------------------------------------------------------------
# Sending


async def test_the_token_api_down_delays_replies_and_loses_none(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, _ = stream
    sim.expire_tokens()
    sim.fail_next("oauth2/accessToken", 503, "ServiceUnavailable", times=2)
    await sim.user("zhangsan").says("帮助")
    await replies(sim, "zhangsan", 1)
    assert len(sim.messages_for("zhangsan")) == 1


async def test_batch_send_failures_are_retried_and_partial_ones_recorded_per_person(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, service = stream
    await User.create(id="zhaoliu", name="赵六")          # in the roster, gone from DingTalk
    sim.fail_next("robot/oToMessages/batchSend", 500, "InternalError")
    sim.flow_control("lisi")
    await enqueue("notice-1", Text("今日安全提示：进入车间请佩戴安全帽。"), now=service.clock(),
                  platform="dingtalk", to_users=["zhangsan", "lisi", "zhaoliu"])
    await sim.until(lambda: bool(sim.messages_for("zhangsan")), 10)
    await sim.until(lambda: sim.calls.get("robot/oToMessages/batchSend", 0) >= 2, 10)
    assert not sim.messages_for("lisi")                   # flow-controlled: a minute later
    service.clock.advance(61)
    await sim.until(lambda: bool(sim.messages_for("lisi")), 10)
    await settled()
    statuses = dict(await OutboxDelivery.all().values_list("recipient", "status"))
    assert statuses == {"zhangsan": DeliveryStatus.SENT, "lisi": DeliveryStatus.SENT,
                        "zhaoliu": DeliveryStatus.INVALID}
    assert len(sim.messages_for("zhangsan")) == len(sim.messages_for("lisi")) == 1


async def test_the_months_api_quota_spent_fails_plainly_and_is_not_hammered(
        stream: tuple[DingTalkSimulator, Service]) -> None:
    sim, service = stream
    sim.fail_next("robot/oToMessages/batchSend", 403, "Forbidden.AccessDenied.ApiCountLimitForOrg")
    await enqueue("notice-quota", Text("今日安全提示"), now=service.clock(), platform="dingtalk",
                  to_users=["zhangsan"])
    await settled()
    [delivery] = await OutboxDelivery.all()
    assert delivery.status is DeliveryStatus.FAILED
    assert "monthly API quota" in delivery.error
    assert sim.calls["robot/oToMessages/batchSend"] == 1


# ---------------------------------------------------------------------------------------------
# The plans' groups: scene groups the service creates and keeps with the roster


async def test_the_plans_groups_are_scene_groups_that_follow_the_roster(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path) -> None:
    roster = (ROOT / "config" / "demo-org.toml").read_text(encoding="utf-8")
    people = [u.id for u in parse_roster(roster).users]
    await load_org(ROOT / "config" / "demo-org.toml", utc_now(), ROSTER_MEDIA)
    async with DingTalkSimulator(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT,
                                 users=people) as sim:
        service = Service(service_settings(database_url, "", media_dir, dingtalk=sim.base_url,
                                           dingtalk_group_template_id="tpl-emergency"))
        await service.start()
        try:
            await load_plans(ROOT / "config" / "plans", utc_now(), "dingtalk")
            await settled()
            chats = {c.chat_id: c for c in await GroupChat.all()}
            groups = {g.title: g for g in sim.groups.values()}
            assert len(groups) == len(chats) == 3
            nh3 = chats["emergency01"]
            group = groups[nh3.name]
            assert set(group.members) == set(nh3.members) and group.owner == nh3.owner
            assert (await conversation_of("emergency01")) == group.open_conversation_id
            # Someone the plan calls leaves: the roster load takes them out of the group.
            leaving = next(m for m in nh3.members             # named nowhere else
                           if m != nh3.owner and roster.count(f'"{m}"') == 1)
            shorter = demo_roster_copy(tmp_path, _without_user(roster, leaving))
            await load_org(shorter, utc_now(), ROSTER_MEDIA)
            await settled()
            now = sim.groups[group.open_conversation_id]
            assert leaving not in now.members and len(now.members) == len(group.members) - 1
            # A broadcast to the plan's group reaches the scene group.
            await enqueue("emg-test", Text("演练通知"), now=service.clock(), platform="dingtalk",
                          to_chat="emergency01")
            await settled()
            [told] = sim.chat_messages(group.open_conversation_id)
            assert told.body["content"] == "演练通知"
        finally:
            await service.stop()


def _without_user(roster: str, user_id: str) -> str:
    """The roster file without one [[users]] entry."""
    blocks = roster.split("\n[[")
    kept = [b for b in blocks if not (b.startswith("users]]") and f'id = "{user_id}"' in b)]
    return "\n[[".join(kept)


# ---------------------------------------------------------------------------------------------
# One instance holds the stream


async def test_one_instance_holds_the_stream_and_another_takes_over(
        stream: tuple[DingTalkSimulator, Service], database_url: str, media_dir: Path) -> None:
    if BACKEND != "postgres":
        pytest.skip("two instances need PostgreSQL (SQLite is embedded)")
    sim, first = stream
    second = Service(service_settings(database_url, "", media_dir, dingtalk=sim.base_url,
                                      lease_seconds=2, instance_id="second"))
    await second.start()
    try:
        await asyncio.sleep(2)
        assert sim.connections_opened == 1                 # the second stands by
        await first.stop()                                 # gives the lease up
        await sim.until(lambda: sim.connections_opened == 2, 10)
        await sim.user("zhangsan").says("帮助")
        await replies(sim, "zhangsan", 1)
    finally:
        await second.stop()


@pytest.mark.skipif(BACKEND != "postgres", reason="several instances need PostgreSQL")
async def test_a_killed_instance_mid_dialog_loses_nothing(
        staff: None, database_url: str, media_dir: Path) -> None:
    """The holder dies with the stream open and a report half asked; the other instance takes
    the stream over within seconds and the dialog goes on from where it was."""
    async with simulator() as sim:
        env = {"dingtalk_client_id": DINGTALK_CLIENT_ID,
               "dingtalk_client_secret": DINGTALK_SECRET,
               "dingtalk_robot_code": DINGTALK_ROBOT,
               "dingtalk_card_template_id": "tpl.schema",
               "dingtalk_api_base": sim.base_url, "dingtalk_oapi_base": sim.base_url,
               "lease_seconds": 2}
        a, _ = await spawn(["serve"], database_url, "http://127.0.0.1:9", media_dir,
                           instance_id="a", **env)
        await sim.until(lambda: sim.connections_opened == 1, 15)
        b, _ = await spawn(["serve"], database_url, "http://127.0.0.1:9", media_dir,
                           instance_id="b", **env)
        try:
            await sim.user("zhangsan").sends_photo(photo(4), "image/png")
            await sim.until(lambda: any("哪个区域" in t for t in texts(sim, "zhangsan")), 15)
            # Killed between two steps of the dialog. (Killed in the instant between DingTalk
            # taking a message and the delivery being recorded, that one message is sent again:
            # batchSend has no duplicate check to ask for. README, Operations.)
            await settled()
            a.kill()
            a.wait()
            started = time.monotonic()
            await sim.until(lambda: sim.connections_opened == 2, 15)
            assert time.monotonic() - started < 8
            await sim.user("zhangsan").says("火星基地")
            await sim.until(lambda: any("没有找到" in t for t in texts(sim, "zhangsan")), 15)
            asked = [t for t in texts(sim, "zhangsan") if "哪个区域" in t]
            assert len(asked) == 2                          # once, then again after the miss
            assert await InboxEvent.filter(user_id="zhangsan").count() == 2
        finally:
            await stop(b)
            if a.poll() is None:
                a.kill()


def test_dingtalk_settings_are_checked_at_start() -> None:
    base = {"SAFETYBOT_DINGTALK_CLIENT_ID": "ding1", "SAFETYBOT_DINGTALK_CLIENT_SECRET": "s"}
    with pytest.raises(SettingError, match="CARD_TEMPLATE_ID"):
        load_settings(base)
    with pytest.raises(SettingError, match="MODE"):
        load_settings({**base, "SAFETYBOT_DINGTALK_CARD_TEMPLATE_ID": "t",
                       "SAFETYBOT_DINGTALK_MODE": "webhook"})
    assert load_settings({**base, "SAFETYBOT_DINGTALK_CARD_TEMPLATE_ID": "t"}).dingtalk.robot \
        == "ding1"
