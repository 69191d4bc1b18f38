"""WeCom (企业微信) played over real HTTP on loopback, for the tests, the benchmarks and the demo.

Server side: the part of `qyapi.weixin.qq.com/cgi-bin/` SafetyBot calls, with the quirks that shape
our client — HTTP 200 with an errcode, a token reused while valid, messages beyond 30 a minute per
member silently dropped, single-use task_id and response_code, partial `invaliduser` failures.
Client side: members whose messages are encrypted and POSTed to our callback exactly as WeCom does.
Protocol facts: shared/reference/chat-protocols.md §1–§4.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import aiohttp
from aiohttp import web

from bot.channels.wecom_crypto import WeComCrypto
from simulator import base
from simulator.contacts import Contacts, UnknownDepartment
from simulator.web_login import WebLogin

log = logging.getLogger(__name__)

Answer: TypeAlias = dict[str, Any] | web.StreamResponse
Handler: TypeAlias = Callable[[web.Request], Awaitable[Answer]]
Node: TypeAlias = str | int | float | list[tuple[str, "Node"]]

MAX_TOUSER = 1000
MAX_CONTENT_BYTES = 2048          # text and markdown (§4.2)
MAX_DUPLICATE_INTERVAL = 4 * 3600
# A template card's parts (§3.2): button_list ≤ 6, horizontal_content_list ≤ 6, a
# button_selection of 1-10 options of ≤ 16 characters, sub_title_text ≤ 160 characters.
CARD_PARTS = {"button_list": 6, "horizontal_content_list": 6}
MAX_OPTIONS = 10
MAX_OPTION_CHARS = 16
MAX_SUBTITLE_CHARS = 160
MAX_UPLOAD = 20 * 1024 * 1024     # the largest media WeCom takes (file, §4.5)
CALLBACK_TIMEOUT = aiohttp.ClientTimeout(total=5)  # WeCom drops the connection after 5 s (§1.5)
SEND_TYPES = frozenset({"text", "markdown", "image", "file", "template_card"})
CHAT_TYPES = frozenset({"text", "image", "voice", "video", "file", "textcard", "news", "mpnews",
                        "markdown"})
INTERACTIVE_CARDS = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})
CARD_TYPES = INTERACTIVE_CARDS | {"text_notice", "news_notice"}
# media/upload's `type` and its size limit (§4.5).
MEDIA_LIMITS = {"image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024, "video": 10 * 1024 * 1024,
                "file": MAX_UPLOAD}
MEDIA_TYPES = frozenset(MEDIA_LIMITS)
CHAT_ID = re.compile(r"[0-9a-zA-Z]{1,32}")

# WeCom's errmsg wording varies; clients must judge by errcode only (§4).
ERRMSG: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40005: "invalid media type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40029: "invalid code",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    41006: "media_id missing",
    41011: "agentid missing",
    42001: "access_token expired",
    44001: "empty media data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60020: "not allow to access from your ip",
    60123: "invalid party id",
    81013: "user & party & tag all invalid",
    82001: "All touser & toparty & totag invalid",
    86001: "invalid chatid",
    86003: "chatid not found",
    86004: "invalid chat name",
    86005: "invalid chat owner",
    86006: "invalid chat member count",
    86007: "invalid chat member",
    86215: "chatid exists",
}


class ApiError(Exception):
    """An errcode answer; `extra` fields ride along (e.g. invaliduser with 81013)."""

    def __init__(self, errcode: int, errmsg: str = "", **extra: Any) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.answer: dict[str, Any] = {
            "errcode": errcode, "errmsg": errmsg or ERRMSG.get(errcode, "simulated failure"),
            **extra,
        }


# media/upload: "所有文件size必须大于5个字节" (§4.5)
UPLOADS = base.UploadRules(MEDIA_LIMITS, more_than=5, error=ApiError,
                           bad_type=40005, no_file=44001, bad_size=40006)


class Delivered(base.Delivered):
    """One message that reached one member's WeCom client."""


