"""DingTalk (钉钉) played over real HTTP and WebSocket on loopback, for the tests, the benchmarks
and the demo.

One aiohttp server on `base_url` plays the three hosts SafetyBot talks to:
- `api.dingtalk.com`, the new-style OpenAPI under /v1.0: errors are HTTP 4xx/5xx with
  {"code", "message", "requestid"}; the token rides in the `x-acs-dingtalk-access-token` header;
- `oapi.dingtalk.com`, the old style (/media/upload, /robot/sendBySession and whatever
  `add_routes` mounts): errors are HTTP 200 with an errcode, the token is `?access_token=`;
- the Stream gateway: `/v1.0/gateway/connections/open` hands out a ticket for `/connect`, a
  WebSocket on which frames are pushed and must be ACKed, or they come again.
Client side: people whose messages and card clicks arrive as Stream frames (mode="stream") or as
signed HTTP POSTs to `callback_url` (mode="http"), with the JSON DingTalk sends.
Protocol facts: shared/reference/chat-protocols.md §7–§8.

Where the contract and DingTalk's documentation are silent, the simulator chooses as follows:
- User ids are compared exactly (DingTalk does not lower-case them, unlike WeCom).
- Each msgKey's parameters must all be present as strings; a `sampleImageMsg` photoURL that is
  not an http(s) URL, or a `sampleFile` mediaId, must name an upload here (`sim.media`); else
  400 invalidParameter.msgParam. A flow-controlled send does not count in the sliding minute.
- createAndDeliver: an `openSpaceId` naming several spaces joined by ';' delivers one card
  instance to each (the service's assumption, not documented by DingTalk). The instance is
  created, and its outTrackId used up, even when every space fails; a space fails alone
  ("user not found", "group not found", "robot not in group"). IM_ROBOT spaces need an
  imRobotOpenDeliverModel (robotCode optional, ours if given), IM_GROUP spaces an
  imGroupOpenDeliverModel whose robotCode is ours.
- A card click carries `"type": "actionCallback"` besides the contract's fields, as the SDK's
  CardCallbackMessage has it.
- PUT card/instances merges cardParamMap by key when updateCardDataByKey is true and replaces it
  whole otherwise (DingTalk's default); the same for privateData with updatePrivateDataByKey.
- The ACK of a Stream card callback may carry {"response": {"cardData", "privateData"}}, which
  is merged by key like an update and recorded as a CardUpdated (the SDK's cardcallback example).
- messageFiles/download takes the `downloadCode` only, not the `pictureDownloadCode`.
- Old-style calls answer any bad, unknown or expired token with errcode 40014; `fail_next` on
  an old-style path answers HTTP `status` with errcode `int(code)`.
- A sessionWebhook is valid 90 minutes and takes the custom-robot message types; an unknown or
  expired session answers errcode 300001.
- Stream: a connection gets only frames whose (type, topic) it subscribed to ("*" is any topic);
  a connection that was sent `disconnect` gets no more frames; a reply whose code is not 200 is
  not an ACK (the frame comes again), though the action waiting for it returns with that code;
  SYSTEM frames are never redelivered. `resend` pushes the same message in a new frame (a new
  messageId), as DingTalk does when it pushes a message again after a reconnect.
- Timestamps inside messages (createAt, the `timestamp` header, a frame's `time`) are the wall
  clock's, as DingTalk's own; `clock` times the simulator's deadlines (tokens, tickets, download
  links, sessions, the rate window). `ack_timeout` is real time: a redelivery is a timer the
  service lives with, not a deadline a test moves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, TypeAlias

import aiohttp
from aiohttp import web

from simulator import base
from simulator.contacts import Contacts, dingtalk_handlers
from simulator.web_login import WebLogin

log = logging.getLogger(__name__)

Handler: TypeAlias = Callable[[web.Request], Awaitable[dict[str, Any]]]
Endpoint: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]
Mode: TypeAlias = Literal["stream", "http"]
FrameKind: TypeAlias = Literal["CALLBACK", "EVENT"]

TOKEN_HEADER = "x-acs-dingtalk-access-token"
BOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
LWCP = "$:LWCP_v1:$"                 # DingTalk's encrypted ids (senderId, chatbotUserId; §8.11)
MAX_BATCH_USERS = 20                 # batchSend's userIds (§7.3)
MAX_MARKDOWN_BYTES = 5000
MAX_GROUP_PARAM_BYTES = 15000        # groupMessages/send's msgParam (§7.3)
TICKET_TTL = 90.0                    # a Stream ticket, single use (§7.2)
LINK_TTL = 60.0                      # a messageFiles/download URL
SESSION_TTL = 90 * 60.0              # a sessionWebhook (≈ createAt + 90 min, §7.1)
ACK_WAIT = 10.0                      # how long an action waits for its ACK
DISCONNECT_GRACE = 1.0               # `disconnect`, then the close
AUDIO_DURATION_MS = 3000
# media/upload's `type` and its limit; the request also carries the multipart framing.
MEDIA_LIMITS = {"image": 20 * 1024 * 1024, "voice": 2 * 1024 * 1024,
                "video": 20 * 1024 * 1024, "file": 20 * 1024 * 1024}
MAX_REQUEST = max(MEDIA_LIMITS.values()) + 64 * 1024
CALLBACK_TIMEOUT = aiohttp.ClientTimeout(total=5)   # DingTalk's is [unknown]; WeCom's 5 s
# The parameters each msgKey needs inside msgParam (§7.3).
MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    "sampleFile": ("mediaId", "fileName", "fileType"),
}
SESSION_TYPES = frozenset({"text", "markdown", "link", "actionCard", "feedCard"})
FRAME_TYPES = frozenset({"SYSTEM", "EVENT", "CALLBACK"})

MESSAGES: dict[str, str] = {
    "InvalidAuthentication": "不合法的access_token",
    "InvalidParameter": "请求体须为JSON对象",
    "InternalError": "系统繁忙，请稍后重试",
    "invalidClientIdOrSecret": "无效的clientId或clientSecret",
    "invalidParameter.robotCode": "robotCode不存在",
    "invalidParameter.userIds": "userIds须为1到20个用户",
    "invalidParameter.msgKey": "不支持的msgKey",
    "invalidParameter.msgParam": "msgParam不合法",
    "invalidParameter.openConversationId": "群会话不存在",
    "invalidParameter.downloadCode": "downloadCode不存在或已失效",
    "invalidParameter.cardParamMap": "cardParamMap的值须为字符串",
    "invalidParameter.privateData": "privateData不合法",
    "invalidParameter.openSpaceId": "openSpaceId不合法",
    "invalidParameter.outTrackId": "outTrackId不能为空",
    "invalidParameter.cardTemplateId": "cardTemplateId不能为空",
    "invalidParameter.imRobotOpenDeliverModel": "缺少imRobotOpenDeliverModel",
    "invalidParameter.imGroupOpenDeliverModel": "缺少imGroupOpenDeliverModel.robotCode",
    "invalidParameter.subscriptions": "subscriptions不合法",
    "robot.notInGroup": "机器人不在该群中",
    "card.outTrackIdExists": "outTrackId已存在",
    "card.instanceNotExist": "卡片实例不存在",
    "invalidAuthCode": "authCode不存在或已过期",
}
ERRMSG: dict[int, str] = {
    -1: "系统繁忙",
    40004: "不合法的媒体文件类型",
    40006: "不合法的文件大小",
    40014: "不合法的access_token",
    40035: "不合法的参数",
    41005: "缺少多媒体文件数据",
    60121: "找不到该用户",
    300001: "session不存在或已过期",
}


class ApiError(Exception):
    """A new-style error: HTTP `status` with {"code", "message", "requestid"}."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.answer: dict[str, Any] = {
            "code": code, "message": message or MESSAGES.get(code, "simulated failure"),
            "requestid": str(uuid.uuid4()).upper(),
        }


