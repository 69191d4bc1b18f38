"""A picture or document is uploaded to the platform once and sent by its media id while the id
lives: the outbox dispatcher and a platform's channel against its simulator, on a real database.
The simulators refuse an id they no longer keep, as WeCom does three days after the upload
(40007)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.channels.dingtalk import DingTalkChannel
from bot.channels.dingtalk_api import DingTalkApi
from bot.channels.media_ids import PlatformMedia
from bot.clock import ManualClock
from bot.dispatcher import Dispatcher
from bot.media.folder import FolderStore
from models.outbox import DeliveryStatus, enqueue
from models.outgoing import File, Image
from simulator.dingtalk import DingTalkSimulator
from tests.harness import (
    DINGTALK_CLIENT_ID,
    DINGTALK_ROBOT,
    DINGTALK_SECRET,
    PEOPLE,
    service_settings,
)
from tests.integration.test_outbox import World, make_world, statuses

MAP = b"\x89PNG\r\n\x1a\n" + b"evacuation map" * 40


@pytest.fixture
async def world(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[World]:
    async for w in make_world(database_url, media_dir):
        yield w


def media_ids(world: World, user: str) -> list[str]:
    return [m.body["image"]["media_id"] for m in world.sim.messages_for(user)
            if m.msgtype == "image"]


async def test_a_picture_is_uploaded_once_and_sent_by_its_id_until_the_id_nears_its_end(
        world: World) -> None:
    digest = await world.media.put(MAP)
    await world.send("to-zhangsan", Image(digest), "zhangsan")
    await world.drain()
    world.clock.advance(timedelta(days=2, hours=11))
    await world.send("to-lisi", Image(digest), "lisi")
    await world.drain()
    assert world.sim.calls["media/upload"] == 1
    assert media_ids(world, "zhangsan") == media_ids(world, "lisi")
    # Two and a half days after the upload (WeCom keeps it three), the next send uploads anew.
    world.clock.advance(timedelta(hours=1))
    await world.send("to-wangwu", Image(digest), "wangwu")
    await world.drain()
    assert world.sim.calls["media/upload"] == 2
    [fresh] = media_ids(world, "wangwu")
    assert fresh != media_ids(world, "lisi")[0] and world.sim.media[fresh].data == MAP
    row = await PlatformMedia.get(platform="wecom", digest=digest)
    assert row.media_id == fresh and row.reuse_until == world.clock() + timedelta(days=2.5)


async def test_an_id_the_platform_no_longer_keeps_is_uploaded_again_and_sent(
        world: World) -> None:
    digest = await world.media.put(MAP)
    await world.send("first", Image(digest), "zhangsan")
    await world.drain()
    world.sim.expire_media()                # lost early: the recorded id is still "fresh"
    await world.send("second", Image(digest), "lisi")
    await world.drain()
    assert world.sim.calls["media/upload"] == 2
    [sent] = media_ids(world, "lisi")
    assert world.sim.media[sent].data == MAP
    assert (await PlatformMedia.get(platform="wecom", digest=digest)).media_id == sent
    assert set((await statuses("second")).values()) == {DeliveryStatus.SENT}


async def test_a_fresh_upload_refused_too_is_not_tried_again_in_the_same_attempt(
        world: World) -> None:
    digest = await world.media.put(MAP)
    await world.send("first", Image(digest), "zhangsan")
    await world.drain()
    world.sim.fail_next("message/send", 40007, times=2)
    await world.send("second", Image(digest), "lisi")
    await world.drain()
    assert world.sim.calls["media/upload"] == 2         # the first, and one renewal
    assert world.sim.messages_for("lisi") == []
    assert set((await statuses("second")).values()) == {DeliveryStatus.FAILED}


async def test_a_picture_for_thousands_is_uploaded_once_for_every_call(world: World) -> None:
    crowd = [f"worker{n:04d}" for n in range(1500)]
    for user in crowd:
        world.sim.add_user(user)
    await world.send("crowd", Image(await world.media.put(MAP)), *crowd)
    await world.drain()
    assert world.sim.calls["message/send"] == 2 and world.sim.calls["media/upload"] == 1
    assert set((await statuses("crowd")).values()) == {DeliveryStatus.SENT}


async def test_a_document_is_reused_under_its_own_name_only(world: World) -> None:
    """WeCom shows a file under the name it was uploaded with."""
    digest = await world.media.put(b"PK\x03\x04 ledger rows")
    for key, name in (("a", "隐患台账-2026-11.xlsx"), ("b", "隐患台账-2026-11.xlsx"),
                      ("c", "隐患台账（复制）.xlsx")):
        await world.send(key, File(digest, name), "zhangsan")
        await world.drain()
    files = [m.body["file"]["media_id"] for m in world.sim.messages_for("zhangsan")]
    assert world.sim.calls["media/upload"] == 2 and files[0] == files[1] != files[2]
    assert [world.sim.media[f].filename for f in files] == [
        "隐患台账-2026-11.xlsx", "隐患台账-2026-11.xlsx", "隐患台账（复制）.xlsx"]


async def test_on_dingtalk_an_upload_it_no_longer_knows_is_uploaded_again(
        db: TortoiseContext, database_url: str, media_dir: Path) -> None:
    """DingTalk refuses a message naming an unknown upload as a bad msgParam."""
    clock = ManualClock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))
    media = FolderStore(media_dir)
    digest = await media.put(MAP)
    async with DingTalkSimulator(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT,
                                 users=PEOPLE) as sim, aiohttp.ClientSession() as session:
        settings = service_settings(database_url, "", media_dir, dingtalk=sim.base_url)
        channel = DingTalkChannel(settings.dingtalk,
                                  DingTalkApi(settings.dingtalk, session, "test-1", clock), media)
        dispatcher = Dispatcher(settings, channels={"dingtalk": channel}, media=media,
                                clock=clock, instance="test-1")
        for key, user in (("first", "zhangsan"), ("second", "lisi")):
            await enqueue(key, Image(digest), now=clock(), platform="dingtalk", to_users=[user])
            while await dispatcher.run_once():
                pass
            sim.expire_media()
        assert sim.calls["media/upload"] == 2
        assert set((await statuses("second")).values()) == {DeliveryStatus.SENT}
        [shown] = sim.messages_for("lisi")
        assert shown.body["photoURL"] == (await PlatformMedia.get(digest=digest)).media_id
