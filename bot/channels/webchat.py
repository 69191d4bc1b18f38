"""The local web chat: a page at /chat where anyone picks a person from the roster and chats as
them, through the same inbox, handlers and outbox as WeCom.

Inbound requests become `Inbound` events in the inbox sink, de-duplicated by a message id the page
generates, so a resent request is handled once. Outbound, `deliver()` appends each message to the
person's conversation log (`models.webchat`); open WebSockets send new lines as they appear. The
dispatcher may run in another process (`safetybot work`), so sockets poll the log as well as
being woken in-process. Because the page lets anyone act as anyone, it is served only when
`SAFETYBOT_WEBCHAT` allows it: by default (`auto`) only on a loopback host, and then only to
requests that come from this computer directly (a reverse proxy on the same host would otherwise
hand it to the network). Only people on the roster can speak, and a photo or a file is shown
only to someone whose conversation holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import BodyPartReader, web

from bot.channels import (
    Delivery,
    Edges,
    MediaGone,
    Outcome,
    Plugin,
    Sink,
    Stream,
    Verdict,
)
from bot.clock import Clock
from bot.media import MediaMissing, MediaStore, MediaUnavailable, content_type
from bot.settings import Settings
from models.chats import GroupChat
from models.inbound import Inbound, InboundKind
from models.markup import clean_text, render_markdown
from models.org import User
from models.outgoing import (
    CHAT_PREFIX,
    COMMON,
    Card,
    CardUpdate,
    File,
    GroupCreate,
    GroupUpdate,
    Image,
    Limits,
    Markdown,
    Outgoing,
    Text,
    fit_text,
    outgoing_to_payload,
)
from models.webchat import (
    HISTORY_LIMIT,
    WebChatLine,
    add_line,
    close_card,
    lines_after,
    open_card,
)

log = logging.getLogger(__name__)

PLATFORM = "webchat"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TEXT_MAX_CHARS = 2000          # WeCom takes 2048 bytes of text; the page should not promise more
# The page shows what a WeCom user would see (the same message and card sizes), so a trial looks
# like the plant's chat; but nothing limits how many messages a minute it shows a person, nor to
# how many people one delivery writes, and a repeated delivery writes nothing (keyed lines).
LIMITS = replace(COMMON, per_person_per_minute=None, recipients_per_call=None)
MULTIPART_SLACK = 16 * 1024    # form fields and boundaries around the file
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_DIGEST = "{digest:[0-9a-f]{64}}"
SETTLE_SECONDS = 10.0          # a line committed this much later than a higher id still goes out
# Headers a reverse proxy adds: a request carrying one did not come from this computer directly.
FORWARDING = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
              "X-Real-IP", "Via")
LOCAL_ONLY = "网页试用仅限在运行服务的电脑上直接打开，请勿经由代理或其他电脑访问。"
FAILED = "服务暂时出现问题，请稍后再试。"
NOT_SAVED = "暂时无法保存照片，请稍后再试。"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hub:
    """Wakes this process's open sockets when a line was just written here."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Event] = set()

    def wake(self) -> None:
        for event in self._listeners:
            event.set()

    @contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._listeners.add(event)
        try:
            yield event
        finally:
            self._listeners.discard(event)


# ---------------------------------------------------------------------------------------------
# Outbound


