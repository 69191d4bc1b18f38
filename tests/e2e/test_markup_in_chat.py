"""Markup people type, through the real service: stored, shown as typed on WeCom and in the web
chat, and a ticket's record that still fits one message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from handlers.hazard.rectify import NUMBER
from models.audit import record
from models.hazard import Ticket
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, InboxStatus, inbox_put
from models.markup import literal
from models.outgoing import COMMON, Markdown
from models.webchat import WebChatLine
from simulator.wecom import WeComSimulator
from tests.harness import Service
from tests.markup_samples import SHOWN, TYPED, no_markup
from tests.plant import Person, plant, text_of
from tests.webchat_client import Socket, eventually, message_id, post, queue


async def test_an_inbound_event_with_nul_is_stored(db: TortoiseContext) -> None:
    """Stored whatever the channel (PostgreSQL refused NUL in the payload before)."""
    now = datetime.now(UTC)
    assert await inbox_put(Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                                   dedup_key="wecom:nul", text="a\x00b\ud800"), now)
    assert (await InboxEvent.get(dedup_key="wecom:nul")).event.text == "a\ufffdb\ufffd"


# ---------------------------------------------------------------------------------------------
# Through WeCom (the simulator) and the web chat


@pytest.fixture
async def world(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[tuple[WeComSimulator, Service]]:
    async with plant(database_url, media_dir) as both:
        yield both


async def test_a_description_with_markdown_shows_as_typed_everywhere(
        world: tuple[WeComSimulator, Service]) -> None:
    sim, service = world
    worker, owner = Person(sim, "zhangsan"), Person(sim, "gaofeng")
    await worker.sends_photo()
    await worker.expect("哪个区域")
    await worker.says(f"3号车间 配电箱门没关 {TYPED}")
    summary = await worker.expect("请确认隐患上报")
    await worker.clicks(summary, "提交")
    found = NUMBER.search(text_of(await worker.expect("已提交，编号")))
    assert found is not None
    number = found.group()
    ticket = await Ticket.get(number=number)
    assert ticket.description == f"配电箱门没关 {TYPED}"

    # The owner's card is plain text on WeCom: the description as typed, no markup to escape.
    assigned = await owner.expect(f"隐患整改 {number}")
    assert assigned.body["template_card"]["sub_title_text"] == ticket.description

    # A reason is people's text too: plain in a text message, escaped in the details.
    manager = Person(sim, "liuyang")
    await manager.says(f"取消 {number} 误报 [链接](http://evil.example)")
    await manager.expect(f"已取消 {number}")
    told = await owner.expect(f"{number} 已由")
    assert told.msgtype == "text" and "原因：误报 [链接](http://evil.example)" in text_of(told)

    # The details are markdown: the description is escaped, the service's own bold stays.
    await worker.says(number)
    details = await worker.expect(f"{number} 3号车间 · 用电类")
    assert details.msgtype == "markdown"
    content = text_of(details)
    assert content.startswith(f"**{number} 3号车间 · 用电类 H01**")
    assert f"描述：配电箱门没关 {SHOWN}" in content
    assert "取消：误报 ［链接］(http://evil.example)" in content
    assert no_markup(content) and "[链接](" not in content and "\ue000" not in content

    # The same details in the web chat's conversation log.
    async with aiohttp.ClientSession() as http:
        sock = await Socket.open(http, service.url, "zhangsan")
        status, _ = await post(http, service.url, "text", user="zhangsan", id=message_id(),
                               text=number)
        assert status == 200
        line = await sock.until(lambda line: line["kind"] == "markdown"
                                and number in line["payload"]["content"])
        await sock.close()
    assert f"描述：配电箱门没关 {SHOWN}" in line["payload"]["content"]
    assert no_markup(line["payload"]["content"])


async def test_details_full_of_markup_characters_still_fit_one_wecom_message(
        world: tuple[WeComSimulator, Service]) -> None:
    """The simulator refuses more than 2,048 bytes (45002) as WeCom does."""
    sim, _ = world
    worker = Person(sim, "zhangsan")
    await worker.sends_photo()
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    found = NUMBER.search(text_of(await worker.expect("已提交，编号")))
    assert found is not None
    ticket = await Ticket.get(number=found.group())
    ticket.description = "*" * 300
    await ticket.save()
    now = datetime.now(UTC)
    for n in range(60):
        await record(at=now + timedelta(minutes=n + 1), actor="gaofeng", action="refused",
                     subject_type="ticket", subject_id=str(ticket.id),
                     note=f"第{n}次" + "[*]" * 13)
    await worker.says(found.group())
    details = text_of(await worker.expect(f"{found.group()} 3号车间 · 用电类"))
    assert len(details.encode()) <= COMMON.message_bytes
    assert "第59次［＊］" in details and "描述：＊＊＊" in details and "…" in details
    assert "*" not in details.replace("**", "")


async def test_a_markdown_line_in_the_web_chat_is_escaped_when_delivered(
        service: Service) -> None:
    await queue("md-1", Markdown(f"**整改说明**\n> {literal(TYPED)}"), ["lisi"])

    async def delivered() -> bool:
        return await WebChatLine.exists(user_id="lisi", key="md-1")

    await eventually(delivered, "the markdown line")
    line = await WebChatLine.get(user_id="lisi", key="md-1")
    assert line.payload["content"] == f"**整改说明**\n> {SHOWN}"


async def test_a_nul_typed_on_wecom_is_handled(world: tuple[WeComSimulator, Service]) -> None:
    """XML cannot carry NUL, so this event is put in the inbox as the callback would."""
    await inbox_put(Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                            dedup_key="wecom:test:nul", text="帮助\x00"), datetime.now(UTC))

    async def handled() -> bool:
        return await InboxEvent.exists(dedup_key="wecom:test:nul", status=InboxStatus.DONE)

    await eventually(handled, "the NUL event handled")
