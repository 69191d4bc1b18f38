"""People's text inside markdown shows as typed: a reporter's `[点我](http://…)` is no link for the
owner, the reviewer or in a ticket's details, on WeCom (through the simulator) and in the web
chat; and text a database cannot hold is cleaned before it is stored."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.channels.wecom import render
from models.audit import record
from models.hazard import Ticket
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, InboxStatus, inbox_put
from models.markup import clean_text, literal, render_markdown
from models.outgoing import COMMON, Card, Markdown
from models.webchat import WebChatLine
from simulator.wecom import WeComSimulator
from tests.harness import Service
from tests.plant import Person, plant, text_of
from tests.webchat_client import Socket, eventually, message_id, post, queue

TYPED = "[点我](http://evil.example) **粗** `x`"
SHOWN = "［点我］(http://evil.example) ＊＊粗＊＊ ｀x｀"
NUMBER = re.compile(r"HZ-\d{8}-\d{4}")


def no_markup(content: str) -> bool:
    """Nothing of TYPED survives as syntax: no link, no bold, no code."""
    return "[点我](" not in content and "**粗**" not in content and "`x`" not in content


# ---------------------------------------------------------------------------------------------
# The renderer


def test_marked_text_is_escaped_and_the_writers_markup_kept() -> None:
    colour = '<font color="info">好</font>'
    content = f"**描述**：{literal(TYPED)}\n> 记录：{literal(colour)}"
    assert render_markdown(content, room=COMMON.message_bytes) == (
        f"**描述**：{SHOWN}\n> 记录：＜font color=\"info\"＞好＜/font＞")


def test_people_cannot_start_a_line_or_end_the_writers_one() -> None:
    """A line break in typed text would let it begin a quote or a heading: it becomes a space.
    A trailing backslash cannot escape the markup after it."""
    typed = "第一行\n# 标题\r\n> 引用\u2028末尾\\"
    assert render_markdown(f"**{literal(typed)}**", room=None) == (
        "**第一行 ＃ 标题 ＞ 引用 末尾＼**")


def test_an_unpaired_marker_escapes_the_rest_and_stray_ones_are_dropped() -> None:
    assert render_markdown("**a**\ue000*b*", room=None) == "**a**＊b＊"
    assert render_markdown("**a**\ue001", room=None) == "**a**"
    assert render_markdown(literal(literal("*")), room=None) == "＊"


def test_escaping_that_lengthens_the_content_shortens_peoples_text_not_lines() -> None:
    """`fit` counted the marked text; a full-width form takes 3 bytes where `*` took one. The
    longest typed text gives way, with an ellipsis, and every line the writer kept stays."""
    lines = ["**HZ-20261201-0001 记录**", f"描述：{literal('*' * 900)}",
             *[f"> 第{n}次：{literal('[x]' * 20)}" for n in range(5)]]
    content = "\n".join(lines)
    assert len(content.encode()) <= COMMON.message_bytes
    shown = render_markdown(content, room=COMMON.message_bytes)
    assert len(shown.encode()) <= COMMON.message_bytes
    assert [line.split("：")[0] for line in shown.splitlines()] == [
        "**HZ-20261201-0001 记录**", "描述", *[f"> 第{n}次" for n in range(5)]]
    assert shown.splitlines()[1].endswith("＊…")
    assert shown.splitlines()[-1] == "> 第4次：" + "［x］" * 20


def test_a_card_without_buttons_is_markdown_with_every_field_escaped() -> None:
    card = Card(task_id="t-1", title="隐患 *HZ*", description=TYPED,
                fields=(("原因", "**紧急**"),), body=f"第一行\n{TYPED}")
    content = render(card, agent_id=1)["markdown"]["content"]
    assert content == (f"**隐患 ＊HZ＊**\n{SHOWN}\n第一行\n{SHOWN}\n> 原因：＊＊紧急＊＊")


def test_text_a_database_cannot_hold_is_cleaned_on_arrival() -> None:
    assert clean_text("a\x00b\ud800c\ue000d\ue001") == "a\ufffdb\ufffdc\ufffdd\ufffd"
    event = Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                    dedup_key="k", text="配电箱\x00", event_key="\udfff")
    assert (event.text, event.event_key) == ("配电箱\ufffd", "\ufffd")
    assert Inbound.from_payload(event.to_payload()) == event


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
    assert content.startswith(f"**{number} 3号车间 · 用电类**")
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