class WebChatChannel:
    """Delivers by appending to each recipient's conversation log; a repeat writes nothing."""

    platform = PLATFORM
    # No uploads: the page loads pictures and documents from the media store.
    media_reuse: timedelta | None = None

    def __init__(self, hub: Hub, clock: Clock, limits: Limits = LIMITS) -> None:
        self._hub = hub
        self._clock = clock
        self.limits = limits

    def fetch_media(self, media_id: str) -> AsyncIterator[bytes]:
        # Uploads are stored on arrival and their events carry the hash, never a media id.
        raise MediaGone(f"the web chat has no media id {media_id!r}")

    async def upload(self, message: Image | File) -> str:
        raise TypeError("the web chat takes no uploads")

    async def deliver(self, key: str, message: Outgoing, recipients: Sequence[str],
                      duplicate_check: float = 0.0, batch: str = "", media_id: str = ""
                      ) -> Delivery:
        now = self._clock()
        if isinstance(message, CardUpdate):
            told = await close_card(key, message.response_code, message.replace_text, now,
                                    only=message.users)
            outcome = (Outcome.sent() if told is not None
                       else Outcome(Verdict.FAILED, "response code unknown or already used"))
            outcomes = {r: outcome for r in recipients}
        elif isinstance(message, GroupCreate | GroupUpdate):
            # Nothing to create: a chat's members are its GroupChat row's, which the plan and
            # roster loads keep, and a message to the chat is shown to each of them.
            outcomes = {r: Outcome.sent() for r in recipients}
        else:
            task_id = message.task_id if isinstance(message, Card) else ""
            payload = self._payload(message)
            outcomes = {}
            for recipient in recipients:
                if recipient.startswith(CHAT_PREFIX):
                    outcomes[recipient] = await _to_chat(
                        recipient.removeprefix(CHAT_PREFIX), key, message.type, payload, now)
                elif _USER.fullmatch(recipient):
                    await add_line(recipient, key, from_bot=True, kind=message.type,
                                   payload=payload, now=now, task_id=task_id)
                    outcomes[recipient] = Outcome.sent()
                else:
                    outcomes[recipient] = Outcome(Verdict.INVALID, "not a person's id")
        self._hub.wake()
        return Delivery(outcomes, {})

    def _payload(self, message: Outgoing) -> dict[str, Any]:
        """The line the page shows, cut to `limits` as WeCom cuts it."""
        room = self.limits.message_bytes
        if isinstance(message, Text):
            message = Text(fit_text(message.content, room))
        if isinstance(message, Card) and message.buttons:
            # WeCom shows a card without buttons as markdown, whole: so does the page.
            message = message.within(self.limits)
        payload = outgoing_to_payload(message)
        if isinstance(message, Markdown):
            # The page renders WeCom's markdown subset: people's text is escaped as there.
            payload["content"] = render_markdown(message.content, room=room)
        return payload


async def _to_chat(chat_id: str, key: str, kind: str, payload: dict[str, Any], now: datetime
                   ) -> Outcome:
    """A group chat's message, as a line of each member's own conversation that names the chat
    (the page has one conversation a person)."""
    chat = await GroupChat.get_or_none(chat_id=chat_id)
    if chat is None:
        return Outcome(Verdict.INVALID, f"no group chat {chat_id}")
    for member in chat.members:
        await add_line(member, key, from_bot=True, kind=kind,
                       payload={**payload, "chat": chat.name or chat.chat_id}, now=now)
    return Outcome.sent()


# ---------------------------------------------------------------------------------------------
# Inbound: the page, its JSON endpoints and the socket