class OapiError(Exception):
    """An old-style error: errcode and errmsg, with HTTP 200 unless a fault says otherwise."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.answer: dict[str, Any] = {
            "errcode": errcode, "errmsg": errmsg or ERRMSG.get(errcode, "simulated failure"),
        }


UPLOADS = base.UploadRules(MEDIA_LIMITS, more_than=0, error=OapiError,
                           bad_type=40004, no_file=41005, bad_size=40006)


class Delivered(base.Delivered):
    """One robot message or card that reached one person's DingTalk client; `msgtype` is the
    msgKey, or "card"."""


@dataclass(frozen=True)
class ChatMessage:
    open_conversation_id: str
    msgtype: str
    body: dict[str, Any]
    at: float
    members: tuple[str, ...] = ()    # who was in the group to read it


@dataclass(frozen=True)
class CardUpdated:
    out_track_id: str
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class SessionReply:
    """A message posted to a sessionWebhook; `user` is "" for an external person."""

    conversation_id: str
    user: str
    nick: str
    msgtype: str
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class Group:
    open_conversation_id: str
    title: str
    members: tuple[str, ...]
    robot: bool = True               # whether our robot is in it
    owner: str = ""
    template_id: str = ""            # a scene group's (场景群) template; "" for a plain group


class Media(base.Media):
    """An upload (media/upload) or a file a person sent; `created_at` in ms."""


@dataclass
class SimCard:
    """A card instance as it stands now: created, then updated by PUT or a callback's ACK."""

    out_track_id: str
    template_id: str
    param_map: dict[str, str]
    private: dict[str, dict[str, str]] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CallbackResult:
    """How our service answered one delivery: an HTTP callback's status and body, or a Stream
    frame's reply code and data (status 0: sent without waiting). `payload` and `topic` are
    what was delivered, for `resend`."""

    status: int
    body: str
    payload: dict[str, Any]
    message_id: str = ""
    topic: str = BOT_TOPIC


@dataclass(frozen=True)
class _Fault(base.Fault):
    status: int = 0
    code: str = ""


@dataclass(frozen=True)
class _Session:
    conversation_id: str
    user: str
    nick: str
    expires: float


