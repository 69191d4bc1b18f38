"""DingTalk's way in, shared by Stream and the HTTP callback: a robot message or a card click
parsed into neutral events and stored in the inbox, de-duplicated on DingTalk's `msgId` (a
redelivered frame or a repeated callback is one event), before DingTalk is answered; and the
HTTP callback's signature check (chat-protocols.md §7.1, §7.2, §7.4).

People are their `senderStaffId`; a message without one comes from outside the company and is
answered through its conversation's `sessionWebhook` and logged, never handled as anybody.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels import Counted, Sink, read_limited
from bot.channels.dingtalk_api import PLATFORM
from bot.settings import DingTalkSettings
from models.inbound import Inbound, InboundKind

log = logging.getLogger(__name__)

TOPIC_MESSAGE = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"
TASK_TAG = "@"              # as on WeCom: a card sent again to later people gets a tagged id
SIGN_WINDOW_MS = 3600_000   # a callback more than an hour off is refused (§7.1)


class Refused(Exception):
    """What DingTalk (or someone posing as it) sent cannot be taken; the reason is logged."""


@dataclass(frozen=True)
class Outsider:
    """A message from somebody outside the company (no staff id): answered, never handled."""

    nick: str
    conversation: str
    webhook: str


def parse_message(doc: dict[str, Any], robot: str) -> list[Inbound] | Outsider:
    """A robot message (§7.1) as the events it holds: a rich text's pictures come first, one
    event each, then its text, as if the person had sent them one after another."""
    if str(doc.get("robotCode") or robot) != robot:
        raise Refused(f"a message for robot {str(doc.get('robotCode'))[:40]!r}, not ours")
    msg_id = str(doc.get("msgId") or "")
    if not msg_id:
        raise Refused("a robot message without msgId")
    user = str(doc.get("senderStaffId") or "")
    if not user:
        return Outsider(str(doc.get("senderNick") or "")[:40],
                        str(doc.get("conversationId") or ""),
                        str(doc.get("sessionWebhook") or ""))
    kind = str(doc.get("msgtype") or "")
    content = object_of(doc.get("content"))
    sent_at = _int(doc.get("createAt")) // 1000

    def event(n: int, **values: Any) -> Inbound:
        dedup = f"{PLATFORM}:msg:{msg_id}" + (f":{n}" if n else "")
        return Inbound(platform=PLATFORM, user_id=user, dedup_key=dedup, sent_at=sent_at,
                       raw_type=kind, **values)

    if kind == "text":
        text = object_of(doc.get("text"))
        return [event(0, kind=InboundKind.TEXT, text=str(text.get("content") or "").strip())]
    if kind == "picture":
        return [event(0, kind=InboundKind.IMAGE, media_id=_download_code(content))]
    if kind == "richText":
        parts = [p for p in content.get("richText") or [] if isinstance(p, dict)]
        pictures = [_download_code(p) for p in parts if p.get("type") == "picture"]
        words = "".join(str(p.get("text") or "") for p in parts
                        if p.get("type") != "picture").strip()
        events = [event(n, kind=InboundKind.IMAGE, media_id=code)
                  for n, code in enumerate(pictures) if code]
        if words:
            events.append(event(len(events), kind=InboundKind.TEXT, text=words))
        return events or [event(0, kind=InboundKind.UNKNOWN)]
    if kind == "audio":
        heard = str(content.get("recognition") or "").strip()
        if heard:   # DingTalk's own speech recognition: what the person said, as text
            return [event(0, kind=InboundKind.TEXT, text=heard)]
        return [event(0, kind=InboundKind.VOICE)]
    return [event(0, kind=InboundKind.UNKNOWN)]


def parse_card_click(doc: dict[str, Any], delivery: str) -> Inbound:
    """A card callback (§7.4): the button's params, bound in our template (config/dingtalk/),
    are `key` and, with a drop-down, `selection` and `selected`.

    Two presses of one button send the same content, so a click is told from a redelivery by
    `delivery`: the Stream frame's messageId, which a redelivery keeps and a new press does
    not (an HTTP callback's timestamp). A click taken twice is harmless anyway: a decided card
    answers 已处理."""
    track = str(doc.get("outTrackId") or "")
    user = str(doc.get("userId") or "")
    if not track or not user:
        raise Refused("a card callback without outTrackId or userId")
    try:
        content = json.loads(doc.get("content") or "{}")
        params = content.get("cardPrivateData", {}).get("params", {})
        if not isinstance(params, dict):
            raise TypeError
    except (TypeError, ValueError, AttributeError):
        raise Refused("a card callback whose content is not the template's JSON") from None
    chosen = str(params.get("selected") or "")
    question = str(params.get("selection") or "")
    digest = hashlib.sha256(f"{delivery}\n{json.dumps(doc, sort_keys=True)}".encode())
    return Inbound(
        platform=PLATFORM, user_id=user, kind=InboundKind.CARD_ACTION,
        dedup_key=f"{PLATFORM}:card:{digest.hexdigest()}", event_key=str(params.get("key") or ""),
        task_id=track.split(TASK_TAG, 1)[0], response_code=track,
        selected={question: [chosen]} if question and chosen else {}, raw_type="card",
    )


def object_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _download_code(part: dict[str, Any]) -> str:
    return str(part.get("downloadCode") or part.get("pictureDownloadCode") or "")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


OUTSIDER_REPLY = "您好，安全助手只为本企业员工服务。如需帮助，请联系企业的安全管理员。"


class Receiver:
    """What both ways in share: parse, store, and answer people from outside the company."""

    def __init__(self, settings: DingTalkSettings, sink: Sink) -> None:
        self._robot = settings.robot
        self._sink = sink
        self._answering: set[asyncio.Task[None]] = set()

    async def take(self, topic: str, doc: dict[str, Any], delivery: str) -> str:
        """Store what `doc` holds (`delivery`: what names this delivery of it); the outcome
        for the metrics (stored, duplicate, outsider)."""
        if topic == TOPIC_CARD:
            events: list[Inbound] | Outsider = [parse_card_click(doc, delivery)]
        elif topic == TOPIC_MESSAGE:
            events = parse_message(doc, self._robot)
        else:
            raise Refused(f"a frame of topic {topic[:60]!r}")
        if isinstance(events, Outsider):
            log.warning("a message from outside the company, answered and not handled",
                        extra={"nick": events.nick, "conversation": events.conversation})
            # Answered beside the ACK, not before it: a slow webhook must not make DingTalk
            # deliver the message again.
            task = asyncio.create_task(self._answer_outsider(events))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
            return "outsider"
        stored = [await self._sink(event) for event in events]
        return "stored" if any(stored) else "duplicate"

    async def _answer_outsider(self, outsider: Outsider) -> None:
        if not outsider.webhook.startswith(("http://", "https://")):
            return
        try:   # rare enough for a client of its own, in whichever process answers callbacks
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                    session.post(outsider.webhook, json={
                        "msgtype": "text", "text": {"content": OUTSIDER_REPLY}}) as resp:
                resp.raise_for_status()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not answer the outsider: %s", exc.__class__.__name__)


def signature(timestamp: str, secret: str) -> str:
    """Base64(HMAC-SHA256(key=appSecret, timestamp + "\\n" + appSecret)) (§7.1)."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class DingTalkCallback:
    """`POST /dingtalk/callback`: checked, stored, answered 200 at once."""

    def __init__(self, settings: DingTalkSettings, receiver: Receiver, max_body: int,
                 wall: Callable[[], float] = time.time) -> None:
        self._secret = settings.client_secret
        self._receiver = receiver
        self._max_body = max_body
        self._wall = wall

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/dingtalk/callback", self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        with Counted(PLATFORM) as counted:
            self._check_sign(request.headers.get("timestamp", ""),
                             request.headers.get("sign", ""))
            body = await read_limited(request, self._max_body)
            try:
                doc = json.loads(body)
                if not isinstance(doc, dict):
                    raise ValueError
            except ValueError:
                raise web.HTTPBadRequest(text="the body is not a JSON object") from None
            topic = TOPIC_CARD if "outTrackId" in doc else TOPIC_MESSAGE
            try:
                counted.result = await self._receiver.take(topic, doc,
                                                           request.headers["timestamp"])
            except Refused as exc:
                log.warning("dingtalk callback refused: %s", exc)
                raise web.HTTPForbidden(text=str(exc)) from None
            return web.json_response({})

    def _check_sign(self, timestamp: str, sign: str) -> None:
        if not timestamp or not sign:
            raise web.HTTPUnauthorized(text="missing timestamp or sign")
        if not timestamp.isdigit() or abs(self._wall() * 1000 - int(timestamp)) > SIGN_WINDOW_MS:
            log.warning("dingtalk callback refused: timestamp more than an hour off")
            raise web.HTTPUnauthorized(text="timestamp more than an hour off")
        if not hmac.compare_digest(signature(timestamp, self._secret).encode(), sign.encode()):
            log.warning("dingtalk callback refused: wrong sign")
            raise web.HTTPUnauthorized(text="wrong sign")
