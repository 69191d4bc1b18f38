"""The local web chat in a real browser against the real service: pick a person, ask for help,
send a photo, answer a card."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from bot.clock import utc_now
from bot.media.folder import FolderStore
from handlers import HELP
from models.inbound import InboundKind
from models.inbox import InboxEvent
from models.markup import literal
from models.outgoing import Button, Card, File, Markdown, Selection
from models.webchat import WebChatLine, add_line
from tests.harness import Service
from tests.webchat_client import drill_chat, eventually, queue
from tests.webchat_page import (
    bot_says,
    card,
    choose,
    chromium,
    open_chat,
    press,
    say,
    send_photo,
    tiny_png,
)


async def test_chat_as_a_person_ask_for_help_send_a_photo_and_answer_a_card(
        service: Service) -> None:
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "zhangsan")
        await expect(page.locator("#person option[value=zhangsan]")).to_have_text(
            "张三（zhangsan）· 员工")

        await say(page, "帮助")
        await expect(bot_says(page, HELP.splitlines()[0].strip("*"))).to_be_visible()

        await send_photo(page, tiny_png())
        await expect(page.locator(".line.me img").last).to_be_visible()

        async def photo_arrived() -> bool:
            return await InboxEvent.exists(platform="webchat", kind=InboundKind.IMAGE)

        await eventually(photo_arrived, "the photo in the inbox")

        await queue("browser-card", Card(
            task_id="owner-1-1", title="新的整改任务", description="HZ-20261129-0001",
            fields=(("区域", "3号车间"),), buttons=(Button("接收", "test:1:accept"),),
            selection=Selection("by", "完成时间", (("d1", "明天"), ("d3", "三天内")))),
            ["zhangsan"])
        task = card(page, "新的整改任务")
        await expect(task).to_be_visible()
        await choose(task, "三天内")
        await press(task, "接收")

        async def clicked() -> bool:
            return await InboxEvent.exists(platform="webchat", kind=InboundKind.CARD_ACTION)

        await eventually(clicked, "the card click in the inbox")
        event = (await InboxEvent.get(kind=InboundKind.CARD_ACTION)).event
        assert (event.user_id, event.event_key, event.task_id, event.selected) == (
            "zhangsan", "test:1:accept", "owner-1-1", {"by": ["d3"]})


async def test_a_line_that_arrives_late_takes_its_place_by_id(service: Service) -> None:
    """A line committed after one with a higher id (PostgreSQL) is shown above it, once."""
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "zhangsan")
        await add_line("lisi", "taken", from_bot=True, kind="text",
                       payload={"type": "text", "content": "x"}, now=utc_now())
        taken = await WebChatLine.get(user_id="lisi", key="taken")
        await taken.delete()
        await add_line("zhangsan", "second", from_bot=True, kind="text",
                       payload={"type": "text", "content": "第二条"}, now=utc_now())
        await expect(bot_says(page, "第二条")).to_be_visible()
        await WebChatLine.create(id=taken.id, user_id="zhangsan", key="first", from_bot=True,
                                 kind="text", payload={"type": "text", "content": "第一条"},
                                 created_at=utc_now())
        await expect(page.locator(".line.bot")).to_have_text(["第一条", "第二条"])


async def test_a_group_chats_message_is_marked_with_the_chats_name(service: Service) -> None:
    chat = await drill_chat()
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "lisi")
        await queue("group-1", Markdown("**演练通知**\n> 集合点：东门广场"), to_chat=chat)
        shown = page.locator(".line.group")
        await expect(shown.locator(".line-chat")).to_have_text("群聊「演练群」")
        await expect(shown).to_contain_text("集合点：东门广场")


async def test_the_page_fits_a_phones_width(service: Service) -> None:
    """On a 360-pixel screen the header wraps as a whole: the title, the person and the
    buttons each stay on one line."""
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "zhangsan")
        await page.set_viewport_size({"width": 360, "height": 640})
        one_line = 40   # pixels: a line of 15–18 px text with its padding
        for selector in ("header h1", "#status", "form button", ".photo-button"):
            box = await page.locator(selector).bounding_box()
            assert box is not None and box["height"] < one_line, selector
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360


async def test_peoples_text_in_markdown_shows_as_typed(service: Service) -> None:
    """A reporter's `[点我](http://…)` inside the bot's markdown is no link on the page."""
    typed = "[点我](http://evil.example) **粗** `x`"
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "zhangsan")
        await queue("md-typed", Markdown(f"**整改说明**\n> {literal(typed)}"), ["zhangsan"])
        shown = bot_says(page, "整改说明")
        await expect(shown).to_contain_text("［点我］(http://evil.example) ＊＊粗＊＊ ｀x｀")
        await expect(shown.locator("a")).to_have_count(0)
        await expect(shown.locator("code")).to_have_count(0)
        await expect(shown.locator("strong")).to_have_text(["整改说明"])


async def test_a_refused_upload_is_explained_on_the_page(service: Service) -> None:
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "zhangsan")
        await page.set_input_files("#photo", files=[
            {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": b"%PDF-1.7 not a photo"}])
        await expect(page.locator("#error")).to_have_text(
            "只能发送照片（JPG、PNG 或 GIF 格式），请重新选择。")


async def test_a_file_sent_to_a_person_downloads_for_them(
        service: Service, media_dir: Path) -> None:
    """The link names who asks (`?user=`): the media route serves a file only to the people
    whose conversation holds it."""
    data = b"PK\x03\x04 a ledger"
    digest = await FolderStore(media_dir).put(data)
    async with chromium() as browser:
        page = await open_chat(browser, service.url, "zhangsan")
        await queue("ledger-1", File(digest, "隐患台账.xlsx"), ["zhangsan"])
        link = page.locator("a.download")
        await expect(link).to_have_text("📎 隐患台账.xlsx")
        href = await link.get_attribute("href")
        assert href is not None and href.endswith("?user=zhangsan")
        answer = await page.request.get(service.url + href)
        assert answer.status == 200 and await answer.body() == data