class WebChat:
    """`/chat`: the page, the roster, text, photos, card clicks, media and the live socket.

    `local_only` (`SAFETYBOT_WEBCHAT=auto`): serve a request only when it comes from a loopback
    address and carries no proxy's forwarding header. Off (`on`), anyone who reaches the port
    may use it, as the operator chose."""

    def __init__(self, sink: Sink, media: MediaStore, hub: Hub, clock: Clock, *,
                 poll_seconds: float, max_upload: int, local_only: bool = True) -> None:
        self._sink = sink
        self._media = media
        self._hub = hub
        self._clock = clock
        self._poll = poll_seconds
        self._max_upload = max_upload
        self._local_only = local_only

    def routes(self) -> list[web.AbstractRouteDef]:
        served, api = self._served, self._api
        return [
            web.get("/chat", served(self.page)),
            web.get(r"/chat/static/{name:chat\.(?:js|css)}", served(self.static)),
            web.get("/chat/api/people", served(api(self.people))),
            web.post("/chat/api/text", served(api(self.text))),
            web.post("/chat/api/photo", served(api(self.photo))),
            web.post("/chat/api/click", served(api(self.click))),
            web.get(f"/chat/media/{_DIGEST}", served(self.media)),
            web.get(f"/chat/media/{_DIGEST}/{{filename}}", served(self.media)),  # a File, by name
            web.get("/chat/ws", served(self.socket)),
        ]

    def _served(self, handler: Handler) -> Handler:
        """Refuse a request that the mode does not allow, before anything else is read."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self._local_only and not _direct_from_here(request):
                log.warning("web chat refused a request not made on this computer",
                            extra={"remote": request.remote, "path": request.path})
                if request.path.startswith("/chat/api/"):
                    raise _refuse(web.HTTPForbidden, LOCAL_ONLY)
                raise web.HTTPForbidden(text=LOCAL_ONLY)
            return await handler(request)

        return guarded

    @staticmethod
    def _api(handler: Handler) -> Handler:
        """An unexpected failure is answered in a sentence the page shows, never a trace."""
        async def answered(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception:
                log.exception("web chat request failed", extra={"path": request.path})
                raise _refuse(web.HTTPInternalServerError, FAILED) from None

        return answered

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "chat.html")

    async def static(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / request.match_info["name"])

    async def people(self, request: web.Request) -> web.Response:
        users = await User.filter(active=True).order_by("id")
        return web.json_response({
            "people": [{"id": u.id, "name": u.name, "roles": u.roles} for u in users],
            "max_upload": self._max_upload, "max_text": TEXT_MAX_CHARS,
            "settle_seconds": SETTLE_SECONDS,
        })

    async def text(self, request: web.Request) -> web.Response:
        body = await _json(request)
        user, client_id = await _sender(body)
        text = clean_text(str(body.get("text") or "")).strip()
        if not text:
            raise _refuse(web.HTTPBadRequest, "请输入内容后再发送。")
        if len(text) > TEXT_MAX_CHARS:
            raise _refuse(web.HTTPBadRequest, f"消息太长了，请控制在 {TEXT_MAX_CHARS} 字以内。")
        return await self._receive(user, client_id, InboundKind.TEXT, Text(text), text=text)

    async def photo(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > self._max_upload + MULTIPART_SLACK:
            raise self._too_large()
        form: dict[str, str] = {}
        data = b""
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                raise _refuse(web.HTTPBadRequest, "上传格式不正确。")
            if part.name == "file":
                data = await self._read_file(part)
            elif part.name:
                form[part.name] = (await part.read(decode=True))[:200].decode(errors="replace")
        user, client_id = await _sender(form)
        if not data:
            raise _refuse(web.HTTPBadRequest, "没有收到文件，请重新选择照片。")
        if not content_type(data).startswith("image/"):   # the bytes, not the browser's word
            raise _refuse(web.HTTPUnsupportedMediaType,
                          "只能发送照片（JPG、PNG 或 GIF 格式），请重新选择。")
        try:
            digest = await self._media.put(data)
        except (OSError, MediaUnavailable):   # a full disk, a bucket away: try again later
            log.exception("web chat could not store a photo", extra={"user": user})
            raise _refuse(web.HTTPServiceUnavailable, NOT_SAVED) from None
        return await self._receive(user, client_id, InboundKind.IMAGE, Image(digest),
                                   media=digest)

    async def click(self, request: web.Request) -> web.Response:
        body = await _json(request)
        user, client_id = await _sender(body)
        card = await open_card(user, clean_text(str(body.get("code") or "")))
        if card is None:
            raise _refuse(web.HTTPConflict, "这张卡片已处理或已失效。")
        key = str(body.get("key") or "")
        if key not in {b["key"] for b in card.payload.get("buttons") or []}:
            raise _refuse(web.HTTPBadRequest, "卡片上没有这个按钮。")
        selected = _selection(card.payload.get("selection"), body.get("selected"))
        return await self._receive(user, client_id, InboundKind.CARD_ACTION, None,
                                   event_key=key, task_id=card.task_id,
                                   response_code=card.response_code or "", selected=selected)

    async def media(self, request: web.Request) -> web.StreamResponse:
        """A photo or file, only for a person whose conversation shows it (`?user=`): the
        monthly ledger is not for whoever guesses its address. Anything else is 404."""
        digest = request.match_info["digest"]
        user = request.query.get("user", "")
        if not _USER.fullmatch(user) or not await WebChatLine.exists(user_id=user, media=digest):
            raise web.HTTPNotFound()
        async with contextlib.aclosing(self._media.chunks(digest)) as chunks:
            try:
                first = await anext(chunks, b"")
            except MediaMissing:
                raise web.HTTPNotFound() from None
            except MediaUnavailable:
                raise web.HTTPServiceUnavailable(headers={"Retry-After": "30"}) from None
            kind = content_type(first)
            shown = "inline" if kind.startswith("image/") else "attachment"
            if "filename" in request.match_info:
                # RFC 6266: the UTF-8 name in filename*, so 隐患台账 keeps its Chinese name.
                shown = f"attachment; filename*=UTF-8''{quote(request.match_info['filename'])}"
            # Streamed from the store a chunk at a time: a large file is never whole here.
            response = web.StreamResponse(headers={
                "Content-Type": kind, "Content-Disposition": shown,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, max-age=86400, immutable"})
            await response.prepare(request)
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        return response

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        user = await _person(request.query.get("user", ""))
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise _refuse(web.HTTPBadRequest, "参数 after 不正确。") from None
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        pusher = asyncio.create_task(self._push(ws, user, after), name=f"webchat-push:{user}")
        try:
            async for _ in ws:   # the page sends nothing; reading notices when it goes away
                pass
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)
        return ws

    async def _push(self, ws: web.WebSocketResponse, user: str, after: int) -> None:
        """Send the lines after `after`, then each new one: woken here, or found by polling.

        Ids are not commit order: on PostgreSQL a line can become visible after one with a
        higher id (a card update is written inside a transaction while a reply commits), so the
        cursor (`floor`) only moves past lines this socket sent SETTLE_SECONDS ago; the lines
        above it are read again and only the ones not sent yet go out.
        """
        sent: dict[int, float] = {}   # line id above the floor -> when it went out
        clock = asyncio.get_running_loop().time
        with self._hub.listen() as woken:
            try:
                lines = await lines_after(user, after)   # with 0, the latest lines only
                if after == 0 and len(lines) == HISTORY_LIMIT:   # not the whole log
                    floor = lines[0].id - 1
                else:
                    floor = after
                while not ws.closed:
                    for line in lines:
                        if line.id not in sent:
                            await ws.send_json(line.to_json())
                            sent[line.id] = clock()
                    settled = [i for i, at in sent.items() if clock() - at >= SETTLE_SECONDS]
                    if settled:
                        floor = max(floor, *settled)
                        sent = {i: at for i, at in sent.items() if i > floor}
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self._poll):   # not wait_for: see claim_loop
                            await woken.wait()
                    woken.clear()
                    lines = await WebChatLine.filter(user_id=user, id__gt=floor).order_by("id")
            except (ConnectionError, RuntimeError) as exc:
                log.info("web chat socket dropped: %r", exc, extra={"user": user})
            except Exception:
                log.exception("web chat socket failed", extra={"user": user})
                await ws.close()   # the page reconnects and catches up from its last line

    async def _receive(self, user: str, client_id: str, kind: InboundKind,
                       shown: Text | Image | None, **fields: Any) -> web.Response:
        """Record what the person sent in their log, then store the event once."""
        now = self._clock()
        dedup = f"{PLATFORM}:{user}:{client_id}"
        if shown is not None:
            await add_line(user, dedup, from_bot=False, kind=shown.type,
                           payload=outgoing_to_payload(shown), now=now)
        stored = await self._sink(Inbound(
            platform=PLATFORM, user_id=user, kind=kind, dedup_key=dedup,
            sent_at=int(now.timestamp()), raw_type=kind.value, **fields))
        self._hub.wake()
        return web.json_response({"stored": stored})

    async def _read_file(self, part: BodyPartReader) -> bytes:
        data = bytearray()
        while chunk := await part.read_chunk(65536):
            data += chunk
            if len(data) > self._max_upload:
                raise self._too_large()
        return bytes(data)

    def _too_large(self) -> web.HTTPException:
        megabytes = self._max_upload // (1024 * 1024)
        return web.HTTPRequestEntityTooLarge(
            self._max_upload, self._max_upload + 1, content_type="application/json",
            text=_error(f"文件太大了，请上传不超过 {megabytes} MB 的照片。"))


def _refuse(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=_error(message), content_type="application/json")


def _error(message: str) -> str:
    """The page shows `error` as it is: a short Chinese sentence."""
    return json.dumps({"error": message}, ensure_ascii=False)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _refuse(web.HTTPBadRequest, "请求格式不正确。") from None
    if not isinstance(body, dict):
        raise _refuse(web.HTTPBadRequest, "请求格式不正确。")
    return body


def _direct_from_here(request: web.Request) -> bool:
    """From a loopback address and through no proxy: a proxy on this host connects from
    loopback too, but says whom it forwards for (nginx only when configured to: see README)."""
    if any(name in request.headers for name in FORWARDING):
        return False
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:   # a Unix socket, or nothing known
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


async def _person(user: str) -> str:
    """Someone on the roster: the page offers no one else, and a stored line or event for an
    unknown id would never reach anybody."""
    if not _USER.fullmatch(user):
        raise _refuse(web.HTTPBadRequest, "请先选择一位人员。")
    if not await User.exists(id=user, active=True):
        raise _refuse(web.HTTPForbidden, "名册中没有这位人员，请刷新页面后重新选择。")
    return user


async def _sender(body: dict[str, Any]) -> tuple[str, str]:
    """Who sends, and the page's id for this message (the same id when it resends)."""
    client_id = str(body.get("id") or "")
    if not _CLIENT_ID.fullmatch(client_id):
        raise _refuse(web.HTTPBadRequest, "消息编号不正确，请刷新页面后重试。")
    return await _person(str(body.get("user") or "")), client_id