@dataclass(frozen=True)
class ChatMessage:
    chatid: str
    msgtype: str
    body: dict[str, Any]
    at: float
    members: tuple[str, ...] = ()    # who was in the chat to read it


@dataclass(frozen=True)
class CardUpdated:
    """An accepted message/update_template_card; `task_id` is the card the code belonged to."""

    response_code: str
    task_id: str
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class Chat:
    chatid: str
    name: str
    owner: str
    userlist: tuple[str, ...]


class Media(base.Media):
    """An upload (media/upload) or a member's photo or voice; `created_at` in seconds."""


@dataclass(frozen=True)
class CallbackResult:
    """What our callback answered; `plaintext` is the XML that was sealed, for exact resends."""

    status: int
    body: str
    plaintext: str = ""


@dataclass(frozen=True)
class _Fault(base.Fault):
    errcode: int = 0


class WeComSimulator(base.PlatformSimulator[Delivered, _Fault]):
    """One corp with one self-built app; `users` is WeCom's member directory, not our roster.
    Per-member limits count a sliding minute (§4.2)."""

    _fault_type = _Fault
    _callback_timeout = CALLBACK_TIMEOUT
    _not_started = "start the simulator before members write to the app"
    _no_callback_url = "set sim.callback_url to the service's /wecom/callback first"

    def __init__(
        self, corp_id: str, agent_id: int, secret: str, token: str, aes_key: str,
        users: Iterable[str] = (), *, token_ttl: int = 7200, per_member_per_minute: int = 30,
        clock: base.Clock = time.monotonic,
    ) -> None:
        super().__init__(clock, token_ttl)
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.per_member_per_minute = per_member_per_minute
        self.dropped: list[Delivered] = []
        # Requests WeCom's duplicate check answered without delivering, per addressee.
        self.suppressed: list[Delivered] = []
        self.card_updates: list[CardUpdated] = []
        self.chats: dict[str, Chat] = {}
        self.media: dict[str, Media] = {}
        # The corp's contacts (通讯录) as department/list and user/list give them; apart from
        # `users`, who may write to the app.
        self.directory = Contacts()
        # The web login (网页授权 and the QR login) for the dashboard; who signs in is set by
        # the test (`web_login.signs_in`), and anyone not among `users` gets an openid only.
        self.web_login = WebLogin(clock)
        self._secret = secret
        self._crypto = WeComCrypto(token, aes_key, corp_id)
        self._members: dict[str, str] = {}          # lower-cased id -> id as registered
        self._retired_tokens: set[str] = set()
        self._chat_messages: dict[str, list[ChatMessage]] = {}
        self._duplicates: dict[str, tuple[float, dict[str, Any]]] = {}
        self._task_ids: set[str] = set()
        self._response_codes: dict[str, str] = {}   # code -> task_id
        self._used_codes: set[str] = set()
        # Real MsgIds are 64-bit; starting from the clock keeps a restarted simulator from
        # repeating ids a persistent database has already de-duplicated.
        self._msg_ids = itertools.count(time.time_ns() // 1000)
        self._routes: dict[str, tuple[str, Handler, bool]] = {
            "gettoken": ("GET", self._gettoken, False),
            "message/send": ("POST", self._send, True),
            "message/update_template_card": ("POST", self._update_card, True),
            "media/upload": ("POST", self._upload, True),
            "media/get": ("GET", self._download, True),
            "appchat/create": ("POST", self._create_chat, True),
            "appchat/update": ("POST", self._update_chat, True),
            "appchat/send": ("POST", self._chat_send, True),
            "appchat/get": ("GET", self._chat_get, True),
            "department/list": ("GET", self._department_list, True),
            "user/list": ("GET", self._user_list, True),
            "auth/getuserinfo": ("GET", self._login_user, True),
        }
        for user in users:
            self.add_user(user)

    # -- the server ----------------------------------------------------------------------

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD)
        for path, (method, handler, needs_token) in self._routes.items():
            app.router.add_route(method, f"/cgi-bin/{path}",
                                 self._endpoint(path, handler, needs_token))
        app.router.add_get("/pic/{media_id}", self._picture)
        app.router.add_get("/connect/oauth2/authorize", self._authorize_page)
        app.router.add_get("/wwlogin/sso/login", self._qr_login_page)
        return app

    def _api_paths(self) -> list[str]:
        return list(self._routes)

    # -- directory, tokens, faults --------------------------------------------------------

    def add_user(self, user_id: str) -> None:
        self._members[user_id.lower()] = user_id

    def remove_user(self, user_id: str) -> None:
        """Someone who left the company: messages to them come back as invaliduser."""
        self._members.pop(user_id.lower(), None)

    def user(self, user_id: str) -> SimUser:
        """A member writing to the app; whoever can write to it is in WeCom's directory."""
        self.add_user(user_id)
        return SimUser(self, user_id)

    def expire_tokens(self) -> None:
        """WeCom may invalidate a token before its expires_in (§4.1)."""
        if self._token is not None:
            self._retired_tokens.add(self._token)
        self._token = None

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        self._queue_faults(path, _Fault(errcode=errcode), times)

    def expire_media(self) -> None:
        """Three days pass: the media ids given so far are gone, and a message naming one is
        refused with 40007 (§4.5)."""
        self.media.clear()

    def add_media(self, data: bytes, content_type: str = "image/jpeg",
                  filename: str = "photo.jpg", kind: str = "image") -> str:
        media_id = "1" + secrets.token_urlsafe(40)
        self.media[media_id] = Media(data, content_type, filename, int(time.time()), kind)
        return media_id

    # -- what people received -------------------------------------------------------------

    def chat_messages(self, chatid: str) -> list[ChatMessage]:
        return list(self._chat_messages.get(chatid, []))

    def _inbox_key(self, user: str) -> str:
        return user.lower()         # WeCom user ids are case-insensitive

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _endpoint(self, path: str, handler: Handler,
                  needs_token: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            fault = self._take_fault(path)
            try:
                if fault.errcode:
                    raise ApiError(fault.errcode)
                if needs_token:
                    self._check_token(request.query.get("access_token", ""))
                answer = await handler(request)
            except ApiError as exc:
                answer = exc.answer
            await self._pause(fault.hang + self.latency)
            if isinstance(answer, web.StreamResponse):
                return answer
            return base.json_answer({"errcode": 0, "errmsg": "ok", **answer})
        return endpoint

    def _check_token(self, token: str) -> None:
        if not token:
            raise ApiError(41001)
        if self._token_valid(token):
            return
        if token == self._token or token in self._retired_tokens:
            raise ApiError(42001)
        raise ApiError(40014)

    def _check_agent(self, body: dict[str, Any]) -> None:
        if "agentid" not in body:
            raise ApiError(41011)
        if str(body["agentid"]) != str(self.agent_id):
            raise ApiError(40056)

    def _member(self, user_id: str) -> str | None:
        return self._members.get(user_id.lower())

    # -- API: token -----------------------------------------------------------------------

    async def _gettoken(self, request: web.Request) -> Answer:
        """The same token while it is valid, a new one after (§4.1)."""
        query = request.query
        if query.get("corpid") != self.corp_id or query.get("corpsecret") != self._secret:
            raise ApiError(40001)
        token, expires_in = self._fetch_token()
        return {"access_token": token, "expires_in": expires_in}

    def _new_token(self) -> str:
        return secrets.token_urlsafe(96)

    # -- the web login --------------------------------------------------------------------

    async def _authorize_page(self, request: web.Request) -> web.StreamResponse:
        """构造网页授权链接, opened inside the WeCom app."""
        query = request.query
        if (query.get("appid") != self.corp_id or query.get("response_type") != "code"
                or query.get("scope") not in ("snsapi_base", "snsapi_privateinfo")):
            raise web.HTTPBadRequest(text="appid, response_type=code and scope are required")
        return self.web_login.back_to(request, "code")

    async def _qr_login_page(self, request: web.Request) -> web.StreamResponse:
        """企业微信Web登录 (the QR login on a PC), for a self-built app."""
        query = request.query
        if (query.get("login_type") != "CorpApp" or query.get("appid") != self.corp_id
                or query.get("agentid") != str(self.agent_id)):
            raise web.HTTPBadRequest(text="login_type=CorpApp, appid and agentid are required")
        return self.web_login.back_to(request, "code")

    async def _login_user(self, request: web.Request) -> Answer:
        """获取访问用户身份: a member's userid, or an openid for anyone else; 40029 for a code
        that is unknown, used or older than five minutes."""
        person = self.web_login.take(request.query.get("code", ""))
        if person is None:
            raise ApiError(40029)
        member = self._member(person)
        if member is None:
            return {"openid": "o" + secrets.token_hex(14)}
        return {"userid": member}

    # -- API: messages --------------------------------------------------------------------

    async def _send(self, request: web.Request) -> Answer:
        body = await _json_body(request)
        self._check_agent(body)
        msgtype = str(body.get("msgtype") or "")
        if msgtype not in SEND_TYPES:
            raise ApiError(40008)
        self._check_content(body, msgtype)
        wanted = self._addressees(str(body.get("touser") or ""))
        now = self._clock()
        duplicate_key = _duplicate_key(body)
        if body.get("enable_duplicate_check") in (1, "1", True):
            earlier = self._duplicates.get(duplicate_key)
            if earlier and now - earlier[0] < _duplicate_interval(body):
                self.suppressed += [Delivered(u, msgtype, body, now) for u in wanted]
                await self._recorded()
                return earlier[1]       # accepted again, delivered once (§3.2)
        members = list(dict.fromkeys(m for u in wanted if (m := self._member(u))))
        invalid = "|".join(u.lower() for u in wanted if self._member(u) is None)
        if not members:
            raise ApiError(81013, invaliduser=invalid)
        answer: dict[str, Any] = {"invaliduser": invalid, "msgid": secrets.token_urlsafe(24)}
        if msgtype == "template_card":
            answer |= self._accept_card(body["template_card"])
        for member in members:
            self._deliver(member, msgtype, body, now)
        self._duplicates[duplicate_key] = (now, answer)
        await self._recorded()
        return answer

    def _addressees(self, touser: str) -> list[str]:
        if touser == "@all":
            return list(self._members.values())
        wanted = [u for u in touser.split("|") if u]
        if len(wanted) > MAX_TOUSER:
            raise ApiError(40058, f"invalid touser: more than {MAX_TOUSER} userids")
        if not wanted:
            raise ApiError(82001)
        return wanted

    def _check_content(self, body: dict[str, Any], msgtype: str) -> None:
        """The checks that catch our own rendering bugs early."""
        part = body.get(msgtype)
        if not isinstance(part, dict):
            raise ApiError(40058, f"{msgtype} missing")
        if msgtype in ("text", "markdown"):
            content = str(part.get("content") or "")
            if not content:
                raise ApiError(44004)
            if len(content.encode()) > MAX_CONTENT_BYTES:
                raise ApiError(45002)
        elif msgtype in MEDIA_TYPES:
            if part.get("media_id") not in self.media:
                raise ApiError(40007)
        elif msgtype == "template_card":
            if part.get("card_type") not in CARD_TYPES:
                raise ApiError(40058, "invalid template_card.card_type")
            if _needs_task_id(part) and not part.get("task_id"):
                raise ApiError(40058, "template_card.task_id missing")
            _check_card_parts(part)

    def _accept_card(self, card: dict[str, Any]) -> dict[str, Any]:
        """task_id is single-use per app; interactive cards get a response_code (§3.2, §3.4)."""
        task_id = str(card.get("task_id") or "")
        if task_id in self._task_ids:
            raise ApiError(40058, "task_id duplicated")
        if task_id:
            self._task_ids.add(task_id)
        if _needs_task_id(card):
            return {"response_code": self._issue_response_code(task_id)}
        return {}

    def _issue_response_code(self, task_id: str, code: str | None = None) -> str:
        code = code or secrets.token_urlsafe(32)
        self._response_codes.setdefault(code, task_id)
        return code

    def _deliver(self, member: str, msgtype: str, body: dict[str, Any], now: float) -> None:
        """Beyond the per-member limit WeCom answers ok and delivers nothing (§4.2)."""
        item = Delivered(member, msgtype, body, now)
        if not self._within_rate(member, now, self.per_member_per_minute):
            self.dropped.append(item)
            log.warning("dropped for %s (over %d a minute): %s", member,
                        self.per_member_per_minute, describe(body))
            return
        self._add_to_inbox(item)
        log.info("→ %s  %s", member, describe(body))

    async def _update_card(self, request: web.Request) -> Answer:
        body = await _json_body(request)
        self._check_agent(body)
        code = str(body.get("response_code") or "")
        if code not in self._response_codes:
            raise ApiError(40058, "invalid response_code")
        if code in self._used_codes:
            raise ApiError(40058, "response_code used")      # "一个code只能调用一次" (§3.4)
        button = body.get("button")
        replace_name = button.get("replace_name") if isinstance(button, dict) else None
        if not replace_name and not isinstance(body.get("template_card"), dict):
            raise ApiError(40058, "button.replace_name or template_card required")
        userids = [str(u) for u in body.get("userids") or []]
        if not (userids or body.get("partyids") or body.get("tagids") or body.get("atall")):
            raise ApiError(40058, "userids, partyids, tagids or atall required")
        self._used_codes.add(code)
        self.card_updates.append(
            CardUpdated(code, self._response_codes[code], body, self._clock()))
        log.info("card %s updated: %s", self._response_codes[code],
                 replace_name or "新卡片")
        await self._recorded()
        return {"invaliduser": [u.lower() for u in userids if self._member(u) is None]}

    # -- API: media -----------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> Answer:
        kind, part, data = await base.read_upload(request, UPLOADS)
        media_id = self.add_media(data, part.content_type, part.filename, kind)
        return {"type": kind, "media_id": media_id,
                "created_at": str(self.media[media_id].created_at)}

    async def _download(self, request: web.Request) -> Answer:
        media_id = request.query.get("media_id", "")
        if not media_id:
            raise ApiError(41006)
        media = self.media.get(media_id)
        if media is None:
            raise ApiError(40007)
        return _file(media)

    async def _picture(self, request: web.Request) -> web.StreamResponse:
        """PicUrl of an image message: the same bytes as media/get, without a token."""
        media = self.media.get(request.match_info["media_id"])
        if media is None:
            raise web.HTTPNotFound()
        return _file(media)

    # -- API: app group chats -------------------------------------------------------------

    async def _create_chat(self, request: web.Request) -> Answer:
        body = await _json_body(request)
        name = str(body.get("name") or "")
        if len(name) > 50:
            raise ApiError(86004)
        userlist = body.get("userlist")
        if not isinstance(userlist, list) or not 2 <= len(userlist) <= 2000:
            raise ApiError(86006)
        members = [self._member(str(u)) for u in userlist]
        if None in members:
            raise ApiError(86007)
        owner = str(body.get("owner") or userlist[0])
        if self._member(owner) is None:
            raise ApiError(86005)
        chatid = str(body.get("chatid") or secrets.token_hex(16))
        if not CHAT_ID.fullmatch(chatid):
            raise ApiError(86001)
        if chatid in self.chats:
            raise ApiError(86215)
        self.chats[chatid] = Chat(chatid, name, owner, tuple(m for m in members if m))
        self._chat_messages[chatid] = []
        log.info("群 %s「%s」建立，成员 %s", chatid, name, "、".join(self.chats[chatid].userlist))
        await self._recorded()
        return {"chatid": chatid}

    async def _update_chat(self, request: web.Request) -> Answer:
        """Members in and out, a new name or owner (§4.3), checked as appchat/create checks them.
        WeCom's doc does not say what becomes of a chat whose owner is removed without a new one
        named; the simulator refuses that (86005), so a client that tries it is caught here."""
        body = await _json_body(request)
        chat = self.chats.get(str(body.get("chatid") or ""))
        if chat is None:
            raise ApiError(86003)
        add, drop = body.get("add_user_list", []), body.get("del_user_list", [])
        if not isinstance(add, list) or not isinstance(drop, list):
            raise ApiError(40058, "add_user_list and del_user_list must be lists")
        joining = [self._member(str(u)) for u in add]
        if None in joining:
            raise ApiError(86007)
        name = str(body.get("name") or chat.name)
        if len(name) > 50:
            raise ApiError(86004)
        leaving = {str(u).lower() for u in drop}
        userlist = list(dict.fromkeys([*(m for m in chat.userlist if m.lower() not in leaving),
                                       *(m for m in joining if m)]))
        if len(userlist) > 2000:
            raise ApiError(86006)
        owner = self._member(str(body["owner"])) if body.get("owner") else chat.owner
        if owner is None or owner not in userlist:
            raise ApiError(86005)
        self.chats[chat.chatid] = Chat(chat.chatid, name, owner, tuple(userlist))
        log.info("群 %s「%s」加入 %s，移出 %s", chat.chatid, name,
                 "、".join(m for m in joining if m) or "无", "、".join(map(str, drop)) or "无")
        await self._recorded()
        return {}

    async def _chat_send(self, request: web.Request) -> Answer:
        body = await _json_body(request)
        chatid = str(body.get("chatid") or "")
        msgtype = str(body.get("msgtype") or "")
        if msgtype not in CHAT_TYPES:
            # template_card included: app group chats cannot carry cards (§3.3)
            raise ApiError(40008, f"invalid message type {msgtype!r} for appchat")
        if chatid not in self.chats:
            raise ApiError(86003)
        self._check_content(body, msgtype)
        self._chat_messages[chatid].append(
            ChatMessage(chatid, msgtype, body, self._clock(), self.chats[chatid].userlist))
        log.info("→ 群 %s「%s」  %s", chatid, self.chats[chatid].name, describe(body))
        await self._recorded()
        return {}

    async def _chat_get(self, request: web.Request) -> Answer:
        chat = self.chats.get(request.query.get("chatid", ""))
        if chat is None:
            raise ApiError(86003)
        return {"chat_info": {"chatid": chat.chatid, "name": chat.name, "owner": chat.owner,
                              "userlist": list(chat.userlist)}}

    # -- API: contacts -----------------------------------------------------------------------

    async def _department_list(self, request: web.Request) -> Answer:
        with _department_errors():
            wanted = request.query.get("id")
            return {"department": self.directory.wecom_departments(
                int(wanted) if wanted else None)}

    async def _user_list(self, request: web.Request) -> Answer:
        with _department_errors():
            return {"userlist": self.directory.wecom_members(
                int(request.query.get("department_id", "")))}

    # -- client side: WeCom calling our callback -------------------------------------------

    async def _post_callback(self, plaintext: str, signature: str | None,
                             timestamp: str | None, nonce: str | None) -> CallbackResult:
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        encrypted, sealed_signature = self._crypto.seal(plaintext, timestamp, nonce)
        envelope = (f"<xml><ToUserName>{cdata(self.corp_id)}</ToUserName>"
                    f"<Encrypt>{cdata(encrypted)}</Encrypt>"
                    f"<AgentID>{cdata(str(self.agent_id))}</AgentID></xml>")
        query = {"msg_signature": signature or sealed_signature, "timestamp": timestamp,
                 "nonce": nonce}
        async with self._client().post(self._callback(), params=query, data=envelope.encode(),
                                       headers={"Content-Type": "text/xml"}) as resp:
            return CallbackResult(resp.status, await resp.text(), plaintext)

    async def _verify_url(self, echo: str) -> CallbackResult:
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        echostr, sig = self._crypto.seal(echo, timestamp, nonce)
        query = {"msg_signature": sig, "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
        async with self._client().get(self._callback(), params=query) as resp:
            return CallbackResult(resp.status, await resp.text())

    def _next_msg_id(self) -> int:
        return next(self._msg_ids)


class SimUser:
    """A member acting in the WeCom client; each action is one encrypted callback (§2)."""

    def __init__(self, sim: WeComSimulator, user_id: str) -> None:
        self.sim = sim
        self.user_id = user_id

    async def says(self, text: str) -> CallbackResult:
        return await self._message("text", [("Content", text)])

    async def sends_photo(self, data: bytes, content_type: str = "image/jpeg") -> CallbackResult:
        extension = "png" if content_type == "image/png" else "jpg"
        media_id = self.sim.add_media(data, content_type, f"photo.{extension}")
        return await self._message("image", [("PicUrl", f"{self.sim.base_url}/pic/{media_id}"),
                                             ("MediaId", media_id)])

    async def sends_voice(self, data: bytes) -> CallbackResult:
        media_id = self.sim.add_media(data, "audio/amr", "voice.amr", "voice")
        return await self._message("voice", [("MediaId", media_id), ("Format", "amr")])

    async def sends_location(self, lat: float, lng: float, label: str) -> CallbackResult:
        return await self._message(
            "location", [("Location_X", lat), ("Location_Y", lng), ("Scale", 15),
                         ("Label", label)],
            tail=[("AppType", "wxwork")],
        )

    async def enters(self) -> CallbackResult:
        return await self._event("enter_agent", [("EventKey", "")])

    async def clicks_menu(self, key: str) -> CallbackResult:
        return await self._event("click", [("EventKey", key)])

    async def scans(self, result: str, key: str = "scan") -> CallbackResult:
        """The app menu's 扫码 button (scancode_waitmsg): WeCom scans, then posts the result."""
        return await self._event("scancode_waitmsg", [
            ("EventKey", key), ("ScanCodeInfo", [("ScanType", "qrcode"),
                                                 ("ScanResult", result)])])

    async def clicks(
        self, task_id: str, key: str, response_code: str | None = None,
        selected: dict[str, list[str]] | None = None, card_type: str = "button_interaction",
    ) -> CallbackResult:
        """A card button or submit; each click carries its own single-use ResponseCode."""
        code = self.sim._issue_response_code(task_id, response_code)
        items: list[tuple[str, Node]] = [
            ("SelectedItem", [("QuestionKey", question),
                              ("OptionIds", [("OptionId", option) for option in options])])
            for question, options in (selected or {}).items()
        ]
        return await self._event(
            "template_card_event",
            [("EventKey", key), ("TaskId", task_id), ("CardType", card_type),
             ("ResponseCode", code)],
            tail=[("SelectedItems", items)] if items else [],
        )

    async def send_plaintext(self, xml: str, *, signature: str | None = None,
                             timestamp: str | None = None,
                             nonce: str | None = None) -> CallbackResult:
        """Seal and post any plaintext: resends, malformed or tampered deliveries."""
        return await self.sim._post_callback(xml, signature, timestamp, nonce)

    async def verify_url(self, echo: str) -> CallbackResult:
        """The GET WeCom makes when the callback URL is saved in the admin console (§1.2)."""
        return await self.sim._verify_url(echo)

    async def _message(self, msg_type: str, fields: list[tuple[str, Node]],
                       tail: list[tuple[str, Node]] | None = None) -> CallbackResult:
        return await self._post(msg_type, [*fields, ("MsgId", self.sim._next_msg_id())],
                                tail or [])

    async def _event(self, event: str, fields: list[tuple[str, Node]],
                     tail: list[tuple[str, Node]] | None = None) -> CallbackResult:
        return await self._post("event", [("Event", event), *fields], tail or [])

    async def _post(self, msg_type: str, fields: list[tuple[str, Node]],
                    tail: list[tuple[str, Node]]) -> CallbackResult:
        """Field order as in WeCom's own examples: common head, type fields, AgentID, extras."""
        document: list[tuple[str, Node]] = [
            ("ToUserName", self.sim.corp_id), ("FromUserName", self.user_id),
            ("CreateTime", int(time.time())), ("MsgType", msg_type), *fields,
            ("AgentID", self.sim.agent_id), *tail,
        ]
        return await self.send_plaintext(_element("xml", document))


def cdata(text: str) -> str:
    """CDATA cannot hold ']]>', so split it across two sections (§1.6)."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: Node) -> str:
    if isinstance(value, list):
        inner = "".join(_element(child, v) for child, v in value)
    elif isinstance(value, str):
        inner = cdata(value)
    else:
        inner = str(value)          # numbers go bare, as WeCom sends CreateTime and MsgId
    return f"<{name}>{inner}</{name}>"


LABELS = {"text": "文本", "markdown": "Markdown", "image": "图片", "voice": "语音",
          "video": "视频", "file": "文件", "textcard": "文本卡片", "news": "图文",
          "mpnews": "图文", "template_card": "卡片"}


def describe(body: dict[str, Any]) -> str:
    """One readable line per message, for the demo console and failing tests' logs."""
    msgtype = str(body.get("msgtype") or "")
    part = body.get(msgtype)
    part = part if isinstance(part, dict) else {}
    label = LABELS.get(msgtype, msgtype)
    if msgtype in ("text", "markdown"):
        return f"[{label}] {part.get('content', '')}"
    if msgtype == "template_card":
        title = part.get("main_title") or {}
        buttons = "｜".join(str(b.get("text", "")) for b in part.get("button_list") or [])
        return (f"[{label}] {title.get('title', '')} — {title.get('desc', '')}"
                + (f"  [{buttons}]" if buttons else "") + f"  (task {part.get('task_id', '-')})")
    if "media_id" in part:
        return f"[{label}] {part['media_id']}"
    return f"[{label}] {json.dumps(part, ensure_ascii=False)}"


def _check_card_parts(card: dict[str, Any]) -> None:
    """The sizes WeCom holds; a card beyond them is refused whole."""
    for name, most in CARD_PARTS.items():
        if len(card.get(name) or []) > most:
            raise ApiError(40058, f"template_card.{name}: more than {most}")
    if len(str(card.get("sub_title_text") or "")) > MAX_SUBTITLE_CHARS:
        raise ApiError(40058, "template_card.sub_title_text too long")
    pick = card.get("button_selection")
    if pick is not None:
        options = pick.get("option_list") or []
        if not 1 <= len(options) <= MAX_OPTIONS:
            raise ApiError(40058, f"template_card.button_selection: 1 to {MAX_OPTIONS} options")
        if any(len(str(o.get("text") or "")) > MAX_OPTION_CHARS for o in options):
            raise ApiError(40058, "template_card.button_selection.option_list.text too long")


def _needs_task_id(card: dict[str, Any]) -> bool:
    """Interactive cards, and notices with an action_menu, are answerable and need a task_id."""
    return card.get("card_type") in INTERACTIVE_CARDS or "action_menu" in card


def _duplicate_key(body: dict[str, Any]) -> str:
    """The request without its duplicate-check fields.

    Assumption (WeCom's doc does not say): a request that asks for the check is compared with
    every message sent in the interval, whether or not that earlier one asked for it.
    """
    content = {k: v for k, v in body.items()
               if k not in ("enable_duplicate_check", "duplicate_check_interval")}
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _duplicate_interval(body: dict[str, Any]) -> float:
    try:
        seconds = float(body.get("duplicate_check_interval", 1800))
    except (TypeError, ValueError):
        seconds = 1800.0
    return min(seconds, MAX_DUPLICATE_INTERVAL)


@contextlib.contextmanager
def _department_errors() -> Iterator[None]:
    """A department id that is not a number, or not the corp's: 60123."""
    try:
        yield
    except (ValueError, UnknownDepartment):
        raise ApiError(60123) from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    return await base.json_object(request, lambda: ApiError(47001))


def _file(media: Media) -> web.Response:
    return web.Response(
        body=media.data, content_type=media.content_type,
        headers={"Content-Disposition": f'attachment; filename="{media.filename}"'},
    )