class DingTalkSimulator(base.PlatformSimulator[Delivered, _Fault]):
    """One corp with one internal app and its robot; `users` is DingTalk's directory (user id to
    display name), not our roster."""

    _fault_type = _Fault
    _callback_timeout = CALLBACK_TIMEOUT
    _not_started = "start the simulator before people write to the robot"
    _no_callback_url = "set sim.callback_url to the service's DingTalk callback first"

    def __init__(
        self, client_id: str, client_secret: str, robot_code: str, users: Iterable[str] = (), *,
        corp_id: str = "dingcorp0001", mode: Mode = "stream", token_ttl: int = 7200,
        ack_timeout: float = 5.0, per_user_per_minute: int = 10_000,
        clock: base.Clock = time.monotonic,
    ) -> None:
        if mode not in ("stream", "http"):
            raise ValueError(f"mode is 'stream' or 'http', not {mode!r}")
        super().__init__(clock, token_ttl)
        self.client_id = client_id
        self.robot_code = robot_code
        self.corp_id = corp_id
        self.mode = mode
        self.per_user_per_minute = per_user_per_minute
        self.chatbot_user_id = LWCP + _opaque(robot_code, "robot")
        self.users: dict[str, str] = {}
        self.groups: dict[str, Group] = {}
        self.media: dict[str, Media] = {}
        self.card_updates: list[CardUpdated] = []
        self.session_replies: list[SessionReply] = []
        self._secret = client_secret
        self._flow_controls: dict[str, int] = {}
        self._chat_messages: dict[str, list[ChatMessage]] = {}
        self._cards: dict[str, SimCard] = {}
        self._download_codes: dict[str, Media] = {}
        self._links: dict[str, tuple[Media, float]] = {}
        self._sessions: dict[str, _Session] = {}
        self._scene_uuids: dict[str, str] = {}     # a scene group's create uuid -> its id
        self.directory = Contacts()                # what the contact APIs list (sync-org)
        # The web login (OAuth2 授权页) for the dashboard; who signs in is set by the test
        # (`web_login.signs_in`), and anyone not among `users` is outside the organisation.
        self.web_login = WebLogin(clock)
        self._user_tokens: dict[str, tuple[str, float]] = {}   # a person's token -> them
        self._gateway = _Gateway(client_id, ack_timeout, clock, self._recorded, self._card_reply)
        self._openapi: dict[str, tuple[str, Handler, bool]] = {
            "oauth2/accessToken": ("POST", self._access_token, False),
            "robot/oToMessages/batchSend": ("POST", self._batch_send, True),
            "robot/groupMessages/send": ("POST", self._group_send, True),
            "robot/messageFiles/download": ("POST", self._download_url, True),
            "card/instances/createAndDeliver": ("POST", self._create_card, True),
            "card/instances": ("PUT", self._update_card, True),
            "gateway/connections/open": ("POST", self._open_connection, False),
            "oauth2/userAccessToken": ("POST", self._user_access_token, False),
            "contact/users/me": ("GET", self._users_me, False),
        }
        self._oapi_names: set[str] = set()
        self._routes: list[web.AbstractRouteDef] = [
            self.old_style_route("POST", "media/upload", self._upload),
            self.old_style_route("POST", "robot/sendBySession", self._session_reply,
                                 needs_token=False),
            self.old_style_route("POST", "topapi/im/chat/scenegroup/create",
                                 self._create_scene_group),
            self.old_style_route("POST", "topapi/im/chat/scenegroup/member/add",
                                 partial(self._scene_members, add=True)),
            self.old_style_route("POST", "topapi/im/chat/scenegroup/member/delete",
                                 partial(self._scene_members, add=False)),
            self.old_style_route("POST", "topapi/im/chat/scenegroup/update",
                                 self._update_scene_group),
            self.old_style_route("POST", "topapi/user/getbyunionid", self._by_union_id),
            *(self.old_style_route("POST", path, handler)
              for path, handler in dingtalk_handlers(lambda: self.directory).items()),
        ]
        for user in users:
            self.add_user(user)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        base_url = await super().start(host, port)
        self._gateway.start()
        return base_url

    async def stop(self) -> None:
        self._closing.set()             # held handlers wake before the gateway closes its lines
        await self._gateway.stop()
        await super().stop()

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST)
        for name, (method, handler, needs_token) in self._openapi.items():
            app.router.add_route(method, f"/v1.0/{name}",
                                 self._openapi_endpoint(name, handler, needs_token))
        app.add_routes(self._routes)
        app.router.add_get("/download/{token}", self._file)
        app.router.add_get("/connect", self._connect)
        app.router.add_get("/oauth2/auth", self._login_page)
        return app

    def _api_paths(self) -> list[str]:
        return [*self._openapi, *sorted(self._oapi_names)]

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """More endpoints on the same server (simulator/contacts.py's old-style contact APIs)."""
        if self._runner is not None:
            raise RuntimeError("add routes before start()")
        self._routes.extend(routes)

    def old_style_route(self, method: str, path: str, handler: Handler, *,
                        needs_token: bool = True) -> web.RouteDef:
        """An oapi.dingtalk.com endpoint for `add_routes`: `handler` returns the answer's fields
        or raises OapiError; the token check, faults, latency and call count come with it."""
        name = path.strip("/")
        self._oapi_names.add(name)
        return web.route(method, f"/{name}", self._oapi_endpoint(name, handler, needs_token))

    # -- directory, tokens, faults --------------------------------------------------------

    def add_user(self, user_id: str, name: str = "") -> None:
        self.users[user_id] = name or self.users.get(user_id) or user_id

    def remove_user(self, user_id: str) -> None:
        """Someone who left the company: sends to them come back in invalidStaffIdList."""
        self.users.pop(user_id, None)

    def user(self, user_id: str) -> SimUser:
        """A member writing to the robot; whoever can write to it is in DingTalk's directory."""
        self.add_user(user_id)
        return SimUser(self, user_id, self.users[user_id], self.corp_id)

    def external(self, nick: str) -> SimUser:
        """Someone outside the corp: their messages carry an empty senderStaffId (§7.1)."""
        return SimUser(self, "", nick, "ding" + hashlib.sha256(nick.encode()).hexdigest()[:16])

    def add_group(self, open_conversation_id: str, title: str, members: Iterable[str],
                  robot: bool = True) -> Group:
        group = Group(open_conversation_id, title, tuple(members), robot)
        self.groups[open_conversation_id] = group
        self._chat_messages.setdefault(open_conversation_id, [])
        return group

    def expire_media(self) -> None:
        """The uploads are lost (DingTalk says they are kept for good; [unknown] what it
        answers when one is not): a message naming one is refused as a bad msgParam."""
        self.media.clear()

    def add_media(self, data: bytes, content_type: str = "image/jpeg",
                  filename: str = "photo.jpg", kind: str = "image") -> str:
        media_id = "@" + secrets.token_urlsafe(24)
        self.media[media_id] = Media(data, content_type, filename, _now_ms(), kind)
        return media_id

    def fail_next(self, path: str, status: int, code: str | int, times: int = 1) -> None:
        """Answer the next `times` calls of `path` with HTTP `status` and `code` (an errcode on
        old-style paths) instead of carrying them out."""
        if path in self._oapi_names and not str(code).lstrip("-").isdigit():
            raise ValueError(f"{path} is old-style: its code is an errcode number, not {code!r}")
        self._queue_faults(path, _Fault(status=status, code=str(code)), times)

    def fail_downloads(self, times: int = 1) -> None:
        self.fail_next("robot/messageFiles/download", 500, "InternalError", times)

    def flow_control(self, user: str, times: int = 1) -> None:
        """The next `times` sends to `user` come back in flowControlledStaffIdList."""
        self._flow_controls[user] = self._flow_controls.get(user, 0) + times

    # -- the Stream connection ------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        return self._gateway.connections_opened

    @property
    def acks(self) -> list[str]:
        """messageIds ACKed with code 200, in order; a late ACK of a redelivered frame twice."""
        return self._gateway.acks

    @property
    def redeliveries(self) -> int:
        return self._gateway.redeliveries

    @property
    def pongs(self) -> list[str]:
        """The opaques of pings our client echoed."""
        return self._gateway.pongs

    def drop_socket(self) -> None:
        """Close the current connection abruptly, without a close frame (a network failure)."""
        self._gateway.drop()

    def silence_socket(self) -> None:
        """Leave the current connection open but dead: nothing read from it (so no pong for
        the client's pings) and nothing sent on it, as a NAT that dropped it silently."""
        self._gateway.silence()

    async def send_disconnect(self) -> None:
        """The gateway's SYSTEM `disconnect` (e.g. before its own restart), then the close."""
        await self._gateway.disconnect()

    async def ping(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """A SYSTEM ping; whether our client echoed its opaque within `timeout`."""
        return await self._gateway.ping(timeout)

    async def send_event(self, topic: str, data: dict[str, Any], *, wait: bool = True,
                         timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """An EVENT frame (Stream only); our client must ACK it like a callback."""
        if self.mode != "stream":
            raise RuntimeError("EVENT frames exist in stream mode only")
        return await self.send(data, topic=topic, kind="EVENT", wait=wait, timeout=timeout)

    async def send(self, payload: dict[str, Any], *, topic: str = BOT_TOPIC,
                   kind: FrameKind = "CALLBACK", wait: bool = True,
                   timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """Deliver `payload` to our service: a frame, ACKed within `timeout` (or TimeoutError,
        the frame staying queued), or without waiting; in HTTP mode a callback POST, always
        awaited since its answer is the delivery."""
        if self.mode == "http":
            result = await self.post_callback(payload)
            return CallbackResult(result.status, result.body, payload, "", topic)
        frame = self._gateway.push(kind, topic, payload)
        if not wait:
            return CallbackResult(0, "", payload, frame.message_id, topic)
        return await self._gateway.answered(frame, timeout)

    def _card_reply(self, topic: str, payload: dict[str, Any], data: str) -> None:
        """A card callback's ACK may carry the card's new data (SDK cardcallback example)."""
        card = self._cards.get(str(payload.get("outTrackId")))
        response = _card_response(data) if topic == CARD_TOPIC else None
        if card is None or response is None:
            return
        try:
            _apply_update(card, response, public_by_key=True, private_by_key=True)
        except ApiError as exc:
            log.warning("card %s: the callback's ACK carried a bad update: %s",
                        card.out_track_id, exc)
            return
        self.card_updates.append(CardUpdated(card.out_track_id, response, self._clock()))

    # -- what people received -------------------------------------------------------------

    def chat_messages(self, open_conversation_id: str) -> list[ChatMessage]:
        return list(self._chat_messages.get(open_conversation_id, []))

    def card(self, out_track_id: str) -> SimCard:
        try:
            return self._cards[out_track_id]
        except KeyError:
            raise KeyError(f"no card {out_track_id!r} was created") from None

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _openapi_endpoint(self, name: str, handler: Handler, needs_token: bool) -> Endpoint:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            fault = self._take_fault(name)
            try:
                if fault.status:
                    raise ApiError(fault.status, fault.code)
                if needs_token and not self._token_valid(request.headers.get(TOKEN_HEADER, "")):
                    raise ApiError(401, "InvalidAuthentication")
                answer, status = await handler(request), 200
            except ApiError as exc:
                answer, status = exc.answer, exc.status
            await self._pause(fault.hang + self.latency)
            return base.json_answer(answer, status)
        return endpoint

    def _oapi_endpoint(self, name: str, handler: Handler, needs_token: bool) -> Endpoint:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            fault = self._take_fault(name)
            try:
                if fault.status:
                    raise OapiError(int(fault.code))
                if needs_token and not self._token_valid(request.query.get("access_token", "")):
                    raise OapiError(40014)
                answer = {"errcode": 0, "errmsg": "ok", **await handler(request)}
            except OapiError as exc:
                answer = exc.answer
            await self._pause(fault.hang + self.latency)
            return base.json_answer(answer, fault.status or 200)
        return endpoint

    def _check_robot(self, body: dict[str, Any]) -> None:
        if body.get("robotCode") != self.robot_code:
            raise ApiError(400, "invalidParameter.robotCode")

    # -- API: token -----------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> dict[str, Any]:
        """The same token while it is valid (expireIn = seconds left), a new one after."""
        body = await _json_body(request)
        if body.get("appKey") != self.client_id or body.get("appSecret") != self._secret:
            raise ApiError(400, "invalidClientIdOrSecret")
        token, expire_in = self._fetch_token()
        return {"accessToken": token, "expireIn": expire_in}

    def _new_token(self) -> str:
        return secrets.token_hex(16)

    # -- the web login --------------------------------------------------------------------

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        """login.dingtalk.com/oauth2/auth: back to redirect_uri with an authCode."""
        query = request.query
        if (query.get("client_id") != self.client_id or query.get("response_type") != "code"
                or "openid" not in query.get("scope", "").split()):
            raise web.HTTPBadRequest(text="client_id, response_type=code and scope=openid "
                                          "are required")
        return self.web_login.back_to(request, "authCode")

    async def _user_access_token(self, request: web.Request) -> dict[str, Any]:
        """The person's own token for an authCode, once; 400 invalidAuthCode otherwise (the
        code is the simulator's choice: DingTalk's is [unknown])."""
        body = await _json_body(request)
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self._secret:
            raise ApiError(400, "invalidClientIdOrSecret")
        if body.get("grantType") != "authorization_code":
            raise ApiError(400, "InvalidParameter", "grantType须为authorization_code")
        person = self.web_login.take(str(body.get("code", "")))
        if person is None:
            raise ApiError(400, "invalidAuthCode")
        token = secrets.token_hex(16)
        self._user_tokens[token] = (person, self._clock() + self.token_ttl)
        return {"accessToken": token, "refreshToken": secrets.token_hex(16),
                "expireIn": self.token_ttl}

    async def _users_me(self, request: web.Request) -> dict[str, Any]:
        """获取用户通讯录个人信息, with the person's own token."""
        person, until = self._user_tokens.get(request.headers.get(TOKEN_HEADER, ""), ("", 0.0))
        if not person or self._clock() >= until:
            raise ApiError(401, "InvalidAuthentication")
        return {"nick": self.users.get(person, person), "unionId": self.union_id(person),
                "openId": _opaque(self.client_id, person, "open"), "avatarUrl": "",
                "stateCode": "86"}

    async def _by_union_id(self, request: web.Request) -> dict[str, Any]:
        """根据unionid获取用户userid: members only (60121 for anyone else)."""
        body = await base.json_object(request, lambda: OapiError(40035))
        found = [user for user in self.users if self.union_id(user) == body.get("unionid")]
        if not found:
            raise OapiError(60121)
        return {"result": {"contact_type": 0, "userid": found[0]},
                "request_id": uuid.uuid4().hex}

    def union_id(self, user: str) -> str:
        """A person's unionId: the same across DingTalk, opaque."""
        return _opaque(user, "union")

    # -- API: robot messages --------------------------------------------------------------

    async def _batch_send(self, request: web.Request) -> dict[str, Any]:
        """Partial success: the unknown and the flow-controlled come back in lists (§8.5)."""
        body = await _json_body(request)
        self._check_robot(body)
        msg_key, param = self._message(body, limit=None)
        user_ids = body.get("userIds")
        if not isinstance(user_ids, list) or not 1 <= len(user_ids) <= MAX_BATCH_USERS:
            raise ApiError(400, "invalidParameter.userIds")
        key = _process_query_key()
        now = self._clock()
        invalid, throttled = [], []
        for user in dict.fromkeys(str(u) for u in user_ids):
            if user not in self.users:
                invalid.append(user)
            elif not self._admit(user, now):
                throttled.append(user)
            else:
                self._deliver(Delivered(user, msg_key, {**param, "processQueryKey": key}, now))
        await self._recorded()
        return {"processQueryKey": key, "invalidStaffIdList": invalid,
                "flowControlledStaffIdList": throttled}

    def _admit(self, user: str, now: float) -> bool:
        """Flow control: forced by `flow_control`, or more than per_user_per_minute sends."""
        if self._flow_controls.get(user, 0) > 0:
            self._flow_controls[user] -= 1
            log.warning("%s 被限流（模拟）", user)
            return False
        if not self._within_rate(user, now, self.per_user_per_minute):
            log.warning("%s 被限流（一分钟内超过 %d 条）", user, self.per_user_per_minute)
            return False
        return True

    def _deliver(self, item: Delivered) -> None:
        self._add_to_inbox(item)
        log.info("→ %s  %s", item.user, describe(item.msgtype, item.body))

    async def _group_send(self, request: web.Request) -> dict[str, Any]:
        body = await _json_body(request)
        self._check_robot(body)
        group = self.groups.get(str(body.get("openConversationId") or ""))
        if group is None:
            raise ApiError(400, "invalidParameter.openConversationId")
        if not group.robot:
            raise ApiError(400, "robot.notInGroup")
        msg_key, param = self._message(body, limit=MAX_GROUP_PARAM_BYTES)
        key = _process_query_key()
        self._chat_messages[group.open_conversation_id].append(ChatMessage(
            group.open_conversation_id, msg_key, {**param, "processQueryKey": key},
            self._clock(), group.members))
        log.info("→ 群「%s」  %s", group.title, describe(msg_key, param))
        await self._recorded()
        return {"processQueryKey": key}

    def _message(self, body: dict[str, Any], limit: int | None) -> tuple[str, dict[str, Any]]:
        """msgKey and the parsed msgParam, which must be a JSON *string* (§8.6)."""
        msg_key = str(body.get("msgKey") or "")
        if msg_key not in MSG_KEYS:
            raise ApiError(400, "invalidParameter.msgKey")
        raw = body.get("msgParam")
        if not isinstance(raw, str):
            raise ApiError(400, "invalidParameter.msgParam", "msgParam须为JSON字符串")
        if limit is not None and len(raw.encode()) > limit:
            raise ApiError(400, "invalidParameter.msgParam", f"msgParam超过{limit}字节")
        try:
            param = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalidParameter.msgParam", "msgParam不是JSON") from None
        if not isinstance(param, dict):
            raise ApiError(400, "invalidParameter.msgParam", "msgParam须为JSON对象")
        missing = [name for name in MSG_KEYS[msg_key] if not isinstance(param.get(name), str)]
        if missing:
            raise ApiError(400, "invalidParameter.msgParam", f"msgParam缺少{'、'.join(missing)}")
        self._check_param(msg_key, param)
        return msg_key, param

    def _check_param(self, msg_key: str, param: dict[str, Any]) -> None:
        """The checks that catch our own rendering bugs early."""
        if msg_key == "sampleMarkdown" and len(param["text"].encode()) > MAX_MARKDOWN_BYTES:
            raise ApiError(400, "invalidParameter.msgParam",
                           f"markdown正文超过{MAX_MARKDOWN_BYTES}字节")
        media_id = {"sampleImageMsg": param.get("photoURL"),
                    "sampleFile": param.get("mediaId")}.get(msg_key)
        if media_id is None or str(media_id).startswith(("http://", "https://")):
            return
        if media_id not in self.media:
            raise ApiError(400, "invalidParameter.msgParam", f"媒体文件{media_id}不存在")

    # -- API: files people sent -----------------------------------------------------------

    async def _download_url(self, request: web.Request) -> dict[str, Any]:
        body = await _json_body(request)
        self._check_robot(body)
        media = self._download_codes.get(str(body.get("downloadCode") or ""))
        if media is None:
            raise ApiError(400, "invalidParameter.downloadCode")
        token = secrets.token_urlsafe(24)
        self._links[token] = (media, self._clock() + LINK_TTL)
        return {"downloadUrl": f"{self.base_url}/download/{token}"}

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """The temporary download URL: the bytes for a minute, then the store's 403."""
        self.calls["download"] = self.calls.get("download", 0) + 1
        link = self._links.get(request.match_info["token"])
        if link is None or self._clock() >= link[1]:
            return web.Response(status=403, content_type="application/xml",
                                text="<Error><Code>AccessDenied</Code>"
                                     "<Message>Request has expired.</Message></Error>")
        media = link[0]
        return web.Response(body=media.data, content_type=media.content_type)

    def _register_file(self, data: bytes, content_type: str, filename: str) -> tuple[str, str]:
        """A downloadCode (messageFiles/download takes it) and a pictureDownloadCode (it does
        not)."""
        code = secrets.token_urlsafe(48)
        self._download_codes[code] = Media(data, content_type, filename, _now_ms())
        return code, secrets.token_urlsafe(48)

    # -- API: cards -----------------------------------------------------------------------

    async def _create_card(self, request: web.Request) -> dict[str, Any]:
        body = await _json_body(request)
        out_track_id = str(body.get("outTrackId") or "")
        template_id = str(body.get("cardTemplateId") or "")
        if not out_track_id:
            raise ApiError(400, "invalidParameter.outTrackId")
        if not template_id:
            raise ApiError(400, "invalidParameter.cardTemplateId")
        card_data = body.get("cardData") or {}
        params = _param_map(card_data.get("cardParamMap", {}) if isinstance(card_data, dict)
                            else None)
        spaces = _spaces(body.get("openSpaceId"))
        self._check_deliver_models(body, {kind for kind, _ in spaces})
        if out_track_id in self._cards:
            raise ApiError(400, "card.outTrackIdExists")     # single-use, as WeCom's task_id
        card = SimCard(out_track_id, template_id, dict(params))
        self._cards[out_track_id] = card
        created = {"outTrackId": out_track_id, "cardTemplateId": template_id,
                   "cardParamMap": dict(params)}
        now = self._clock()
        results = [self._deliver_card(card, created, kind, space, now) for kind, space in spaces]
        await self._recorded()
        return {"success": True,
                "result": {"outTrackId": out_track_id, "deliverResults": results}}

    def _check_deliver_models(self, body: dict[str, Any], kinds: set[str]) -> None:
        robot_model = body.get("imRobotOpenDeliverModel")
        if "IM_ROBOT" in kinds:
            if not isinstance(robot_model, dict) or robot_model.get("spaceType") != "IM_ROBOT":
                raise ApiError(400, "invalidParameter.imRobotOpenDeliverModel")
            if robot_model.get("robotCode", self.robot_code) != self.robot_code:
                raise ApiError(400, "invalidParameter.robotCode")
        group_model = body.get("imGroupOpenDeliverModel")
        if "IM_GROUP" in kinds:
            if not isinstance(group_model, dict) or "robotCode" not in group_model:
                raise ApiError(400, "invalidParameter.imGroupOpenDeliverModel")
            self._check_robot(group_model)

    def _deliver_card(self, card: SimCard, created: dict[str, Any], kind: str, space: str,
                      now: float) -> dict[str, Any]:
        """One space of a createAndDeliver; a space fails alone."""
        result = {"spaceType": kind, "spaceId": space, "success": False, "errorMsg": ""}
        if kind == "IM_ROBOT":
            if space not in self.users:
                return result | {"errorMsg": "user not found"}
            card.recipients.append(space)
            self._deliver(Delivered(space, "card", created, now))
            return result | {"success": True}
        group = self.groups.get(space)
        if group is None:
            return result | {"errorMsg": "group not found"}
        if not group.robot:
            return result | {"errorMsg": "robot not in group"}
        card.groups.append(space)
        self._chat_messages[space].append(ChatMessage(space, "card", created, now, group.members))
        log.info("→ 群「%s」  %s", group.title, describe("card", created))
        return result | {"success": True}

    async def _update_card(self, request: web.Request) -> dict[str, Any]:
        body = await _json_body(request)
        card = self._cards.get(str(body.get("outTrackId") or ""))
        if card is None:
            raise ApiError(400, "card.instanceNotExist")
        options = body.get("cardUpdateOptions")
        options = options if isinstance(options, dict) else {}
        _apply_update(card, body, public_by_key=options.get("updateCardDataByKey") is True,
                      private_by_key=options.get("updatePrivateDataByKey") is True)
        self.card_updates.append(CardUpdated(card.out_track_id, body, self._clock()))
        log.info("卡片 %s 已更新：%s", card.out_track_id,
                 json.dumps(card.param_map, ensure_ascii=False))
        await self._recorded()
        return {"success": True}

    # -- API: old style -------------------------------------------------------------------

    # -- old-style API: scene groups (场景群), the groups an app creates and keeps ----------------

    async def _create_scene_group(self, request: web.Request) -> dict[str, Any]:
        """`uuid` makes the create idempotent: the same uuid answers the group made before.
        The template's robot (ours) is in every scene group made from it."""
        body = await _json_body(request)
        template, owner = str(body.get("template_id") or ""), str(body.get("owner_user_id") or "")
        if not template or not body.get("title") or owner not in self.users:
            raise OapiError(40035)
        uuid_ = str(body.get("uuid") or "")
        if uuid_ in self._scene_uuids:
            cid = self._scene_uuids[uuid_]
            return {"result": {"open_conversation_id": cid, "chat_id": "chat" + cid[3:15]}}
        members = [m for m in str(body.get("user_ids") or "").split(",") if m in self.users]
        cid = "cid" + secrets.token_urlsafe(24)
        self.groups[cid] = Group(cid, str(body["title"]), tuple(dict.fromkeys([owner, *members])),
                                 True, owner, template)
        self._chat_messages.setdefault(cid, [])
        if uuid_:
            self._scene_uuids[uuid_] = cid
        await self._recorded()
        return {"result": {"open_conversation_id": cid, "chat_id": "chat" + cid[3:15]}}

    async def _scene_members(self, request: web.Request, *, add: bool) -> dict[str, Any]:
        body = await _json_body(request)
        group = self._scene_group(body)
        ids = [m for m in str(body.get("user_ids") or "").split(",") if m]
        members = ([*group.members, *(m for m in ids if m in self.users)] if add
                   else [m for m in group.members if m not in ids])
        self.groups[group.open_conversation_id] = replace(group,
                                                          members=tuple(dict.fromkeys(members)))
        await self._recorded()
        return {}

    async def _update_scene_group(self, request: web.Request) -> dict[str, Any]:
        body = await _json_body(request)
        group = self._scene_group(body)
        owner = str(body.get("owner_user_id") or group.owner)
        if owner not in self.users:
            raise OapiError(40035)
        self.groups[group.open_conversation_id] = replace(
            group, owner=owner, members=tuple(dict.fromkeys([owner, *group.members])))
        await self._recorded()
        return {}

    def _scene_group(self, body: dict[str, Any]) -> Group:
        group = self.groups.get(str(body.get("open_conversation_id") or ""))
        if group is None or not group.template_id:
            raise OapiError(40035)
        return group

    async def _upload(self, request: web.Request) -> dict[str, Any]:
        kind, part, data = await base.read_upload(request, UPLOADS)
        media_id = self.add_media(data, part.content_type, part.filename, kind)
        return {"type": kind, "media_id": media_id, "created_at": self.media[media_id].created_at}

    async def _session_reply(self, request: web.Request) -> dict[str, Any]:
        """A reply through the message's sessionWebhook: no token, custom-robot JSON (§7.1)."""
        session = self._sessions.get(request.query.get("session", ""))
        if session is None or self._clock() >= session.expires:
            raise OapiError(300001)
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise OapiError(40035) from None
        msgtype = body.get("msgtype") if isinstance(body, dict) else None
        if msgtype not in SESSION_TYPES or not isinstance(body.get(msgtype), dict):
            raise OapiError(40035, f"不支持的msgtype {msgtype!r}")
        self.session_replies.append(SessionReply(session.conversation_id, session.user,
                                                 session.nick, msgtype, body, self._clock()))
        log.info("→ %s（会话回复）  %s", session.user or session.nick,
                 json.dumps(body[msgtype], ensure_ascii=False))
        await self._recorded()
        return {}

    def _open_session(self, conversation_id: str, user: str, nick: str) -> str:
        session = secrets.token_hex(16)
        self._sessions[session] = _Session(conversation_id, user, nick,
                                           self._clock() + SESSION_TTL)
        return session

    # -- API: the Stream gateway ------------------------------------------------------------

    async def _open_connection(self, request: web.Request) -> dict[str, Any]:
        """No token: the app's own credentials buy a single-use ticket for /connect (§7.2)."""
        body = await _json_body(request)
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self._secret:
            raise ApiError(401, "InvalidAuthentication")
        ticket = self._gateway.issue_ticket(_subscriptions(body.get("subscriptions")))
        return {"endpoint": "ws" + self.base_url.removeprefix("http") + "/connect",
                "ticket": ticket}

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        self.calls["connect"] = self.calls.get("connect", 0) + 1
        return await self._gateway.connect(request)

    # -- client side: DingTalk calling our callback (HTTP mode) ----------------------------

    async def post_callback(self, body: dict[str, Any] | bytes, *, timestamp: str | None = None,
                            sign: str | None = None, omit: Iterable[str] = ()) -> CallbackResult:
        """POST anything to `callback_url`, signed as DingTalk signs unless told otherwise:
        resends, wrong signs, old timestamps, missing headers, malformed or huge bodies."""
        timestamp = timestamp or str(_now_ms())
        headers = {"Content-Type": "application/json", "timestamp": timestamp,
                   "sign": sign or callback_sign(timestamp, self._secret)}
        for name in omit:
            headers.pop(name, None)
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        # A stream, so that a huge body goes out without aiohttp's large-bytes warning.
        async with self._client().post(self._callback(), data=io.BytesIO(data),
                                       headers=headers) as resp:
            return CallbackResult(resp.status, await resp.text(),
                                  body if isinstance(body, dict) else {})


@dataclass
class _Frame:
    """A CALLBACK or EVENT frame until our client ACKs it; the same messageId and data on every
    delivery."""

    message_id: str
    kind: str
    topic: str
    payload: dict[str, Any]
    headers: dict[str, str]
    reply: asyncio.Future[CallbackResult]
    sent: int = 0
    due: float = 0.0                 # loop time from which it goes (again)

    def encode(self, connection_id: str) -> str:
        headers = {**self.headers, "connectionId": connection_id}
        return _frame_text(self.kind, headers, json.dumps(self.payload, ensure_ascii=False))


@dataclass(eq=False)
class _Connection:
    id: str
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    subscriptions: tuple[tuple[str, str], ...]

    def wants(self, kind: str, topic: str) -> bool:
        return any(k == kind and t in ("*", topic) for k, t in self.subscriptions)


@dataclass(frozen=True)
class _Ticket:
    subscriptions: tuple[tuple[str, str], ...]
    expires: float


class _Gateway:
    """The Stream side: tickets, the newest connection (the only one frames go to), and the
    frames that wait for an ACK, pushed again every ack_timeout until they get one (§7.2)."""

    def __init__(self, app_id: str, ack_timeout: float, clock: base.Clock,
                 recorded: Callable[[], Awaitable[None]],
                 on_ack: Callable[[str, dict[str, Any], str], None]) -> None:
        self.connections_opened = 0
        self.acks: list[str] = []
        self.redeliveries = 0
        self.pongs: list[str] = []
        self._app_id = app_id
        self._ack_timeout = ack_timeout
        self._clock = clock
        self._recorded = recorded
        self._on_ack = on_ack
        self._tickets: dict[str, _Ticket] = {}
        self._current: _Connection | None = None
        self._open: set[_Connection] = set()   # the current one, and any still closing
        self._frames: dict[str, _Frame] = {}   # every frame pushed, by messageId
        self._unacked: dict[str, _Frame] = {}  # in the order they were produced
        self._pings: dict[str, tuple[str, asyncio.Future[bool]]] = {}
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        self._pump_task.add_done_callback(_log_failure)

    async def stop(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        self._current = None
        await asyncio.gather(*(self._close(c, aiohttp.WSCloseCode.GOING_AWAY, b"stopping")
                               for c in list(self._open)))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def issue_ticket(self, subscriptions: tuple[tuple[str, str], ...]) -> str:
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = _Ticket(subscriptions, self._clock() + TICKET_TTL)
        return ticket

    async def connect(self, request: web.Request) -> web.StreamResponse:
        """A ticket is good once, for 90 s; the newest connection replaces the one before."""
        ticket = self._tickets.pop(request.query.get("ticket", ""), None)
        if ticket is None or self._clock() >= ticket.expires:
            raise web.HTTPForbidden(text="invalid ticket")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(secrets.token_hex(12), ws, request.transport, ticket.subscriptions)
        previous, self._current = self._current, conn
        self._open.add(conn)
        self.connections_opened += 1
        log.info("Stream 连接 %s 已建立", conn.id)
        if previous is not None:
            self._spawn(self._close(previous, aiohttp.WSCloseCode.GOING_AWAY, b"replaced"))
        self._wake.set()
        await self._recorded()
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await self._on_reply(message.data)
        finally:
            self._open.discard(conn)
            if self._current is conn:
                self._current = None
            await self._recorded()
        return ws

    def push(self, kind: FrameKind, topic: str, payload: dict[str, Any]) -> _Frame:
        message_id = secrets.token_hex(16)
        headers = {"appId": self._app_id, "contentType": "application/json",
                   "messageId": message_id, "time": str(_now_ms()), "topic": topic}
        if kind == "EVENT":
            headers |= {"eventType": topic, "eventId": secrets.token_hex(16),
                        "eventBornTime": headers["time"]}
        frame = _Frame(message_id, kind, topic, payload, headers,
                       asyncio.get_running_loop().create_future())
        self._frames[message_id] = frame
        self._unacked[message_id] = frame
        self._wake.set()
        return frame

    async def answered(self, frame: _Frame, timeout: float) -> CallbackResult:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(frame.reply)
        except TimeoutError:
            raise TimeoutError(f"no answer to {frame.topic} frame {frame.message_id} within "
                               f"{timeout} s ({self.connections_opened} connections opened, "
                               f"{'one' if self._current else 'none'} current)") from None

    def drop(self) -> None:
        conn = self._require_current()
        self._current = None
        if conn.transport is not None:
            conn.transport.abort()
        log.info("Stream 连接 %s 被切断", conn.id)

    def silence(self) -> None:
        conn = self._require_current()
        self._current = None
        if conn.transport is not None:
            conn.transport.pause_reading()
        log.info("Stream 连接 %s 不再应答", conn.id)

    async def disconnect(self) -> None:
        """The frame, then the close a moment later; the connection gets no more frames."""
        conn = self._require_current()
        self._current = None
        await self._send_system(conn, "disconnect", {"reason": "server restarting"})
        self._spawn(self._close_later(conn))

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109
        conn = self._require_current()
        opaque, message_id = secrets.token_hex(8), secrets.token_hex(16)
        echoed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pings[message_id] = (opaque, echoed)
        try:
            await self._send_system(conn, "ping", {"opaque": opaque}, message_id)
            async with asyncio.timeout(timeout):
                return await echoed
        except TimeoutError:
            return False
        finally:
            self._pings.pop(message_id, None)

    def _require_current(self) -> _Connection:
        if self._current is None:
            raise RuntimeError("no Stream connection is open")
        return self._current

    async def _send_system(self, conn: _Connection, topic: str, data: dict[str, str],
                           message_id: str = "") -> None:
        headers = {"contentType": "application/json",
                   "messageId": message_id or secrets.token_hex(16),
                   "time": str(_now_ms()), "topic": topic}
        await conn.ws.send_str(_frame_text("SYSTEM", headers, json.dumps(data)))

    async def _on_reply(self, text: str) -> None:
        """An ACK, another answer to a frame, or a ping's echo."""
        try:
            reply = json.loads(text)
            message_id = str(reply["headers"]["messageId"])
            code, data = int(reply["code"]), str(reply.get("data") or "")
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable reply on the Stream connection: %.200s", text)
            return
        if message_id in self._pings:
            self._on_echo(message_id, data)
        elif (frame := self._frames.get(message_id)) is not None:
            self._on_answer(frame, code, data)
        await self._recorded()

    def _on_echo(self, message_id: str, data: str) -> None:
        opaque, echoed = self._pings[message_id]
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(data).get("opaque") == opaque:
                self.pongs.append(opaque)
        if not echoed.done():
            echoed.set_result(opaque in self.pongs)

    def _on_answer(self, frame: _Frame, code: int, data: str) -> None:
        if code == 200:
            self.acks.append(frame.message_id)
            if self._unacked.pop(frame.message_id, None) is not None:
                self._on_ack(frame.topic, frame.payload, data)
        if not frame.reply.done():
            frame.reply.set_result(CallbackResult(code, data, frame.payload, frame.message_id,
                                                  frame.topic))

    async def _pump(self) -> None:
        """The one sender of frames: in order, on the current connection, each again after
        ack_timeout until ACKed; a frame nobody could take waits for the next connection."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            for frame in list(self._unacked.values()):
                if (conn := self._current) is None:
                    break
                await self._send_due(conn, frame, now)
            waits = [f.due - now for f in self._unacked.values() if f.due > now]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(waits, default=None)):
                    await self._wake.wait()

    async def _send_due(self, conn: _Connection, frame: _Frame, now: float) -> None:
        """Send `frame` if it is due, still unacked and `conn` subscribed to it."""
        if frame.due > now or frame.message_id not in self._unacked \
                or not conn.wants(frame.kind, frame.topic):
            return
        try:
            await conn.ws.send_str(frame.encode(conn.id))
        except ConnectionError:
            if self._current is conn:
                self._current = None
            return
        frame.sent += 1
        frame.due = now + self._ack_timeout
        if frame.sent > 1:
            self.redeliveries += 1
            log.info("Stream 重发 %s（第 %d 次）", frame.message_id, frame.sent)

    async def _close_later(self, conn: _Connection) -> None:
        await asyncio.sleep(DISCONNECT_GRACE)
        await self._close(conn, aiohttp.WSCloseCode.OK, b"disconnect")

    async def _close(self, conn: _Connection, code: int, reason: bytes) -> None:
        """Close politely, or drop the line if our client does not answer the close."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(1.0):
                await conn.ws.close(code=code, message=reason)
        if not conn.ws.closed and conn.transport is not None:
            conn.transport.abort()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


class SimUser:
    """Someone writing to the robot in a 1:1 chat; each action is one delivery of the JSON
    DingTalk sends (§7.1), as a Stream frame or an HTTP callback."""

    def __init__(self, sim: DingTalkSimulator, user_id: str, nick: str, corp_id: str) -> None:
        self.sim = sim
        self.user_id = user_id
        self.nick = nick
        self.corp_id = corp_id
        seed = user_id or f"external:{nick}"
        self.sender_id = LWCP + _opaque(sim.robot_code, "sender", seed)
        self.conversation_id = "cid" + _opaque(sim.robot_code, "conversation", seed)

    async def says(self, text: str, *, wait: bool = True,
                   timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """DingTalk puts a space before the text (§7.1)."""
        return await self._message("text", {"text": {"content": " " + text}}, wait, timeout)

    async def sends_photo(self, data: bytes, content_type: str = "image/jpeg", *,
                          wait: bool = True,
                          timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        return await self._message("picture", {"content": self._picture(data, content_type)},
                                   wait, timeout)

    async def sends_rich_text(self, *parts: str | bytes, wait: bool = True,
                              timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """Text and pictures in one message: a str is text, bytes a JPEG."""
        rich = [{"text": p} if isinstance(p, str)
                else {"type": "picture", **self._picture(p, "image/jpeg")} for p in parts]
        return await self._message("richText", {"content": {"richText": rich}}, wait, timeout)

    async def sends_audio(self, recognition: str = "", *, wait: bool = True,
                          timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """A voice message with DingTalk's speech recognition ("" when it heard nothing)."""
        code, _ = self.sim._register_file(b"#!AMR\n" + bytes(64), "audio/amr", "voice.amr")
        content = {"downloadCode": code, "recognition": recognition,
                   "duration": AUDIO_DURATION_MS}
        return await self._message("audio", {"content": content}, wait, timeout)

    async def clicks(self, out_track_id: str, params: dict[str, str], action_id: str = "act",
                     *, wait: bool = True,
                     timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """A card button; allowed on any card, even one never sent to this person or never
        created (a forged callback): refusing it is the service's job."""
        content = {"cardPrivateData": {"actionIds": [action_id], "params": params}}
        payload = {"outTrackId": out_track_id, "userId": self.user_id,
                   "corpId": self.sim.corp_id, "type": "actionCallback",
                   "content": json.dumps(content, ensure_ascii=False), "extension": "{}"}
        return await self.sim.send(payload, topic=CARD_TOPIC, wait=wait, timeout=timeout)

    async def resend(self, previous: CallbackResult, *, wait: bool = True,
                     timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        """The same message again (same msgId): DingTalk's redelivery."""
        return await self.sim.send(previous.payload, topic=previous.topic, wait=wait,
                                   timeout=timeout)

    def _picture(self, data: bytes, content_type: str) -> dict[str, str]:
        extension = "png" if content_type == "image/png" else "jpg"
        code, picture_code = self.sim._register_file(data, content_type, f"photo.{extension}")
        return {"downloadCode": code, "pictureDownloadCode": picture_code}

    async def _message(self, msgtype: str, fields: dict[str, Any], wait: bool,
                       timeout: float) -> CallbackResult:  # noqa: ASYNC109
        now = _now_ms()
        session = self.sim._open_session(self.conversation_id, self.user_id, self.nick)
        payload = {
            "conversationId": self.conversation_id, "chatbotCorpId": self.sim.corp_id,
            "chatbotUserId": self.sim.chatbot_user_id, "msgId": "msg" + secrets.token_urlsafe(18),
            "senderNick": self.nick, "isAdmin": False, "senderStaffId": self.user_id,
            "sessionWebhookExpiredTime": now + int(SESSION_TTL * 1000), "createAt": now,
            "senderCorpId": self.corp_id, "conversationType": "1", "senderId": self.sender_id,
            "sessionWebhook": f"{self.sim.base_url}/robot/sendBySession?session={session}",
            "robotCode": self.sim.robot_code, "msgtype": msgtype, **fields,
        }
        return await self.sim.send(payload, wait=wait, timeout=timeout)


def callback_sign(timestamp: str, secret: str) -> str:
    """Base64(HMAC-SHA256(key=appSecret, msg=timestamp + "\\n" + appSecret)) (§7.1)."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


LABELS = {"sampleText": "文本", "sampleMarkdown": "Markdown", "sampleImageMsg": "图片",
          "sampleLink": "链接", "sampleActionCard": "卡片消息", "sampleFile": "文件",
          "card": "互动卡片"}


def describe(msgtype: str, body: dict[str, Any]) -> str:
    """One readable line per message, for the demo console and failing tests' logs."""
    label = LABELS.get(msgtype, msgtype)
    if msgtype == "sampleText":
        return f"[{label}] {body.get('content', '')}"
    if msgtype in ("sampleMarkdown", "sampleActionCard"):
        return f"[{label}] {body.get('title', '')} — {body.get('text', '')}"
    if msgtype == "card":
        params = json.dumps(body.get("cardParamMap", {}), ensure_ascii=False)
        return f"[{label}] {params}  (outTrackId {body.get('outTrackId', '-')})"
    shown = {k: v for k, v in body.items() if k != "processQueryKey"}
    return f"[{label}] {json.dumps(shown, ensure_ascii=False)}"


def _card_response(data: str) -> dict[str, Any] | None:
    """The card update inside an ACK's data, {"response": {"cardData", "privateData"}}."""
    try:
        response = json.loads(data).get("response")
    except (ValueError, AttributeError):
        return None
    if not isinstance(response, dict) or not {"cardData", "privateData"} & response.keys():
        return None
    return response


def _param_map(value: object) -> dict[str, str]:
    """cardParamMap values are strings, always (§7.4)."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError(400, "invalidParameter.cardParamMap")
    return {str(k): v for k, v in value.items()}


def _apply_update(card: SimCard, update: dict[str, Any], *, public_by_key: bool,
                  private_by_key: bool) -> None:
    """Checked whole before anything changes: a bad update leaves the card as it was."""
    card_data = update.get("cardData")
    public = None if card_data is None else _param_map(
        card_data.get("cardParamMap", {}) if isinstance(card_data, dict) else None)
    private_data = update.get("privateData") or {}
    if not isinstance(private_data, dict) or not all(
            isinstance(v, dict) for v in private_data.values()):
        raise ApiError(400, "invalidParameter.privateData")
    private = {str(u): _param_map(v.get("cardParamMap", {})) for u, v in private_data.items()}
    if public is not None:
        card.param_map = {**card.param_map, **public} if public_by_key else public
    for user, params in private.items():
        mine = card.private.get(user, {})
        card.private[user] = {**mine, **params} if private_by_key else params


def _spaces(open_space_id: object) -> list[tuple[str, str]]:
    """`dtv1.card//IM_ROBOT.<userId>;IM_GROUP.<openConversationId>…` as (kind, id) pairs."""
    text = open_space_id if isinstance(open_space_id, str) else ""
    if not text.startswith("dtv1.card//"):
        raise ApiError(400, "invalidParameter.openSpaceId")
    spaces = []
    for part in text.removeprefix("dtv1.card//").split(";"):
        kind, _, space = part.partition(".")
        if kind not in ("IM_ROBOT", "IM_GROUP") or not space:
            raise ApiError(400, "invalidParameter.openSpaceId", f"无法识别的空间 {part!r}")
        spaces.append((kind, space))
    return spaces


def _subscriptions(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "invalidParameter.subscriptions")
    found = []
    for item in value:
        if not isinstance(item, dict) or item.get("type") not in FRAME_TYPES \
                or not isinstance(item.get("topic"), str):
            raise ApiError(400, "invalidParameter.subscriptions")
        found.append((str(item["type"]), str(item["topic"])))
    return tuple(found)


def _frame_text(kind: str, headers: dict[str, str], data: str) -> str:
    return json.dumps({"specVersion": "1.0", "type": kind, "headers": headers, "data": data},
                      ensure_ascii=False)


def _opaque(*parts: str) -> str:
    """A stable id that looks encrypted and tells nothing, as DingTalk's ids (§8.11)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return base64.b64encode(digest[:24]).decode()


def _process_query_key() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("DingTalk simulator task failed", exc_info=exc)


async def _json_body(request: web.Request) -> dict[str, Any]:
    return await base.json_object(request, lambda: ApiError(400, "InvalidParameter"))
