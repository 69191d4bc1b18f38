"""The local web chat as one more channel: real HTTP and WebSockets on loopback, the real inbox,
handlers and outbox behind it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from tortoise.context import TortoiseContext

from bot.app import UPLOAD_LIMIT
from bot.clock import utc_now
from bot.media.folder import FolderStore
from bot.plans import load_plans
from bot.roster import load_org
from bot.settings import SettingError, load_settings
from handlers import HELP
from models.chats import GroupChat
from models.inbound import InboundKind
from models.inbox import InboxEvent, InboxStatus
from models.org import Area, User
from models.outbox import DeliveryStatus, OutboxDelivery
from models.outgoing import Button, Card, CardUpdate, Image, Markdown, Selection, Text
from models.webchat import WebChatLine, add_line
from simulator.wecom import WeComSimulator
from tests.harness import ROOT, Service, service_settings
from tests.s3 import Relay, S3Server, new_bucket, store_settings
from tests.webchat_client import (
    Socket,
    drill_chat,
    eventually,
    message_id,
    post,
    queue,
    upload,
)

JPEG = b"\xff\xd8\xff\xe0" + b"a photo of an open fuse box" * 40


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_text_goes_through_the_inbox_and_the_reply_comes_back_live(
        service: Service, http: aiohttp.ClientSession) -> None:
    sock = await Socket.open(http, service.url, "zhangsan")
    status, answer = await post(http, service.url, "text", user="zhangsan", id=message_id(),
                                text="帮助")
    assert (status, answer) == (200, {"stored": True})
    mine = await sock.until(lambda line: not line["from_bot"])
    assert mine["payload"]["content"] == "帮助"
    reply = await sock.until(lambda line: line["from_bot"])
    assert (reply["kind"], reply["payload"]["content"]) == ("markdown", HELP)
    event = await InboxEvent.get(platform="webchat")
    assert (event.user_id, event.kind, event.event.text) == ("zhangsan", "text", "帮助")
    await sock.close()


async def test_a_resent_message_is_handled_once(
        service: Service, http: aiohttp.ClientSession) -> None:
    same = message_id()
    first = await post(http, service.url, "text", user="lisi", id=same, text="帮助")
    again = await post(http, service.url, "text", user="lisi", id=same, text="帮助")
    assert (first[1], again[1]) == ({"stored": True}, {"stored": False})

    async def replied() -> bool:
        return await WebChatLine.filter(user_id="lisi", from_bot=True).exists()

    await eventually(replied, "a reply to lisi")
    assert await InboxEvent.filter(user_id="lisi").count() == 1
    assert await WebChatLine.filter(user_id="lisi", from_bot=False).count() == 1
    assert await WebChatLine.filter(user_id="lisi", from_bot=True).count() == 1


async def test_a_photo_is_stored_by_hash_and_forwarded_as_an_image_event(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    status, _ = await upload(http, service.url, "zhangsan", JPEG)
    assert status == 200
    digest = hashlib.sha256(JPEG).hexdigest()
    assert (media_dir / digest[:2] / digest[2:4] / digest).read_bytes() == JPEG
    event = (await InboxEvent.get(platform="webchat")).event
    assert (event.kind, event.media, event.media_id) == (InboundKind.IMAGE, digest, "")
    async with http.get(f"{service.url}/chat/media/{digest}?user=zhangsan") as shown:
        assert (shown.status, shown.content_type) == (200, "image/jpeg")
        assert await shown.read() == JPEG


async def test_an_oversized_upload_is_refused_and_nothing_is_stored(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    status, answer = await upload(http, service.url, "zhangsan", b"\xff" * (UPLOAD_LIMIT + 1))
    assert status == 413
    assert "文件太大" in answer["error"]
    assert not await InboxEvent.exists()
    assert not await WebChatLine.exists()
    assert not await asyncio.to_thread(lambda: [p for p in media_dir.rglob("*") if p.is_file()])


async def test_a_card_is_clicked_then_greyed_out_for_everyone_and_its_code_works_once(
        service: Service, http: aiohttp.ClientSession) -> None:
    card = Card(task_id="review-7-1", title="隐患复查", description="HZ-20261129-0007",
                fields=(("区域", "3号车间"),), buttons=(Button("通过", "test:7:ok"),
                                                        Button("驳回", "test:7:no", 3)),
                selection=Selection("who", "指派给", (("lisi", "李四"), ("wangwu", "王五"))))
    await queue("card-7", card, ["zhangsan", "lisi"])
    zhang = await Socket.open(http, service.url, "zhangsan")
    li = await Socket.open(http, service.url, "lisi")
    shown = await zhang.until(lambda line: line["kind"] == "card")
    assert (shown["task_id"], shown["payload"]["title"]) == ("review-7-1", "隐患复查")
    code = shown["response_code"]
    assert code and code != (await li.until(lambda line: line["kind"] == "card"))["response_code"]

    forged = await post(http, service.url, "click", user="zhangsan", id=message_id(),
                        code=code, key="test:8:ok")
    assert forged[0] == 400
    clicked = await post(http, service.url, "click", user="zhangsan", id=message_id(),
                         code=code, key="test:7:ok", selected={"who": ["wangwu"]})
    assert clicked == (200, {"stored": True})
    event = (await InboxEvent.get(kind="card_action")).event
    assert (event.user_id, event.event_key, event.task_id, event.response_code,
            event.selected) == ("zhangsan", "test:7:ok", "review-7-1", code,
                                {"who": ["wangwu"]})

    await queue("update-7", CardUpdate(code, "已通过（张三）"))
    for sock in (zhang, li):
        update = await sock.until(lambda line: line["kind"] == "card_update")
        assert update["payload"] == {"task_id": "review-7-1", "replace_text": "已通过（张三）"}
    late = await post(http, service.url, "click", user="lisi", id=message_id(),
                      code=(await li.until(lambda line: line["kind"] == "card"))["response_code"],
                      key="test:7:no")
    assert late[0] == 409

    await queue("update-7-again", CardUpdate(code, "再次更新"))

    async def settled() -> bool:
        return not await OutboxDelivery.filter(recipient=f"card:{code}",
                                                status__in=["pending", "sending"]).exists()

    await eventually(settled, "both updates settled")
    verdicts = {d.message.idempotency_key: d.status for d in
                await OutboxDelivery.filter(recipient=f"card:{code}").prefetch_related("message")}
    assert verdicts == {"update-7": DeliveryStatus.SENT, "update-7-again": DeliveryStatus.FAILED}
    await zhang.close()
    await li.close()


async def test_history_comes_back_when_the_page_reloads(
        service: Service, http: aiohttp.ClientSession) -> None:
    await post(http, service.url, "text", user="wangwu", id=message_id(), text="帮助")

    async def replied() -> bool:
        return await InboxEvent.filter(status=InboxStatus.DONE).exists() and \
            await WebChatLine.filter(user_id="wangwu", from_bot=True).exists()

    await eventually(replied, "a reply to wangwu")
    reloaded = await Socket.open(http, service.url, "wangwu")
    first = await reloaded.until(lambda line: True)
    second = await reloaded.until(lambda line: line["id"] > first["id"])
    assert [first["from_bot"], second["from_bot"]] == [False, True]
    await reloaded.close()
    caught_up = await Socket.open(http, service.url, "wangwu", after=first["id"])
    assert (await caught_up.until(lambda line: True))["id"] == second["id"]
    await caught_up.close()


async def test_a_line_committed_after_a_higher_id_still_reaches_the_open_page(
        service: Service, http: aiohttp.ClientSession) -> None:
    """On PostgreSQL ids are not commit order: a card update written in a transaction can become
    visible after a reply with a higher id. Played here by writing the lower id last."""
    sock = await Socket.open(http, service.url, "zhangsan")
    await add_line("lisi", "taken", from_bot=True, kind="text", payload={"content": "x"},
                   now=utc_now())
    taken = await WebChatLine.get(user_id="lisi", key="taken")
    await taken.delete()
    await add_line("zhangsan", "reply", from_bot=True, kind="text",
                   payload={"type": "text", "content": "已提交"}, now=utc_now())
    reply = await sock.until(lambda line: line["payload"]["content"] == "已提交")
    await WebChatLine.create(id=taken.id, user_id="zhangsan", key="late", from_bot=True,
                             kind="card_update", created_at=utc_now(), task_id="t-1",
                             payload={"task_id": "t-1", "replace_text": "已由张三提交"})
    late = await sock.until(lambda line: line["kind"] == "card_update")
    assert late["id"] == taken.id < reply["id"]
    assert [line["id"] for line in sock.lines].count(reply["id"]) == 1   # nothing sent twice
    await sock.close()


async def test_a_disabled_web_chat_answers_404(
        db: TortoiseContext, wecom: WeComSimulator, database_url: str, media_dir: Path,
        http: aiohttp.ClientSession) -> None:
    svc = Service(service_settings(database_url, wecom.base_url, media_dir, webchat="off"))
    await svc.start()
    try:
        for method, path in (("GET", "/chat"), ("GET", "/chat/ws?user=zhangsan"),
                             ("GET", "/chat/api/people"), ("POST", "/chat/api/text")):
            async with http.request(method, svc.url + path) as answer:
                assert answer.status == 404, path
    finally:
        await svc.stop()


def test_auto_serves_the_web_chat_only_on_a_loopback_host() -> None:
    assert load_settings({"SAFETYBOT_HOST": "127.0.0.1"}).webchat_enabled
    assert load_settings({"SAFETYBOT_HOST": "::1"}).webchat_enabled
    assert not load_settings({"SAFETYBOT_HOST": "0.0.0.0"}).webchat_enabled
    assert load_settings({"SAFETYBOT_HOST": "0.0.0.0", "SAFETYBOT_WEBCHAT": "on"}
                         ).webchat_enabled
    assert not load_settings({"SAFETYBOT_WEBCHAT": "off"}).webchat_enabled
    with pytest.raises(SettingError, match="SAFETYBOT_WEBCHAT"):
        load_settings({"SAFETYBOT_WEBCHAT": "yes"})


async def test_a_group_chats_message_reaches_its_members_and_an_unknown_chat_is_refused(
        service: Service, http: aiohttp.ClientSession) -> None:
    chat = await drill_chat()
    await queue("group-1", Markdown("**演练通知**"), to_chat=chat)
    await queue("group-2", Text("无人收到"), to_chat="nochat")
    zhang = await Socket.open(http, service.url, "zhangsan")
    shown = await zhang.until(lambda line: line["payload"].get("chat") == "演练群")
    assert (shown["kind"], shown["payload"]["content"]) == ("markdown", "**演练通知**")

    async def settled() -> bool:
        return not await OutboxDelivery.filter(status__in=["pending", "sending"]).exists()

    await eventually(settled, "both messages settled")
    assert {d.recipient: d.status for d in await OutboxDelivery.all()} == {
        "chat:emergency09": DeliveryStatus.SENT, "chat:nochat": DeliveryStatus.INVALID}
    assert sorted(await WebChatLine.filter(key="group-1").values_list("user_id", flat=True)
                  ) == ["lisi", "zhangsan"]
    assert not await WebChatLine.filter(key="group-2").exists()


async def test_an_emergency_runs_in_the_web_chat_and_one_answer_greys_one_card(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    """The README's emergency walk-through: cards, a per-person card update and the board."""
    await load_org(ROOT / "config" / "demo-org.toml", utc_now(), FolderStore(media_dir))
    # WeCom is connected too: the plant's people say they use the web chat (`platform`).
    await User.all().update(platform="webchat")
    await load_plans(ROOT / "config" / "plans", utc_now(), "webchat")
    zhou = await Socket.open(http, service.url, "zhouwei")
    await post(http, service.url, "text", user="zhouwei", id=message_id(),
               text="启动预案 氨泄漏 三级 3号车间")
    confirm = await zhou.until(lambda line: line["kind"] == "card"
                               and line["payload"]["title"] == "请确认启动预案")
    go = next(b["key"] for b in confirm["payload"]["buttons"] if b["text"] == "确认启动")
    await post(http, service.url, "click", user="zhouwei", id=message_id(),
               code=confirm["response_code"], key=go)
    await zhou.until(lambda line: "已启动：已向3人" in line["payload"].get("content", ""))
    li = await Socket.open(http, service.url, "lihua")
    huang = await Socket.open(http, service.url, "huangjun")
    card = await li.until(lambda line: line["kind"] == "card"
                          and "液氨泄漏" in line["payload"]["title"])
    ok = next(b["key"] for b in card["payload"]["buttons"] if b["text"] == "收到")
    await post(http, service.url, "click", user="lihua", id=message_id(),
               code=card["response_code"], key=ok)
    update = await li.until(lambda line: line["kind"] == "card_update")
    assert update["payload"]["replace_text"].startswith("已回复收到")
    board = await zhou.until(lambda line: "**应急看板" in line["payload"].get("content", ""))
    assert "已确认 1/3" in board["payload"]["content"]
    await huang.until(lambda line: line["kind"] == "card")
    assert not [line for line in huang.lines if line["kind"] == "card_update"]
    # The plan's group chat: its broadcast is a line of each member's own conversation.
    members = set((await GroupChat.get(chat_id="emergency01")).members)
    assert {"zhouwei", "lihua", "huangjun"} <= members
    a3_map = (await Area.get(code="A3")).map_digest
    for socket in (zhou, li, huang):
        group = await socket.until(
            lambda line: line["payload"].get("chat") == "液氨泄漏现场处置方案")
        assert group["kind"] == "markdown" and "液氨泄漏" in group["payload"]["content"]
        drawn = await socket.until(lambda line: line["kind"] == "image"       # then the map
                                   and line["payload"].get("chat") == "液氨泄漏现场处置方案")
        assert drawn["payload"]["media"] == a3_map
    assert not await OutboxDelivery.exclude(status=DeliveryStatus.SENT).filter(
        recipient__startswith="chat:").exists()          # created, changed and told: all shown


