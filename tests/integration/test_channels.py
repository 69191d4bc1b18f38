"""Platforms as plug-ins: each channel's limits hold for its own people only (the web chat has no
WeCom rate limit), cards are cut to what a platform holds instead of being refused, and a new
platform plugs into the app without the app, the dispatcher or a handler changing.

Real HTTP (the WeCom simulator), the real database; time is a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tortoise.context import TortoiseContext

from bot.app import create_app
from bot.channels import Channel, Delivery, Edges, Outcome, Plugin, Stream
from bot.channels.registry import PLUGINS, home_platform, limits_by_platform
from bot.channels.webchat import WebChatChannel
from bot.channels.wecom import WeComChannel
from bot.clock import ManualClock
from bot.dispatcher import Dispatcher
from bot.media.folder import FolderStore
from bot.settings import Settings, load_settings
from bot.supervision import LoopHealth
from models.inbound import Inbound, InboundKind
from models.outbox import DeliveryStatus, OutboxDelivery, enqueue
from models.outgoing import (
    COMMON,
    Button,
    Card,
    File,
    Image,
    Limits,
    Outgoing,
    Selection,
    Text,
    limits_of,
)
from models.webchat import WebChatLine
from simulator.wecom import WeComSimulator
from tests.harness import AES_KEY, AGENT_ID, CORP_ID, PEOPLE, SECRET, TOKEN, service_settings


def stopped_clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))


@dataclass
class Plant:
    """WeCom (played by the simulator) and the web chat, as the app connects them, with one
    dispatcher sending for both."""

    sim: WeComSimulator
    clock: ManualClock
    dispatcher: Dispatcher
    channels: dict[str, Channel]

    async def send(self, key: str, message: Outgoing, platform: str, *users: str) -> None:
        await enqueue(key, message, now=self.clock(), platform=platform, to_users=users)

    async def drain(self) -> None:
        while await self.dispatcher.run_once():
            pass


async def _nowhere(event: Inbound) -> bool:
    raise AssertionError("nothing arrives in these tests")


@pytest.fixture
async def plant(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[Plant]:
    clock = stopped_clock()
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=PEOPLE,
                         clock=clock.seconds)
    settings = service_settings(database_url, await sim.start(), media_dir)
    media = FolderStore(media_dir)
    edges = Edges(settings, _nowhere, media, clock, "test-1", 0)
    async with aiohttp.ClientSession() as session:
        channels = {plugin.platform: plugin.connect(edges).channel(session)
                    for plugin in PLUGINS if plugin.enabled(settings)}
        dispatcher = Dispatcher(settings, channels=channels, media=media, clock=clock,
                                instance="test-1")
        yield Plant(sim, clock, dispatcher, channels)
    await sim.stop()


async def statuses(prefix: str) -> list[DeliveryStatus]:
    rows = await OutboxDelivery.filter(message__idempotency_key__startswith=prefix
                                       ).order_by("id")
    return [d.status for d in rows]


# ---------------------------------------------------------------------------------------------
# The dispatcher reads the recipient's channel


async def test_the_web_chat_has_no_rate_limit_while_wecom_holds_the_31st(plant: Plant) -> None:
    assert {"wecom", "webchat"} <= set(plant.channels)
    for n in range(40):
        await plant.send(f"web-{n:02d}", Text(f"第{n}条"), "webchat", "zhangsan")
        await plant.send(f"wecom-{n:02d}", Text(f"第{n}条"), "wecom", "zhangsan")
    await plant.drain()

    shown = await WebChatLine.filter(user_id="zhangsan", from_bot=True).order_by("id")
    assert [line.payload["content"] for line in shown] == [f"第{n}条" for n in range(40)]
    assert set(await statuses("web-")) == {DeliveryStatus.SENT}
    # WeCom's 30 a minute still holds, and the web chat's 40 did not count against it.
    assert len(plant.sim.messages_for("zhangsan")) == 30
    assert (await statuses("wecom-"))[30:] == [DeliveryStatus.PENDING] * 10
    plant.clock.advance(61)
    await plant.drain()
    assert len(plant.sim.messages_for("zhangsan")) == 40
    assert plant.sim.dropped == []


async def test_wecom_keeps_its_rate_setting_and_the_web_chat_has_none(
        database_url: str, media_dir: Path) -> None:
    settings = service_settings(database_url, "http://127.0.0.1:9", media_dir,
                                wecom_per_member_per_minute=12)
    limits = limits_by_platform(settings)
    assert limits["wecom"].per_person_per_minute == 12
    assert limits["wecom"].recipients_per_call == 1000
    assert limits["webchat"].per_person_per_minute is None
    assert limits["webchat"].recipients_per_call is None
    assert limits["dingtalk"].recipients_per_call == 20
    assert limits_of(limits, "feishu") == COMMON        # a platform this service cannot speak


def test_common_limits_fit_every_platform() -> None:
    """What a handler writes when it does not know the platform fits each of them."""
    for plugin in PLUGINS:
        assert COMMON.within(plugin.limits(Settings())), plugin.platform
    assert not Limits(4096, 6, 6, 10, 16, 160).within(COMMON)


def test_the_home_platform_is_the_first_connected() -> None:
    wecom = {"SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
             "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
             "SAFETYBOT_WECOM_AES_KEY": AES_KEY}
    assert home_platform(load_settings(wecom)) == "wecom"
    assert home_platform(load_settings({})) == "webchat"
    assert home_platform(load_settings({"SAFETYBOT_WEBCHAT": "off"})) == "webchat"


# ---------------------------------------------------------------------------------------------
# Renderers cut to their own limits


CROWDED = Card(
    task_id="crowded-1", title="隐患转派", body="说明" * 100,
    fields=tuple((f"第{n}项", f"内容{n}") for n in range(8)),
    buttons=tuple(Button(f"按钮{n}", f"crowded:{n}") for n in range(8)),
    selection=Selection("to", "转派给", tuple((f"u{n}", f"第{n}位同事的名字很长很长很长很长")
                                           for n in range(12)), selected="u11"))


async def test_wecom_shows_the_first_buttons_rows_and_options_of_a_crowded_card(
        plant: Plant) -> None:
    await plant.send("crowded", CROWDED, "wecom", "lisi")
    await plant.drain()
    assert await statuses("crowded") == [DeliveryStatus.SENT]     # not refused (40058)
    [got] = plant.sim.messages_for("lisi")
    card = got.body["template_card"]
    assert [b["key"] for b in card["button_list"]] == [f"crowded:{n}" for n in range(6)]
    assert [row["keyname"] for row in card["horizontal_content_list"]] == [
        f"第{n}项" for n in range(6)]
    options = card["button_selection"]["option_list"]
    assert [o["id"] for o in options] == [f"u{n}" for n in range(10)]
    assert options[0]["text"] == "第0位同事的名字很长很长很长很长"[:16]
    assert "selected_id" not in card["button_selection"]     # u11 was cut
    assert len(card["sub_title_text"]) == 160


async def test_the_web_chat_cuts_a_crowded_card_as_wecom_does(plant: Plant) -> None:
    await plant.send("crowded", CROWDED, "webchat", "lisi")
    await plant.drain()
    line = await WebChatLine.get(user_id="lisi", key="crowded")
    assert [b["key"] for b in line.payload["buttons"]] == [f"crowded:{n}" for n in range(6)]
    assert len(line.payload["fields"]) == 6
    assert [o[0] for o in line.payload["selection"]["options"]] == [f"u{n}" for n in range(10)]
    assert line.payload["selection"]["selected"] == ""
    assert len(line.payload["body"]) == 160


async def test_a_text_beyond_the_platforms_bytes_keeps_its_first_whole_lines(
        plant: Plant) -> None:
    long = Text("\n".join(f"第{n}行：" + "内容" * 20 for n in range(60)))
    await plant.send("long", long, "wecom", "wangwu")
    await plant.drain()
    [got] = plant.sim.messages_for("wangwu")
    content = got.body["text"]["content"]
    assert len(content.encode()) <= plant.channels["wecom"].limits.message_bytes
    assert content.startswith("第0行：") and content.endswith("……")


async def test_each_channel_sends_within_the_limits_its_plugin_declares(
        database_url: str, media_dir: Path) -> None:
    settings = service_settings(database_url, "http://127.0.0.1:9", media_dir,
                                wecom_per_member_per_minute=7)
    edges = Edges(settings, _nowhere, FolderStore(media_dir), stopped_clock(), "test-1", 0)
    async with aiohttp.ClientSession() as session:
        built = {p.platform: p.connect(edges).channel(session) for p in PLUGINS}
    assert {name: channel.limits for name, channel in built.items()} == limits_by_platform(
        settings)
    assert isinstance(built["wecom"], WeComChannel)
    assert isinstance(built["webchat"], WebChatChannel)


# ---------------------------------------------------------------------------------------------
# A platform plugs in as one module


@dataclass
class Echo:
    """A made-up platform, declared as a platform module would declare it: a callback route,
    a stream it opens itself, and a channel that keeps what it is asked to send."""

    sent: list[tuple[str, Outgoing]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    limits: Limits = field(default_factory=lambda: Limits(4096, 3, 3, 5, 16, 160))

    def plugin(self) -> Plugin:
        return Plugin("echo", enabled=lambda settings: True,
                      limits=lambda settings: self.limits, connect=self.connect)

    def connect(self, edges: Edges) -> EchoConnector:
        return EchoConnector(self, edges)


class EchoConnector:
    def __init__(self, echo: Echo, edges: Edges) -> None:
        self._echo = echo
        self._edges = edges

    def routes(self) -> list[web.RouteDef]:
        async def said(request: web.Request) -> web.Response:
            body = await request.json()
            await self._edges.sink(_said(body["user"], body["id"], body["text"]))
            return web.Response(text="")

        return [web.post("/echo/said", said)]

    def stream(self) -> Stream:
        async def listen(session: aiohttp.ClientSession, health: LoopHealth) -> None:
            await self._edges.sink(_said("zhangsan", "from-stream", "帮助"))
            health.succeeded()
            await asyncio.Event().wait()       # held open until the app closes it

        return listen

    def channel(self, session: aiohttp.ClientSession) -> EchoChannel:
        return EchoChannel(self._echo)


class EchoChannel:
    platform = "echo"
    media_reuse: timedelta | None = None

    def __init__(self, echo: Echo) -> None:
        self._echo = echo
        self.limits = echo.limits

    async def fetch_media(self, media_id: str) -> bytes:
        raise AssertionError("no media on this platform")

    async def upload(self, message: Image | File) -> str:
        raise AssertionError("no uploads on this platform")

    async def deliver(self, key: str, message: Outgoing, recipients: Sequence[str],
                      duplicate_check: float = 0.0, batch: str = "", media_id: str = ""
                      ) -> Delivery:
        self._echo.sent += [(r, message) for r in recipients]
        self._echo.arrived.set()
        return Delivery({r: Outcome.sent() for r in recipients}, {})


def _said(user: str, client_id: str, text: str) -> Inbound:
    return Inbound(platform="echo", user_id=user, kind=InboundKind.TEXT, text=text,
                   dedup_key=f"echo:{client_id}", sent_at=0, raw_type="text")


async def test_a_new_platform_plugs_in_with_its_routes_stream_and_channel(
        people: None, database_url: str, media_dir: Path) -> None:
    echo = Echo()
    settings = service_settings(database_url, "http://127.0.0.1:9", media_dir)
    app = create_app(settings, plugins=(*PLUGINS, echo.plugin()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{settings.port}/echo/said",
                                 json={"user": "lisi", "id": "1", "text": "帮助"}) as answer:
                assert answer.status == 200
            async with asyncio.timeout(10):
                while {r for r, _ in echo.sent} != {"zhangsan", "lisi"}:
                    echo.arrived.clear()
                    await echo.arrived.wait()
            async with http.get(f"http://127.0.0.1:{settings.port}/readyz") as ready:
                assert ready.status == 200, await ready.text()
    finally:
        await runner.cleanup()
    assert all(message.type == "markdown" for _, message in echo.sent)   # 帮助's answer
    assert not await WebChatLine.exists(from_bot=True)   # nothing went elsewhere
