"""WeCom: the callback endpoint, event parsing, message rendering and delivery, and the plug-in
that declares them with WeCom's limits.

The callback does only what must happen before WeCom's 5-second timer runs out: verify, decrypt,
parse, store in the inbox, answer 200 with an empty body. Everything else happens later from the
inbox (chat-protocols.md §1.5).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels import (
    Counted,
    Delivery,
    Edges,
    MediaGone,
    Outcome,
    PlatformUnavailable,
    Plugin,
    Sink,
    Stream,
    Verdict,
    platform_upload,
    read_limited,
)
from bot.channels.wecom_api import Unreachable, WeComApi, WeComError
from bot.channels.wecom_crypto import CryptoError, WeComCrypto, WrongReceiver, parse_xml
from bot.media import MediaStore
from bot.settings import Settings, WeComSettings
from models.inbound import Inbound, InboundKind, Location
from models.markup import render_markdown
from models.outgoing import (
    CHAT_PREFIX,
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
)

log = logging.getLogger(__name__)

PLATFORM = "wecom"
TASK_TAG = "@"                 # a task_id may hold digits, letters and _-@; ours never hold @

# chat-protocols.md: text and markdown ≤ 2,048 bytes (45002 beyond, §4.2); a button_interaction
# card ≤ 6 buttons, ≤ 6 horizontal_content_list rows, a button_selection of ≤ 10 options of ≤ 16
# characters, sub_title_text ≤ 160 characters (§3.1, §3.2); ≤ 30 messages a minute to a member,
# the rest silently dropped (§4.2); ≤ 1,000 users in touser (§4.2); duplicate_check_interval
# ≤ 4 h (§3.2). The per-member rate is a setting (`[wecom] per_member_per_minute`).
LIMITS = Limits(message_bytes=2048, card_buttons=6, card_rows=6, card_options=10,
                option_chars=16, card_body_chars=160, per_person_per_minute=30,
                recipients_per_call=1000, duplicate_check_seconds=4 * 3600)


def limits(settings: Settings) -> Limits:
    return replace(LIMITS, per_person_per_minute=settings.wecom.per_member_per_minute)


# ---------------------------------------------------------------------------------------------
# Inbound


def parse_event(plaintext: str, corp_id: str) -> Inbound:
    """Turn a decrypted callback into the neutral event.

    Messages are de-duplicated by MsgId; events by a hash of the whole plaintext, because
    FromUserName + CreateTime collides when one person acts twice in a second (§8.2).
    """
    doc = parse_xml(plaintext)
    user = str(doc.get("FromUserName") or "")
    if not user:
        raise CryptoError(-40002, "callback without FromUserName")
    msg_type = str(doc.get("MsgType") or "")
    event_name = str(doc.get("Event") or "")
    if msg_type != "event" and doc.get("MsgId"):
        dedup = f"{PLATFORM}:{corp_id}:msg:{doc['MsgId']}"
    else:
        dedup = f"{PLATFORM}:{corp_id}:evt:{hashlib.sha256(plaintext.encode()).hexdigest()}"
    common: dict[str, Any] = {
        "platform": PLATFORM, "user_id": user, "dedup_key": dedup,
        "sent_at": _int(doc.get("CreateTime")), "raw_type": event_name or msg_type,
    }
    if msg_type == "text":
        return Inbound(kind=InboundKind.TEXT, text=str(doc.get("Content") or ""), **common)
    if msg_type in ("image", "voice"):
        kind = InboundKind.IMAGE if msg_type == "image" else InboundKind.VOICE
        return Inbound(kind=kind, media_id=str(doc.get("MediaId") or ""), **common)
    if msg_type == "location":
        where = Location(latitude=_float(doc.get("Location_X")),
                         longitude=_float(doc.get("Location_Y")),
                         label=str(doc.get("Label") or ""))
        return Inbound(kind=InboundKind.LOCATION, location=where, **common)
    if msg_type == "event" and event_name == "enter_agent":
        return Inbound(kind=InboundKind.ENTER, **common)
    if msg_type == "event" and event_name == "click":
        return Inbound(kind=InboundKind.MENU, event_key=str(doc.get("EventKey") or ""), **common)
    if msg_type == "event" and event_name in ("scancode_waitmsg", "scancode_push"):
        info = doc.get("ScanCodeInfo")
        result = info.get("ScanResult") if isinstance(info, dict) else None
        return Inbound(kind=InboundKind.SCAN, text=str(result or ""),
                       event_key=str(doc.get("EventKey") or ""), **common)
    if msg_type == "event" and event_name == "template_card_event":
        return Inbound(
            kind=InboundKind.CARD_ACTION, event_key=str(doc.get("EventKey") or ""),
            task_id=str(doc.get("TaskId") or "").split(TASK_TAG, 1)[0],
            response_code=str(doc.get("ResponseCode") or ""),
            selected=_selected_items(doc.get("SelectedItems")), **common,
        )
    return Inbound(kind=InboundKind.UNKNOWN, **common)


def _selected_items(node: Any) -> dict[str, list[str]]:
    """SelectedItems/SelectedItem[]/{QuestionKey, OptionIds/OptionId[]} (wechatpy skips it)."""
    if not isinstance(node, dict):
        return {}
    chosen: dict[str, list[str]] = {}
    for item in node.get("SelectedItem") or []:
        if isinstance(item, dict) and item.get("QuestionKey"):
            options = item.get("OptionIds") or {}
            ids = options.get("OptionId") or [] if isinstance(options, dict) else []
            chosen[str(item["QuestionKey"])] = [str(i) for i in ids]
    return chosen


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class WeComCallback:
    """`GET|POST /wecom/callback`."""

    def __init__(self, settings: WeComSettings, sink: Sink, max_body: int) -> None:
        self._crypto = WeComCrypto(settings.token, settings.aes_key, settings.corp_id)
        self._corp_id = settings.corp_id
        self._sink = sink
        self._max_body = max_body

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/wecom/callback", self.verify_url),
                web.post("/wecom/callback", self.receive)]

    async def verify_url(self, request: web.Request) -> web.Response:
        query = _signed_query(request, "echostr")
        try:
            echo = self._crypto.open_echo(query["msg_signature"], query["timestamp"],
                                          query["nonce"], query["echostr"])
        except CryptoError as exc:
            raise _refusal(exc) from None
        return web.Response(text=echo, content_type="text/plain")

    async def receive(self, request: web.Request) -> web.Response:
        with Counted(PLATFORM) as counted:
            query = _signed_query(request)
            body = await read_limited(request, self._max_body)
            try:
                plaintext = self._crypto.open_message(
                    body, query["msg_signature"], query["timestamp"], query["nonce"]
                )
                event = parse_event(plaintext, self._corp_id)
            except CryptoError as exc:
                log.warning("wecom callback refused", extra={"code": exc.code,
                                                              "reason": exc.reason})
                raise _refusal(exc) from None
            counted.result = "stored" if await self._sink(event) else "duplicate"
            return web.Response(text="")


def _signed_query(request: web.Request, *extra: str) -> dict[str, str]:
    names = ("msg_signature", "timestamp", "nonce", *extra)
    missing = [n for n in names if not request.query.get(n)]
    if missing:
        raise web.HTTPBadRequest(text=f"missing query parameter: {', '.join(missing)}")
    return {n: request.query[n] for n in names}


def _refusal(exc: CryptoError) -> web.HTTPException:
    if exc.code == -40001 or isinstance(exc, WrongReceiver):
        return web.HTTPForbidden(text="signature or receiver mismatch")
    return web.HTTPBadRequest(text=f"bad callback ({exc.code})")


# ---------------------------------------------------------------------------------------------
# Outbound


def render(message: Text | Markdown | Card | Image | File, agent_id: int, limits: Limits = LIMITS,
           duplicate_check: float = 0.0, media_id: str = "") -> dict[str, Any]:
    """The body of message/send for one message, without recipients, cut to `limits`; a
    picture or document names its upload, `media_id`."""
    body: dict[str, Any] = {"agentid": agent_id}
    if isinstance(message, Image | File):
        body.update(msgtype=message.type, **{message.type: {"media_id": media_id}})
    elif isinstance(message, Text):
        body.update(msgtype="text", text={
            "content": fit_text(message.content, limits.message_bytes)})
    elif isinstance(message, Markdown):
        body.update(msgtype="markdown", markdown={
            "content": render_markdown(message.content, room=limits.message_bytes)})
    elif message.buttons:
        body.update(msgtype="template_card", template_card=_template_card(message, limits))
    else:
        body.update(msgtype="markdown",
                    markdown={"content": message.as_markdown(limits.message_bytes)})
    if duplicate_check > 0 and body["msgtype"] != "template_card":
        # Only on a repeat after a timeout or a crash, and only as far back as the first
        # attempt: WeCom then drops the copy if the first went through. WeCom compares content,
        # so a wider or permanent check would also drop a person's legitimate repeats (帮助
        # twice, a question asked again). Cards have their single-use task_id instead.
        body.update(enable_duplicate_check=1,
                    duplicate_check_interval=math.ceil(duplicate_check))
    return body


def _own_task_id(body: dict[str, Any], batch: str) -> dict[str, Any]:
    """A card's task_id is single-use (§3.2): the people it reaches after its first send (they
    waited for their rate limit, or come in a later call than the first 1,000) need an id of
    their own. The tag is the same at every attempt of that send, so a repeat after a timeout is
    still refused as the duplicate it is; callbacks carry the tagged id and `parse_event` strips
    the tag."""
    if not batch or body.get("msgtype") != "template_card":
        return body
    card = body["template_card"]
    return {**body, "template_card": {**card, "task_id": f"{card['task_id']}{TASK_TAG}{batch}"}}


def _template_card(card: Card, limits: Limits) -> dict[str, Any]:
    """A button_interaction card, cut to what WeCom holds (`Card.within`)."""
    card = card.within(limits)
    body: dict[str, Any] = {
        "card_type": "button_interaction",
        "source": {"desc": "安全助手"},
        "main_title": {"title": card.title, "desc": card.description},
        "horizontal_content_list": [{"keyname": k, "value": v}
                                    for k, v in card.fields],
        "task_id": card.task_id,
        "button_list": [{"text": b.text, "style": b.style, "key": b.key}
                        for b in card.buttons],
    }
    if card.body:
        body["sub_title_text"] = card.body
    if card.selection:                # WeCom takes 1 to 10 options, not 0: `within` drops none
        pick = card.selection
        body["button_selection"] = {
            "question_key": pick.key, "title": pick.title,
            "option_list": [{"id": i, "text": t} for i, t in pick.options],
            **({"selected_id": pick.selected} if pick.selected else {}),
        }
    return body


class WeComChannel:
    """Delivers outbox messages through the WeCom API and fetches inbound media."""

    platform = PLATFORM
    # An upload lives three days (§4.5); reused for two and a half, so that no message goes out
    # with an id in its last hours (a send retried later, clocks that differ).
    media_reuse: timedelta | None = timedelta(days=2, hours=12)

    def __init__(self, settings: WeComSettings, api: WeComApi, media: MediaStore,
                 limits: Limits = LIMITS) -> None:
        self._s = settings
        self._api = api
        self._media = media
        self.limits = limits

    async def fetch_media(self, media_id: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._api.download(media_id):
                yield chunk
        except WeComError as exc:
            if exc.retry_after is None:
                raise MediaGone(str(exc)) from exc
            raise PlatformUnavailable(str(exc)) from exc

    async def upload(self, message: Image | File) -> str:
        # media/upload takes the same `type` as the message's msgtype (§4.5).
        return await platform_upload(message, self._media,
                                     lambda spooled: self._api.upload(spooled, message.type),
                                     WeComError, _outcome)

    async def deliver(self, key: str, message: Outgoing, recipients: Sequence[str],
                      duplicate_check: float = 0.0, batch: str = "", media_id: str = ""
                      ) -> Delivery:
        try:
            if isinstance(message, GroupCreate):
                return await self._create_group(message, recipients)
            if isinstance(message, GroupUpdate):
                return await self._update_group(message, recipients)
            if isinstance(message, CardUpdate):
                return await self._update_card(message, recipients)
            chats = [r for r in recipients if r.startswith(CHAT_PREFIX)]
            if not isinstance(message, Text | Markdown | Card | Image | File):
                raise TypeError(f"{message.type} is not a chat message")
            body = render(message, self._s.agent_id, self.limits, duplicate_check, media_id)
            if chats:
                return await self._to_chats(body, chats)
            return await self._to_members(body, recipients, batch)
        except WeComError as exc:
            return Delivery({r: _outcome(exc) for r in recipients}, {})
        except Unreachable as exc:
            return Delivery({r: Outcome.unreachable(exc) for r in recipients}, {})

    async def _to_members(self, body: dict[str, Any], recipients: Sequence[str], batch: str
                          ) -> Delivery:
        """One message/send; the dispatcher hands at most `recipients_per_call` members."""
        try:
            answer = await self._api.call(
                "POST", "message/send",
                json={**_own_task_id(body, batch), "touser": "|".join(recipients)})
        except WeComError as exc:
            if exc.errcode == 81013:  # every recipient invalid or unlicensed
                return Delivery({r: Outcome(Verdict.INVALID, "81013") for r in recipients}, {})
            return Delivery({r: _outcome(exc) for r in recipients}, {})
        except Unreachable as exc:
            return Delivery({r: Outcome.unreachable(exc) for r in recipients}, {})
        refused = {
            name: reason
            for reason in ("invaliduser", "unlicenseduser")
            for name in str(answer.get(reason) or "").split("|") if name
        }
        outcomes = {}
        for r in recipients:
            reason = refused.get(r.lower())
            outcomes[r] = Outcome(Verdict.INVALID, reason) if reason else Outcome.sent()
        result = {field + "s": [answer[field]] for field in ("msgid", "response_code")
                  if answer.get(field)}
        return Delivery(outcomes, result)

    async def _to_chats(self, body: dict[str, Any], chats: Sequence[str]) -> Delivery:
        body = {k: v for k, v in body.items()
                if k not in ("agentid", "enable_duplicate_check", "duplicate_check_interval")}
        if body["msgtype"] == "template_card":
            raise TypeError("appchat/send cannot carry template cards (§3.3)")
        outcomes: dict[str, Outcome] = {}
        for chat in chats:
            try:
                await self._api.call("POST", "appchat/send",
                                     json={**body, "chatid": chat.removeprefix(CHAT_PREFIX)})
                outcomes[chat] = Outcome.sent()
            except WeComError as exc:
                outcomes[chat] = _outcome(exc)
            except Unreachable as exc:
                outcomes[chat] = Outcome.unreachable(exc)
        return Delivery(outcomes, {})

    async def _create_group(self, message: GroupCreate, recipients: Sequence[str]) -> Delivery:
        answer = await self._api.call("POST", "appchat/create", json={
            "name": message.name, "owner": message.owner, "userlist": list(message.members),
            "chatid": message.chat_id,
        })
        return Delivery({r: Outcome.sent() for r in recipients}, {"chatid": answer.get("chatid")})

    async def _update_group(self, message: GroupUpdate, recipients: Sequence[str]) -> Delivery:
        """appchat/update (§4.3); the owner goes along only when it changes hands."""
        await self._api.call("POST", "appchat/update", json={
            "chatid": message.chat_id, "add_user_list": list(message.add),
            "del_user_list": list(message.remove),
            **({"owner": message.owner} if message.owner else {}),
        })
        return Delivery({r: Outcome.sent() for r in recipients}, {})

    async def _update_card(self, message: CardUpdate, recipients: Sequence[str]) -> Delivery:
        whom: dict[str, Any] = ({"userids": list(message.users)} if message.users
                                else {"atall": 1})
        await self._api.call("POST", "message/update_template_card", json={
            "agentid": self._s.agent_id, "response_code": message.response_code, **whom,
            "button": {"replace_name": message.replace_text},
        })
        return Delivery({r: Outcome.sent() for r in recipients}, {})


def _outcome(exc: WeComError) -> Outcome:
    detail = f"{exc.errcode} {exc.errmsg}"[:200]
    if exc.retry_after is not None:
        return Outcome(Verdict.RETRY, detail, exc.retry_after)
    if exc.errcode == 40007:
        # invalid media_id: the upload expired or is lost; the dispatcher uploads it again.
        return Outcome(Verdict.FAILED, detail, media_gone=True)
    if exc.errcode == 40058 and "task_id" in exc.errmsg:
        # The card's single-use task id was taken: an earlier attempt that timed out did reach
        # WeCom. Sending again cannot help and the person has the card (§3.2).
        return Outcome(Verdict.SENT, detail)
    return Outcome(Verdict.FAILED, detail)


# ---------------------------------------------------------------------------------------------
# The plug-in


class WeComConnector:
    """WeCom calls `/wecom/callback`; the channel sends through its API."""

    def __init__(self, edges: Edges) -> None:
        self._edges = edges

    def routes(self) -> list[web.RouteDef]:
        settings = self._edges.settings
        return WeComCallback(settings.wecom, self._edges.sink, settings.max_body_bytes).routes()

    def stream(self) -> Stream | None:
        return None

    def channel(self, session: aiohttp.ClientSession) -> WeComChannel:
        edges = self._edges
        api = WeComApi(edges.settings.wecom, session, edges.instance, edges.clock)
        return WeComChannel(edges.settings.wecom, api, edges.media, limits(edges.settings))


PLUGIN = Plugin(PLATFORM, enabled=lambda settings: settings.wecom.enabled, limits=limits,
                connect=WeComConnector)