# ---------------------------------------------------------------------------------------------
# Bad input and places it must not reach


def stored_files(media_dir: Path) -> list[Path]:
    return [p for p in media_dir.rglob("*") if p.is_file()]


async def nothing_stored(media_dir: Path) -> bool:
    return not (await InboxEvent.exists() or await WebChatLine.exists()
                or await asyncio.to_thread(stored_files, media_dir))


async def test_auto_mode_refuses_a_request_that_came_through_a_proxy(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    """A reverse proxy on the same host connects from loopback: its forwarding header gives it
    away, and nothing of the web chat is served, not even the page."""
    digest = hashlib.sha256(JPEG).hexdigest()
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        proxied = {header: "for=203.0.113.7" if header == "Forwarded" else "203.0.113.7"}
        for path in ("/chat", "/chat/static/chat.js", f"/chat/media/{digest}?user=zhangsan",
                     "/chat/ws?user=zhangsan"):
            async with http.get(service.url + path, headers=proxied) as answer:
                assert answer.status == 403, (header, path)
                assert "仅限在运行服务的电脑上直接打开" in await answer.text()
        async with http.get(f"{service.url}/chat/api/people", headers=proxied) as answer:
            assert answer.status == 403
            assert "仅限在运行服务的电脑上直接打开" in (await answer.json())["error"]
        async with http.post(f"{service.url}/chat/api/text", headers=proxied, json={
                "user": "zhangsan", "id": message_id(), "text": "帮助"}) as answer:
            assert answer.status == 403
    assert await nothing_stored(media_dir)
    async with http.get(f"{service.url}/chat") as direct:
        assert direct.status == 200


async def test_on_mode_serves_a_proxied_request(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path, http: aiohttp.ClientSession) -> None:
    """`on` is the operator's choice to expose the page: a proxy may then hand it out."""
    svc = Service(service_settings(database_url, wecom.base_url, media_dir, webchat="on"))
    await svc.start()
    try:
        async with http.get(f"{svc.url}/chat/api/people",
                            headers={"X-Forwarded-For": "203.0.113.7"}) as answer:
            assert answer.status == 200
            assert [p["id"] for p in (await answer.json())["people"]] == [
                "lisi", "wangwu", "zhangsan"]
    finally:
        await svc.stop()


async def test_an_id_not_on_the_roster_is_refused_and_nothing_is_stored(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    await User.create(id="gone", name="离职人员", roles=["worker"], active=False)
    for user in ("nobody", "gone"):
        status, answer = await post(http, service.url, "text", user=user, id=message_id(),
                                    text="帮助")
        assert (status, answer["error"]) == (403, "名册中没有这位人员，请刷新页面后重新选择。")
        status, answer = await upload(http, service.url, user, JPEG)
        assert status == 403 and "名册中没有" in answer["error"]
        status, answer = await post(http, service.url, "click", user=user, id=message_id(),
                                    code="x" * 24, key="test:1:ok")
        assert status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await Socket.open(http, service.url, user)
        assert refused.value.status == 403
    assert await nothing_stored(media_dir)


async def test_an_upload_that_is_not_a_photo_is_refused_and_nothing_is_stored(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    """The bytes decide, not the name or the type the browser claims (photo.jpg, image/jpeg)."""
    for data in (b"%PDF-1.7\n" + b"x" * 4096, b"MZ\x90\x00 a program", b"<svg></svg>"):
        status, answer = await upload(http, service.url, "zhangsan", data)
        assert status == 415
        assert answer["error"] == "只能发送照片（JPG、PNG 或 GIF 格式），请重新选择。"
    assert await nothing_stored(media_dir)


async def test_a_photo_is_shown_only_to_the_people_whose_conversation_holds_it(
        service: Service, http: aiohttp.ClientSession) -> None:
    status, _ = await upload(http, service.url, "zhangsan", JPEG)
    assert status == 200
    digest = hashlib.sha256(JPEG).hexdigest()
    photo = f"{service.url}/chat/media/{digest}"
    for query, expected in (("?user=zhangsan", 200), ("?user=lisi", 404), ("", 404),
                            ("?user=../zhangsan", 404)):
        async with http.get(photo + query) as answer:
            assert answer.status == expected, query
    # Sent to a group chat, it is in each member's conversation: theirs to open, no one else's.
    await queue("group-photo", Image(digest), to_chat=await drill_chat())

    async def shown_to_lisi() -> bool:
        return await WebChatLine.exists(user_id="lisi", key="group-photo")

    await eventually(shown_to_lisi, "the group's photo in lisi's conversation")
    for user, expected in (("lisi", 200), ("wangwu", 404)):
        async with http.get(f"{photo}/photo.jpg?user={user}") as answer:
            assert answer.status == expected, user


async def test_a_photo_that_cannot_be_saved_is_answered_503_in_chinese(
        service: Service, http: aiohttp.ClientSession, media_dir: Path) -> None:
    """The store's folder for this hash is taken by a file (as a full or read-only disk, the
    write fails with an OSError): the person is told to try later, and nothing is recorded."""
    digest = hashlib.sha256(JPEG).hexdigest()
    await asyncio.to_thread((media_dir / digest[:2]).write_bytes, b"in the way")
    status, answer = await upload(http, service.url, "zhangsan", JPEG)
    assert (status, answer) == (503, {"error": "暂时无法保存照片，请稍后再试。"})
    assert not await InboxEvent.exists() and not await WebChatLine.exists()


async def test_while_the_bucket_is_away_photos_are_answered_503_and_shown_when_it_is_back(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path, http: aiohttp.ClientSession, s3: S3Server) -> None:
    relay = Relay(s3.endpoint)
    await relay.up()
    bucket = store_settings(relay.endpoint, await new_bucket(s3.endpoint))
    svc = Service(service_settings(database_url, wecom.base_url, media_dir, **bucket))
    await svc.start(workers=False)
    try:
        assert (await upload(http, svc.url, "zhangsan", JPEG))[0] == 200
        photo = f"{svc.url}/chat/media/{hashlib.sha256(JPEG).hexdigest()}?user=zhangsan"
        await relay.down()
        status, answer = await upload(http, svc.url, "zhangsan", JPEG + b"another")
        assert (status, answer) == (503, {"error": "暂时无法保存照片，请稍后再试。"})
        async with http.get(photo) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "30"
        await relay.up()
        async with http.get(photo) as resp:
            assert resp.status == 200 and await resp.read() == JPEG
        assert await InboxEvent.all().count() == 1       # the refused upload left nothing
    finally:
        await svc.stop()
        await relay.down()


async def test_an_unexpected_failure_is_answered_500_in_chinese(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path, http: aiohttp.ClientSession) -> None:
    """The conversation log's table is away (as when the database fails mid-request): the page
    gets a sentence to show, not a stack trace."""
    svc = Service(service_settings(database_url, wecom.base_url, media_dir))
    await svc.start(workers=False)
    conn = db.db()
    await conn.execute_script('ALTER TABLE "webchat_line" RENAME TO "webchat_line_away"')
    try:
        status, answer = await post(http, svc.url, "text", user="zhangsan", id=message_id(),
                                    text="帮助")
        assert (status, answer) == (500, {"error": "服务暂时出现问题，请稍后再试。"})
    finally:
        await conn.execute_script('ALTER TABLE "webchat_line_away" RENAME TO "webchat_line"')
        await svc.stop()


@pytest.mark.parametrize("typed", ["配电箱\x00门没关", "配电箱\ud800门没关"],
                         ids=["nul", "lone-surrogate"])
async def test_text_that_a_database_cannot_hold_is_stored_cleaned_and_handled(
        service: Service, http: aiohttp.ClientSession, typed: str) -> None:
    """PostgreSQL refuses NUL and lone surrogates (a 500 before): they become U+FFFD."""
    status, answer = await post(http, service.url, "text", user="zhangsan", id=message_id(),
                                text=typed)
    assert (status, answer) == (200, {"stored": True})
    mine = await WebChatLine.get(user_id="zhangsan", from_bot=False)
    assert mine.payload["content"] == "配电箱\ufffd门没关"

    async def handled() -> bool:
        return await InboxEvent.filter(status=InboxStatus.DONE).exists() and \
            await WebChatLine.filter(user_id="zhangsan", from_bot=True).exists()

    await eventually(handled, "the event handled and answered")
    assert (await InboxEvent.get()).event.text == "配电箱\ufffd门没关"
