"""Speaking to the local web chat as its page does: JSON posts, a photo upload, the live socket.
Shared by the channel tests, the walk-throughs and the browser test; `Person` is someone chatting
in the page."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from bot.clock import utc_now
from models import transaction
from models.chats import GroupChat
from models.outbox import enqueue
from models.outgoing import Outgoing

Line = dict[str, Any]


class Served(Protocol):
    @property
    def url(self) -> str: ...


def message_id() -> str:
    return uuid.uuid4().hex


async def post(http: aiohttp.ClientSession, base: str, path: str, **body: Any
               ) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{base}/chat/api/{path}", json=body) as answer:
        return answer.status, await answer.json()


async def upload(http: aiohttp.ClientSession, base: str, user: str, data: bytes,
                 client_id: str = "") -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("user", user)
    form.add_field("id", client_id or message_id())
    # A file object: aiohttp warns about large raw bytes (and the suite fails on warnings).
    form.add_field("file", io.BytesIO(data), filename="photo.jpg", content_type="image/jpeg")
    async with http.post(f"{base}/chat/api/photo", data=form) as answer:
        return answer.status, await answer.json()


class Socket:
    """One open /chat/ws: every line it has been sent, and a way to wait for the next ones."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.lines: list[Line] = []

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str, user: str, after: int = 0
                   ) -> Socket:
        return cls(await http.ws_connect(f"{base}/chat/ws?user={user}&after={after}"))

    async def until(self, wanted: Callable[[Line], bool]) -> Line:
        """The first line, seen or coming, that is `wanted`. The timeout only stops a hang."""
        for line in self.lines:
            if wanted(line):
                return line
        while True:
            line = await self.ws.receive_json(timeout=20)
            self.lines.append(line)
            if wanted(line):
                return line

    async def close(self) -> None:
        await self.ws.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for background work (the inbox worker, the dispatcher) to reach a state."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def drill_chat() -> str:
    """A plan's group chat as a load records it: 张三 and 李四 in 演练群. Returns its id."""
    await GroupChat.create(chat_id="emergency09", platform="webchat", name="演练群",
                           owner="zhangsan", members=["zhangsan", "lisi"], changed_at=utc_now())
    return "emergency09"


async def queue(key: str, message: Outgoing, to_users: list[str] | None = None, *,
                to_chat: str = "") -> None:
    """Queue a web chat message as a handler does, in a transaction: the dispatcher must never
    claim the message before its recipients are written (it would finish it with nobody)."""
    async with transaction():
        await enqueue(key, message, now=utc_now(), platform="webchat", to_users=to_users or [],
                      to_chat=to_chat)


def words(line: Line) -> str:
    """What a line shows: a message's text, or a card's title, fields and body."""
    payload: dict[str, Any] = line["payload"]
    if line["kind"] != "card":
        return str(payload.get("content", ""))
    return " ".join([payload["title"], *(f"{k}:{v}" for k, v in payload.get("fields", [])),
                     payload.get("body", "")])


class Person:
    """Someone chatting in the page: what they type and press, and their conversation."""

    def __init__(self, http: aiohttp.ClientSession, service: Served, user: str) -> None:
        self.http, self.service, self.user = http, service, user
        self.socket: Socket | None = None
        self.read = 0          # lines `next` has passed

    async def says(self, text: str) -> None:
        status, _ = await post(self.http, self.service.url, "text", user=self.user,
                               id=message_id(), text=text)
        assert status == 200

    async def sees(self, *wanted: str) -> Line:
        """A line of the bot's that has all the words, however long ago it came."""
        if self.socket is None:
            self.socket = await Socket.open(self.http, self.service.url, self.user)
        return await self.socket.until(
            lambda line: line["from_bot"] and all(w in words(line) for w in wanted))

    async def next(self, *wanted: str) -> Line:
        """The bot's next line with all the words, after the last one `next` returned (a quiz
        sends many cards alike)."""
        if self.socket is None:
            self.socket = await Socket.open(self.http, self.service.url, self.user)
        seen = self.read

        def fresh(line: Line) -> bool:
            assert self.socket is not None
            return (line["from_bot"] and all(w in words(line) for w in wanted)
                    and self.socket.lines.index(line) >= seen)

        found = await self.socket.until(fresh)
        self.read = self.socket.lines.index(found) + 1
        return found

    async def presses(self, card: Line, label: str) -> None:
        [key] = [b["key"] for b in card["payload"]["buttons"] if b["text"] == label]
        status, _ = await post(self.http, self.service.url, "click", user=self.user,
                               id=message_id(), code=card["response_code"], key=key)
        assert status == 200