def _selection(offered: Any, chosen: Any) -> dict[str, list[str]]:
    """The drop-down choice, checked against the card's own options."""
    if not chosen:
        return {}
    if not isinstance(offered, dict) or not isinstance(chosen, dict):
        raise _refuse(web.HTTPBadRequest, "卡片上没有这个选项。")
    options = {str(option[0]) for option in offered.get("options") or []}
    picked = [str(i) for i in chosen.get(offered["key"]) or []]
    if set(chosen) != {offered["key"]} or not set(picked) <= options:
        raise _refuse(web.HTTPBadRequest, "卡片上没有这个选项。")
    return {offered["key"]: picked}


# ---------------------------------------------------------------------------------------------
# The plug-in


class WebChatConnector:
    """The page and its sockets (when the mode allows them) and the channel that writes the
    conversation log share one hub, so a line written here reaches open pages at once."""

    def __init__(self, edges: Edges) -> None:
        self._edges = edges
        self._hub = Hub()

    def routes(self) -> list[web.AbstractRouteDef]:
        edges = self._edges
        return WebChat(edges.sink, edges.media, self._hub, edges.clock,
                       max_upload=edges.max_upload, poll_seconds=edges.settings.poll_seconds,
                       local_only=edges.settings.webchat == "auto").routes()

    def stream(self) -> Stream | None:
        return None

    def channel(self, session: aiohttp.ClientSession) -> WebChatChannel:
        return WebChatChannel(self._hub, self._edges.clock, limits(self._edges.settings))


def limits(settings: Settings) -> Limits:
    return LIMITS


PLUGIN = Plugin(PLATFORM, enabled=lambda settings: settings.webchat_enabled, limits=limits,
                connect=WebChatConnector)
