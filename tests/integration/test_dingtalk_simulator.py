"""The DingTalk simulator keeps DingTalk's promises and quirks (chat-protocols.md §7–§8) over real
HTTP and WebSocket on loopback: the other tests trust it to fail where DingTalk fails, deliver what
DingTalk delivers and push Stream frames again until they are ACKed. Our side is played here by a
bare aiohttp client and a tiny Stream client, never by the service."""

import asyncio
import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.clock import ManualClock
from simulator.dingtalk import (
    BOT_TOPIC,
    CARD_TOPIC,
    CallbackResult,
    DingTalkSimulator,
    OapiError,
)

CLIENT_ID = "dingsimclient0001"
CLIENT_SECRET = "sim-client-secret"
ROBOT_CODE = "dingsimrobot0001"
PEOPLE = ("zhangsan", "lisi", "wangwu")
JPEG = b"\xff\xd8\xff\xe0" + b"switchboard" * 10
SUBSCRIPTIONS = [{"type": "CALLBACK", "topic": BOT_TOPIC},
                 {"type": "CALLBACK", "topic": CARD_TOPIC},
                 {"type": "EVENT", "topic": "*"}]
GROUP = "cidEmergencyGroup0001=="
QUICK_ACK = 0.3        # seconds; frames not ACKed within it come again

Reply = tuple[int, dict[str, Any]]


@dataclass
class Socket:
    """Our side of a Stream connection, reduced to reading frames and answering them."""

    ws: aiohttp.ClientWebSocketResponse

    async def frame(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        message = await self.ws.receive(timeout)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def ack(self, frame: dict[str, Any], code: int = 200,
                  data: str = '{"response": null}') -> None:
        await self.ws.send_json({"code": code, "message": "OK", "data": data, "headers": {
            "messageId": frame["headers"]["messageId"], "contentType": "application/json"}})

    async def echo(self, frame: dict[str, Any]) -> None:
        """A SYSTEM ping's answer: its own data back (the opaque)."""
        await self.ack(frame, data=frame["data"])


@dataclass
class Api:
    """A bare client of the simulator, so each test sees the raw statuses and codes."""

    http: aiohttp.ClientSession
    base: str
    token: str = ""
    sockets: list[Socket] = field(default_factory=list)

    async def fetch_token(self, secret: str = CLIENT_SECRET) -> Reply:
        status, answer = await self.post("oauth2/accessToken",
                                         {"appKey": CLIENT_ID, "appSecret": secret}, auth=False)
        self.token = answer.get("accessToken", self.token)
        return status, answer

    async def post(self, path: str, body: dict[str, Any], *, auth: bool = True,
                   method: str = "POST") -> Reply:
        headers = {}
        if auth:
            if not self.token:
                await self.fetch_token()
            headers["x-acs-dingtalk-access-token"] = self.token
        async with self.http.request(method, f"{self.base}/v1.0/{path}", json=body,
                                     headers=headers) as resp:
            return resp.status, await resp.json()

    async def send(self, users: list[str], msg_key: str = "sampleText",
                   param: dict[str, Any] | str | None = None, **extra: Any) -> Reply:
        raw = param if isinstance(param, str) else json.dumps(param or {"content": "请注意安全"})
        return await self.post("robot/oToMessages/batchSend", {
            "robotCode": ROBOT_CODE, "userIds": users, "msgKey": msg_key, "msgParam": raw,
            **extra})

    async def send_card(self, out_track_id: str, *spaces: str,
                        params: dict[str, Any] | None = None, **extra: Any) -> Reply:
        return await self.post("card/instances/createAndDeliver", {
            "cardTemplateId": "hazard-review.schema", "outTrackId": out_track_id,
            "cardData": {"cardParamMap": params or {"title": "隐患复查", "status": "pending"}},
            "callbackType": "STREAM", "openSpaceId": "dtv1.card//" + ";".join(spaces),
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": ROBOT_CODE},
            "imGroupOpenDeliverModel": {"robotCode": ROBOT_CODE}, "userIdType": 1, **extra})

    async def upload(self, data: bytes, kind: str = "image", token: str | None = None) -> Reply:
        form = aiohttp.FormData()
        form.add_field("media", io.BytesIO(data), filename="switchboard.jpg",
                       content_type="image/jpeg")
        params = {"access_token": self.token if token is None else token, "type": kind}
        async with self.http.post(f"{self.base}/media/upload", data=form,
                                  params=params) as resp:
            return resp.status, await resp.json()

    async def connect(self, subscriptions: list[dict[str, str]] | None = None) -> Socket:
        status, opened = await self.open_connection(subscriptions)
        assert status == 200, opened
        socket = Socket(await self.http.ws_connect(opened["endpoint"],
                                                   params={"ticket": opened["ticket"]}))
        self.sockets.append(socket)
        return socket

    async def open_connection(self, subscriptions: list[dict[str, str]] | None = None,
                              secret: str = CLIENT_SECRET) -> Reply:
        return await self.post("gateway/connections/open", {
            "clientId": CLIENT_ID, "clientSecret": secret,
            "subscriptions": SUBSCRIPTIONS if subscriptions is None else subscriptions,
            "ua": "safetybot-test", "localIp": "127.0.0.1"}, auth=False)


MakeSim = Callable[..., Awaitable[DingTalkSimulator]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))


@pytest.fixture
async def make_sim(clock: ManualClock) -> AsyncIterator[MakeSim]:
    """Simulators with options of the test's own (a short ack_timeout, HTTP mode...)."""
    started: list[DingTalkSimulator] = []

    async def make(**options: Any) -> DingTalkSimulator:
        sim = DingTalkSimulator(CLIENT_ID, CLIENT_SECRET, ROBOT_CODE, PEOPLE,
                                clock=clock.seconds, **options)
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(make_sim: MakeSim) -> DingTalkSimulator:
    return await make_sim()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(sim: DingTalkSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    client = Api(http, sim.base_url)
    yield client
    for socket in client.sockets:
        await socket.ws.close()


def data_of(frame: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(frame["data"])
    return payload


async def acked(socket: Socket, action: Awaitable[CallbackResult]
                ) -> tuple[dict[str, Any], CallbackResult]:
    """A person's action while our side reads its frame and ACKs it."""
    task = asyncio.ensure_future(action)
    frame = await socket.frame()
    await socket.ack(frame)
    return frame, await task


# -- tokens ------------------------------------------------------------------------------------


async def test_the_token_is_reused_while_valid_and_replaced_after_expiry(
        sim: DingTalkSimulator, api: Api, clock: ManualClock) -> None:
    _, first = await api.fetch_token()
    clock.advance(3600)
    _, second = await api.fetch_token()
    assert first["accessToken"] == second["accessToken"]
    assert (first["expireIn"], second["expireIn"]) == (7200, 3600)
    assert sim.token_fetches == 2
    api.token = first["accessToken"]
    assert (await api.send(["zhangsan"]))[0] == 200

    clock.advance(3600)
    status, answer = await api.send(["zhangsan"])
    assert (status, answer["code"]) == (401, "InvalidAuthentication")
    assert answer["message"] and answer["requestid"]
    _, renewed = await api.fetch_token()
    assert renewed["accessToken"] != first["accessToken"]
    assert (await api.send(["zhangsan"]))[0] == 200
    api.token = first["accessToken"]
    assert (await api.send(["zhangsan"]))[0] == 401            # the old one stays dead
    api.token = "forged"
    assert (await api.send(["zhangsan"]))[0] == 401


async def test_wrong_secret_and_missing_token(api: Api) -> None:
    status, answer = await api.fetch_token(secret="wrong")
    assert (status, answer["code"]) == (400, "invalidClientIdOrSecret")
    status, answer = await api.post("robot/oToMessages/batchSend", {}, auth=False)
    assert (status, answer["code"]) == (401, "InvalidAuthentication")


async def test_expire_tokens_invalidates_early(sim: DingTalkSimulator, api: Api) -> None:
    assert (await api.send(["zhangsan"]))[0] == 200
    sim.expire_tokens()
    assert (await api.send(["zhangsan"]))[0] == 401
    api.token = ""
    assert (await api.send(["zhangsan"]))[0] == 200
    assert sim.token_fetches == 2


# -- robot messages ----------------------------------------------------------------------------


async def test_batch_send_delivers_the_parsed_param_and_lists_the_unknown(
        sim: DingTalkSimulator, api: Api) -> None:
    sim.remove_user("wangwu")                                  # left the company
    markdown = {"title": "整改提醒", "text": "**今天**到期"}
    status, answer = await api.send(["zhangsan", "ghost", "wangwu", "lisi", "zhangsan"],
                                    "sampleMarkdown", markdown)
    assert status == 200
    assert answer["invalidStaffIdList"] == ["ghost", "wangwu"]
    assert answer["flowControlledStaffIdList"] == []
    assert [m.user for m in sim.delivered] == ["zhangsan", "lisi"]
    [message] = sim.messages_for("zhangsan")
    assert message.msgtype == "sampleMarkdown"
    assert message.body == {"title": "整改提醒", "text": "**今天**到期",
                            "processQueryKey": answer["processQueryKey"]}
    assert sim.messages_for("ZhangSan") == []                  # ids are not lower-cased
    _, nobody = await api.send(["ghost"])
    assert (nobody["invalidStaffIdList"], len(sim.delivered)) == (["ghost"], 2)


async def test_batch_send_refuses_what_dingtalk_refuses(api: Api) -> None:
    async def code(users: list[str] | None = None, msg_key: str = "sampleText",
                   param: dict[str, Any] | str | None = None, **extra: Any) -> str:
        status, answer = await api.send(["zhangsan"] if users is None else users, msg_key,
                                        param, **extra)
        assert status == 400, answer
        return str(answer["code"])

    assert await code(robotCode="someone-elses-robot") == "invalidParameter.robotCode"
    assert await code(users=[]) == "invalidParameter.userIds"
    assert await code(users=[f"u{n}" for n in range(21)]) == "invalidParameter.userIds"
    assert await code(msg_key="sampleVoicemail") == "invalidParameter.msgKey"
    assert await code(param="not json") == "invalidParameter.msgParam"
    assert await code(param="[1, 2]") == "invalidParameter.msgParam"
    assert await code(msg_key="sampleMarkdown", param={"text": "没有标题"}) == \
        "invalidParameter.msgParam"
    status, answer = await api.post("robot/oToMessages/batchSend", {
        "robotCode": ROBOT_CODE, "userIds": ["zhangsan"], "msgKey": "sampleText",
        "msgParam": {"content": "an object, not a string"}})
    assert (status, answer["code"]) == (400, "invalidParameter.msgParam")
    assert (await api.send([f"u{n}" for n in range(20)]))[0] == 200     # 20 is allowed


async def test_markdown_text_is_limited_to_5000_utf8_bytes(sim: DingTalkSimulator,
                                                           api: Api) -> None:
    text = "安" * 1666 + "ab"                                  # 4998 + 2 bytes
    assert (await api.send(["lisi"], "sampleMarkdown", {"title": "t", "text": text}))[0] == 200
    status, answer = await api.send(["lisi"], "sampleMarkdown", {"title": "t", "text": text + "c"})
    assert (status, answer["code"]) == (400, "invalidParameter.msgParam")
    assert len(sim.messages_for("lisi")) == 1


async def test_a_picture_or_file_by_media_id_must_have_been_uploaded(
        sim: DingTalkSimulator, api: Api) -> None:
    await api.fetch_token()
    media_id = (await api.upload(JPEG))[1]["media_id"]
    assert (await api.send(["lisi"], "sampleImageMsg", {"photoURL": media_id}))[0] == 200
    assert (await api.send(["lisi"], "sampleImageMsg",
                           {"photoURL": "https://example.com/a.jpg"}))[0] == 200
    status, answer = await api.send(["lisi"], "sampleImageMsg", {"photoURL": "@never-uploaded"})
    assert (status, answer["code"]) == (400, "invalidParameter.msgParam")
    status, _ = await api.send(["lisi"], "sampleFile", {"mediaId": "@nope", "fileName": "a.pdf",
                                                        "fileType": "pdf"})
    assert status == 400
    photo = sim.messages_for("lisi")[0]
    assert sim.media[photo.body["photoURL"]].data == JPEG


async def test_flow_control_names_the_user_and_delivers_nothing_to_them(
        sim: DingTalkSimulator, api: Api) -> None:
    sim.flow_control("lisi", times=2)
    for _ in range(2):
        _, answer = await api.send(["lisi", "zhangsan"])
        assert answer["flowControlledStaffIdList"] == ["lisi"]
        assert answer["invalidStaffIdList"] == []
    _, answer = await api.send(["lisi"])
    assert answer["flowControlledStaffIdList"] == []
    assert (len(sim.messages_for("lisi")), len(sim.messages_for("zhangsan"))) == (1, 2)


async def test_more_than_the_per_minute_rate_is_flow_controlled(
        make_sim: MakeSim, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    sim = await make_sim(per_user_per_minute=3)
    api = Api(http, sim.base_url)
    answers = []
    for _ in range(4):
        answers.append((await api.send(["lisi"]))[1]["flowControlledStaffIdList"])
        clock.advance(10)
    assert answers == [[], [], [], ["lisi"]]
    clock.advance(30)                                  # the first send leaves the minute
    assert (await api.send(["lisi"]))[1]["flowControlledStaffIdList"] == []
    assert len(sim.messages_for("lisi")) == 4


# -- group messages ----------------------------------------------------------------------------


async def test_group_messages_reach_a_group_the_robot_is_in(sim: DingTalkSimulator,
                                                            api: Api) -> None:
    sim.add_group(GROUP, "应急指挥群", ["lisi", "wangwu"])
    sim.add_group("cidWithoutRobot", "闲聊群", ["lisi"], robot=False)

    async def send(cid: str, param: dict[str, str], robot: str = ROBOT_CODE) -> Reply:
        return await api.post("robot/groupMessages/send", {
            "robotCode": robot, "openConversationId": cid, "msgKey": "sampleMarkdown",
            "msgParam": json.dumps(param, ensure_ascii=False)})

    status, answer = await send(GROUP, {"title": "预案启动", "text": "**立即集合**"})
    assert status == 200 and answer["processQueryKey"]
    [message] = sim.chat_messages(GROUP)
    assert (message.msgtype, message.body["text"], message.members) == (
        "sampleMarkdown", "**立即集合**", ("lisi", "wangwu"))
    assert sim.messages_for("lisi") == []                     # a group message, not a 1:1
    assert (await send("cidNowhere", {"title": "t", "text": "x"}))[1]["code"] == \
        "invalidParameter.openConversationId"
    assert (await send("cidWithoutRobot", {"title": "t", "text": "x"}))[1]["code"] == \
        "robot.notInGroup"
    assert (await send(GROUP, {"title": "t", "text": "x"}, robot="other"))[1]["code"] == \
        "invalidParameter.robotCode"
    status, answer = await send(GROUP, {"title": "t", "text": "安" * 4990})   # > 15000 bytes
    assert (status, answer["code"]) == (400, "invalidParameter.msgParam")


# -- files people sent -------------------------------------------------------------------------


async def test_a_photo_downloads_through_a_url_that_lives_a_minute(
        sim: DingTalkSimulator, api: Api, clock: ManualClock) -> None:
    sent = await sim.user("zhangsan").sends_photo(JPEG, "image/png", wait=False)
    content = sent.payload["content"]

    async def download_url(code: str) -> Reply:
        return await api.post("robot/messageFiles/download",
                              {"downloadCode": code, "robotCode": ROBOT_CODE})

    status, answer = await download_url(content["downloadCode"])
    assert status == 200 and answer["downloadUrl"].startswith(sim.base_url + "/download/")
    async with api.http.get(answer["downloadUrl"]) as resp:
        assert (resp.status, resp.content_type, await resp.read()) == (200, "image/png", JPEG)
    clock.advance(61)
    async with api.http.get(answer["downloadUrl"]) as resp:
        assert resp.status == 403
    _, again = await download_url(content["downloadCode"])   # the code itself still works
    async with api.http.get(again["downloadUrl"]) as resp:
        assert await resp.read() == JPEG
    for code in ("unknown", content["pictureDownloadCode"]):
        status, answer = await download_url(code)
        assert (status, answer["code"]) == (400, "invalidParameter.downloadCode")


async def test_fail_downloads_answers_500_then_recovers(sim: DingTalkSimulator,
                                                        api: Api) -> None:
    sent = await sim.user("zhangsan").sends_audio("三号罐区有异味", wait=False)
    body = {"downloadCode": sent.payload["content"]["downloadCode"], "robotCode": ROBOT_CODE}
    sim.fail_downloads(times=2)
    statuses = [(await api.post("robot/messageFiles/download", body))[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert sim.calls["robot/messageFiles/download"] == 3


# -- cards -------------------------------------------------------------------------------------


async def test_one_card_instance_reaches_several_spaces_each_failing_alone(
        sim: DingTalkSimulator, api: Api) -> None:
    sim.add_group(GROUP, "应急指挥群", ["lisi", "wangwu"])
    await api.send(["lisi"], param={"content": "先到的一条"})
    status, answer = await api.send_card(
        "hz-0001-review-1", "IM_ROBOT.lisi", "IM_ROBOT.ghost", f"IM_GROUP.{GROUP}",
        "IM_GROUP.cidNowhere")
    assert status == 200 and answer["success"] is True
    assert answer["result"]["outTrackId"] == "hz-0001-review-1"
    assert [(r["spaceType"], r["spaceId"], r["success"], r["errorMsg"])
            for r in answer["result"]["deliverResults"]] == [
        ("IM_ROBOT", "lisi", True, ""), ("IM_ROBOT", "ghost", False, "user not found"),
        ("IM_GROUP", GROUP, True, ""), ("IM_GROUP", "cidNowhere", False, "group not found")]
    await api.send(["lisi"], param={"content": "后到的一条"})
    assert [m.msgtype for m in sim.messages_for("lisi")] == ["sampleText", "card", "sampleText"]
    card = sim.messages_for("lisi")[1]
    assert card.body == {"outTrackId": "hz-0001-review-1",
                         "cardTemplateId": "hazard-review.schema",
                         "cardParamMap": {"title": "隐患复查", "status": "pending"}}
    assert [m.msgtype for m in sim.chat_messages(GROUP)] == ["card"]
    assert (sim.card("hz-0001-review-1").recipients, sim.card("hz-0001-review-1").groups) == (
        ["lisi"], [GROUP])


async def test_an_out_track_id_is_single_use(sim: DingTalkSimulator, api: Api) -> None:
    assert (await api.send_card("hz-0002-review-1", "IM_ROBOT.ghost"))[0] == 200   # nobody got it
    status, answer = await api.send_card("hz-0002-review-1", "IM_ROBOT.lisi")
    assert (status, answer["code"]) == (400, "card.outTrackIdExists")
    assert sim.messages_for("lisi") == []


async def test_card_requests_dingtalk_refuses(sim: DingTalkSimulator, api: Api) -> None:
    async def code(out_track_id: str, *spaces: str, **extra: Any) -> str:
        status, answer = await api.send_card(out_track_id, *spaces, **extra)
        assert status == 400, answer
        return str(answer["code"])

    assert await code("c1", "IM_ROBOT.lisi", params={"count": 3}) == \
        "invalidParameter.cardParamMap"
    assert await code("c1", "IM_ROBOT.lisi", openSpaceId="IM_ROBOT.lisi") == \
        "invalidParameter.openSpaceId"
    assert await code("c1", "SOMEWHERE.lisi") == "invalidParameter.openSpaceId"
    assert await code("c1", "IM_ROBOT.lisi", imRobotOpenDeliverModel=None) == \
        "invalidParameter.imRobotOpenDeliverModel"
    assert await code("c1", f"IM_GROUP.{GROUP}", imGroupOpenDeliverModel={}) == \
        "invalidParameter.imGroupOpenDeliverModel"
    assert await code("c1", f"IM_GROUP.{GROUP}",
                      imGroupOpenDeliverModel={"robotCode": "other"}) == \
        "invalidParameter.robotCode"
    assert await code("", "IM_ROBOT.lisi") == "invalidParameter.outTrackId"
    # A refused request used up nothing: the same id goes through once right.
    assert (await api.send_card("c1", "IM_ROBOT.lisi"))[0] == 200
    sim.add_group("cidWithoutRobot", "闲聊群", ["lisi"], robot=False)
    _, answer = await api.send_card("c2", "IM_GROUP.cidWithoutRobot")
    assert answer["result"]["deliverResults"][0]["errorMsg"] == "robot not in group"


async def test_a_card_update_merges_by_key_and_per_person(sim: DingTalkSimulator,
                                                         api: Api) -> None:
    await api.send_card("hz-0003-review-1", "IM_ROBOT.lisi", "IM_ROBOT.wangwu",
                        params={"title": "隐患复查", "status": "pending", "note": "请复查"})
    by_key = {"updateCardDataByKey": True, "updatePrivateDataByKey": True}
    status, answer = await api.post("card/instances", {
        "outTrackId": "hz-0003-review-1", "cardData": {"cardParamMap": {"status": "approved"}},
        "privateData": {"lisi": {"cardParamMap": {"mine": "你已通过"}}},
        "cardUpdateOptions": by_key}, method="PUT")
    assert (status, answer) == (200, {"success": True})
    card = sim.card("hz-0003-review-1")
    assert card.param_map == {"title": "隐患复查", "status": "approved", "note": "请复查"}
    assert card.private == {"lisi": {"mine": "你已通过"}}
    assert card.recipients == ["lisi", "wangwu"]
    assert sim.messages_for("lisi")[0].body["cardParamMap"]["status"] == "pending"  # as created
    [updated] = sim.card_updates
    assert (updated.out_track_id, updated.body["cardData"]) == (
        "hz-0003-review-1", {"cardParamMap": {"status": "approved"}})

    await api.post("card/instances", {"outTrackId": "hz-0003-review-1",
                                      "cardData": {"cardParamMap": {"status": "closed"}}},
                   method="PUT")
    assert card.param_map == {"status": "closed"}      # not by key: the whole map replaced
    status, answer = await api.post("card/instances", {"outTrackId": "nope", "cardData": {
        "cardParamMap": {}}}, method="PUT")
    assert (status, answer["code"]) == (400, "card.instanceNotExist")
    status, answer = await api.post("card/instances", {
        "outTrackId": "hz-0003-review-1", "cardData": {"cardParamMap": {"n": 1}}}, method="PUT")
    assert (status, answer["code"]) == (400, "invalidParameter.cardParamMap")
    assert len(sim.card_updates) == 2


# -- old-style API -----------------------------------------------------------------------------


async def test_media_upload_answers_old_style(sim: DingTalkSimulator, api: Api) -> None:
    await api.fetch_token()
    status, uploaded = await api.upload(JPEG)
    assert (status, uploaded["errcode"], uploaded["errmsg"]) == (200, 0, "ok")
    assert uploaded["media_id"].startswith("@") and uploaded["type"] == "image"
    assert abs(uploaded["created_at"] / 1000 - time.time()) < 60
    assert sim.media[uploaded["media_id"]].data == JPEG
    status, bad = await api.upload(JPEG, token="forged")
    assert (status, bad["errcode"], bad["errmsg"]) == (200, 40014, "不合法的access_token")
    assert (await api.upload(JPEG, kind="sticker"))[1]["errcode"] == 40004
    assert (await api.upload(b"", kind="file"))[1]["errcode"] == 40006
    assert (await api.upload(bytes(2 * 1024 * 1024 + 1), kind="voice"))[1]["errcode"] == 40006


async def test_extra_old_style_routes_mount_before_start(
        make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    """The way simulator/contacts.py adds the contact APIs, with the token check and faults."""
    waiting = DingTalkSimulator(CLIENT_ID, CLIENT_SECRET, ROBOT_CODE, PEOPLE)

    async def list_users(request: web.Request) -> dict[str, Any]:
        if request.query.get("dept_id") == "0":
            raise OapiError(60003, "部门不存在")
        return {"result": {"userid_list": list(waiting.users)}}

    waiting.add_routes([waiting.old_style_route("GET", "topapi/user/listid", list_users)])
    async with waiting:
        api = Api(http, waiting.base_url)
        await api.fetch_token()

        async def get(**params: str) -> dict[str, Any]:
            async with http.get(f"{waiting.base_url}/topapi/user/listid",
                                params={"access_token": api.token, **params}) as resp:
                assert resp.status == 200
                return await resp.json()  # type: ignore[no-any-return]

        assert (await get())["result"]["userid_list"] == list(PEOPLE)
        assert (await get(dept_id="0"))["errcode"] == 60003
        waiting.fail_next("topapi/user/listid", 200, 90002)
        assert (await get())["errcode"] == 90002
        api.token = "forged"
        assert (await get())["errcode"] == 40014
        with pytest.raises(RuntimeError, match="before start"):
            waiting.add_routes([])


# -- sessionWebhook ----------------------------------------------------------------------------


async def test_a_session_webhook_takes_replies_for_90_minutes(
        sim: DingTalkSimulator, api: Api, clock: ManualClock) -> None:
    sent = await sim.external("王师傅").says("你好", wait=False)
    assert sent.payload["senderStaffId"] == ""
    webhook = sent.payload["sessionWebhook"]

    async def reply(body: dict[str, Any]) -> dict[str, Any]:
        async with api.http.post(webhook, json=body) as resp:
            assert resp.status == 200
            return await resp.json()  # type: ignore[no-any-return]

    assert (await reply({"msgtype": "text", "text": {"content": "请先注册"}}))["errcode"] == 0
    assert (await reply({"msgtype": "markdown",
                         "markdown": {"title": "注册", "text": "**请先注册**"}}))["errcode"] == 0
    assert (await reply({"msgtype": "interactiveCard", "card": {}}))["errcode"] == 40035
    first, second = sim.session_replies
    assert (first.user, first.nick, first.msgtype, first.body["text"]["content"]) == (
        "", "王师傅", "text", "请先注册")
    assert (second.conversation_id, second.msgtype) == (sent.payload["conversationId"],
                                                       "markdown")
    clock.advance(90 * 60)
    assert (await reply({"msgtype": "text", "text": {"content": "太晚了"}}))["errcode"] == 300001
    assert len(sim.session_replies) == 2


# -- faults ------------------------------------------------------------------------------------


async def test_fail_next_answers_the_status_and_code_then_recovers(sim: DingTalkSimulator,
                                                                   api: Api) -> None:
    await api.fetch_token()
    sim.fail_next("robot/oToMessages/batchSend", 503, "ServiceUnavailable", times=2)
    sim.fail_next("robot/oToMessages/batchSend", 429, "Throttling")
    answers = [await api.send(["zhangsan"]) for _ in range(4)]
    assert [(s, a.get("code")) for s, a in answers] == [
        (503, "ServiceUnavailable"), (503, "ServiceUnavailable"), (429, "Throttling"),
        (200, None)]
    assert answers[0][1]["requestid"]
    assert sim.calls["robot/oToMessages/batchSend"] == 4
    assert len(sim.messages_for("zhangsan")) == 1
    sim.fail_next("oauth2/accessToken", 500, "InternalError")
    assert (await api.fetch_token())[0] == 500
    sim.fail_next("media/upload", 200, 90002)
    assert (await api.upload(JPEG))[1]["errcode"] == 90002
    with pytest.raises(ValueError, match="unknown API path"):
        sim.fail_next("robot/oToMessages/batchSned", 500, "x")
    with pytest.raises(ValueError, match="errcode number"):
        sim.fail_next("media/upload", 200, "notanumber")


async def test_hang_next_carries_out_the_call_but_holds_the_answer(sim: DingTalkSimulator,
                                                                   api: Api) -> None:
    """Told by order, not by a stopwatch: the held answer is held for an hour, so the next call's
    answer, which comes at once, comes first."""
    await api.fetch_token()
    sim.hang_next("robot/oToMessages/batchSend", 3600)
    held = asyncio.create_task(api.send(["zhangsan"], param={"content": "超时的那一条"}))
    await sim.wait_for("zhangsan")                     # DingTalk did deliver it
    async with asyncio.timeout(10):                    # a guard: held, it would be an hour
        assert (await api.send(["zhangsan"]))[0] == 200
    assert not held.done()
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held


async def test_latency_is_added_to_every_answer(sim: DingTalkSimulator, api: Api) -> None:
    await api.fetch_token()
    sim.latency = 3600
    held = asyncio.create_task(api.send(["zhangsan"]))
    await sim.wait_for("zhangsan")
    sim.latency = 0
    async with asyncio.timeout(10):
        assert (await api.send(["lisi"]))[0] == 200
    assert not held.done()
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held


async def test_wait_for_returns_once_enough_arrived_and_says_what_is_missing(
        sim: DingTalkSimulator, api: Api) -> None:
    waiting = asyncio.create_task(sim.wait_for("zhangsan", count=2))
    await api.send(["zhangsan"], param={"content": "一"})
    await api.send(["zhangsan"], param={"content": "二"})
    assert [m.body["content"] for m in await waiting] == ["一", "二"]
    with pytest.raises(TimeoutError, match="lisi received 0 of 1"):
        await sim.wait_for("lisi", timeout=0.05)


# -- Stream: the gateway -----------------------------------------------------------------------


async def test_connections_open_with_the_apps_own_credentials(sim: DingTalkSimulator,
                                                              api: Api) -> None:
    status, opened = await api.open_connection()
    assert status == 200
    assert opened["endpoint"] == "ws" + sim.base_url.removeprefix("http") + "/connect"
    assert opened["ticket"]
    status, answer = await api.open_connection(secret="wrong")
    assert (status, answer["code"]) == (401, "InvalidAuthentication")
    status, answer = await api.open_connection(subscriptions=[])
    assert (status, answer["code"]) == (400, "invalidParameter.subscriptions")
    assert sim.token_fetches == 0                      # no token needed


async def test_a_ticket_is_good_once_and_for_90_seconds(sim: DingTalkSimulator, api: Api,
                                                        clock: ManualClock) -> None:
    _, opened = await api.open_connection()
    ws = await api.http.ws_connect(opened["endpoint"], params={"ticket": opened["ticket"]})
    with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
        await api.http.ws_connect(opened["endpoint"], params={"ticket": opened["ticket"]})
    assert reused.value.status == 403
    _, stale = await api.open_connection()
    clock.advance(91)
    with pytest.raises(aiohttp.WSServerHandshakeError) as expired:
        await api.http.ws_connect(stale["endpoint"], params={"ticket": stale["ticket"]})
    assert expired.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await api.http.ws_connect(stale["endpoint"], params={"ticket": "made-up"})
    assert sim.connections_opened == 1
    await ws.close()


async def test_a_message_arrives_as_a_callback_frame_and_returns_once_acked(
        sim: DingTalkSimulator, api: Api) -> None:
    socket = await api.connect()
    frame, result = await acked(socket, sim.user("zhangsan").says("3号车间 配电箱门没关"))
    assert (frame["specVersion"], frame["type"]) == ("1.0", "CALLBACK")
    headers = frame["headers"]
    assert (headers["topic"], headers["contentType"], headers["appId"]) == (
        BOT_TOPIC, "application/json", CLIENT_ID)
    assert headers["connectionId"] and abs(int(headers["time"]) / 1000 - time.time()) < 60
    assert (result.status, result.body, result.message_id) == (
        200, '{"response": null}', headers["messageId"])
    assert sim.acks == [headers["messageId"]] and sim.redeliveries == 0
    message = data_of(frame)
    assert message == result.payload
    assert (message["msgtype"], message["text"]) == ("text", {"content": " 3号车间 配电箱门没关"})
    assert (message["senderStaffId"], message["senderNick"], message["conversationType"]) == (
        "zhangsan", "zhangsan", "1")
    assert message["msgId"].startswith("msg") and message["isAdmin"] is False
    assert message["senderId"].startswith("$:LWCP_v1:$")
    assert message["chatbotUserId"].startswith("$:LWCP_v1:$")
    assert message["conversationId"].startswith("cid")
    assert (message["robotCode"], message["chatbotCorpId"], message["senderCorpId"]) == (
        ROBOT_CODE, "dingcorp0001", "dingcorp0001")
    assert message["sessionWebhook"].startswith(f"{sim.base_url}/robot/sendBySession?session=")
    assert message["sessionWebhookExpiredTime"] - message["createAt"] == 90 * 60 * 1000
    assert abs(message["createAt"] / 1000 - time.time()) < 60


async def test_pictures_rich_text_audio_and_strangers(sim: DingTalkSimulator, api: Api) -> None:
    zhangsan = sim.user("zhangsan")
    photo = (await zhangsan.sends_photo(JPEG, wait=False)).payload
    assert photo["msgtype"] == "picture"
    assert set(photo["content"]) == {"downloadCode", "pictureDownloadCode"}
    rich = (await zhangsan.sends_rich_text("配电箱", JPEG, "门没关", wait=False)).payload
    text, picture, more = rich["content"]["richText"]
    assert (rich["msgtype"], text, more) == ("richText", {"text": "配电箱"}, {"text": "门没关"})
    assert picture["type"] == "picture" and picture["downloadCode"]
    _, link = await api.post("robot/messageFiles/download",
                             {"downloadCode": picture["downloadCode"], "robotCode": ROBOT_CODE})
    async with api.http.get(link["downloadUrl"]) as resp:
        assert await resp.read() == JPEG
    voice = (await zhangsan.sends_audio("三号罐区有异味", wait=False)).payload
    assert (voice["msgtype"], voice["content"]["recognition"], voice["content"]["duration"]) == (
        "audio", "三号罐区有异味", 3000)
    assert (await zhangsan.sends_audio(wait=False)).payload["content"]["recognition"] == ""
    stranger = (await sim.external("王师傅").says("你好", wait=False)).payload
    assert (stranger["senderStaffId"], stranger["senderNick"]) == ("", "王师傅")
    assert stranger["senderCorpId"] != sim.corp_id
    assert stranger["conversationId"] != photo["conversationId"]
    again = (await zhangsan.says("再来", wait=False)).payload
    assert (again["conversationId"], again["senderId"]) == (photo["conversationId"],
                                                            photo["senderId"])
    assert len({photo["msgId"], rich["msgId"], voice["msgId"], again["msgId"]}) == 4


async def test_a_frame_not_acked_in_time_comes_again_until_acked(
        make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(ack_timeout=QUICK_ACK)
    api = Api(http, sim.base_url)
    socket = await api.connect()
    saying = asyncio.create_task(sim.user("lisi").says("收到"))
    first = await socket.frame()
    second = await socket.frame()                      # no ACK: pushed again
    assert second["headers"]["messageId"] == first["headers"]["messageId"]
    assert second["data"] == first["data"]
    await socket.ack(second)
    assert (await saying).status == 200
    assert (sim.redeliveries, sim.acks) == (1, [first["headers"]["messageId"]])
    with pytest.raises(TimeoutError):
        await socket.frame(timeout=0.5)                # acked: nothing more comes
    await socket.ws.close()


async def test_an_answer_other_than_200_is_not_an_ack(make_sim: MakeSim,
                                                      http: aiohttp.ClientSession) -> None:
    sim = await make_sim(ack_timeout=QUICK_ACK)
    socket = await Api(http, sim.base_url).connect()
    saying = asyncio.create_task(sim.user("lisi").says("收到"))
    frame = await socket.frame()
    await socket.ack(frame, code=500, data='{"status": "LATER"}')
    refused = await saying
    assert (refused.status, refused.body) == (500, '{"status": "LATER"}')
    again = await socket.frame()
    assert again["headers"]["messageId"] == frame["headers"]["messageId"]
    await socket.ack(again)
    await sim.until(lambda: len(sim.acks) == 1)
    await socket.ws.close()


async def test_frames_wait_for_a_connection_and_a_lost_ack_times_out(
        sim: DingTalkSimulator, api: Api) -> None:
    with pytest.raises(TimeoutError, match="no answer"):
        await sim.user("zhangsan").says("一", timeout=0.1)
    await sim.user("zhangsan").says("二", wait=False)
    socket = await api.connect()
    one, two = await socket.frame(), await socket.frame()
    assert [data_of(f)["text"]["content"] for f in (one, two)] == [" 一", " 二"]
    assert sim.redeliveries == 0                       # first sends, not redeliveries


async def test_the_newest_connection_replaces_the_older(sim: DingTalkSimulator,
                                                        api: Api) -> None:
    older = await api.connect()
    newer = await api.connect()
    closing = await older.ws.receive(timeout=5)
    assert (closing.type, older.ws.close_code) == (aiohttp.WSMsgType.CLOSE, 1001)
    frame, result = await acked(newer, sim.user("wangwu").says("新连接"))
    assert data_of(frame)["text"]["content"] == " 新连接" and result.status == 200
    assert sim.connections_opened == 2


async def test_a_dropped_socket_loses_its_frame_to_the_next_connection(
        make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(ack_timeout=QUICK_ACK)
    api = Api(http, sim.base_url)
    socket = await api.connect()
    saying = asyncio.create_task(sim.user("lisi").says("断线前"))
    lost = await socket.frame()
    sim.drop_socket()
    gone = await socket.ws.receive(timeout=5)
    assert gone.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert socket.ws.close_code in (None, 1006)          # no close frame came
    with pytest.raises(RuntimeError, match="no Stream connection"):
        sim.drop_socket()
    fresh = await api.connect()
    again = await fresh.frame()
    assert (again["headers"]["messageId"], again["data"]) == (lost["headers"]["messageId"],
                                                             lost["data"])
    assert again["headers"]["connectionId"] != lost["headers"]["connectionId"]
    await fresh.ack(again)
    assert (await saying).status == 200 and sim.redeliveries == 1
    await fresh.ws.close()


async def test_disconnect_comes_as_a_system_frame_then_the_close(sim: DingTalkSimulator,
                                                                 api: Api) -> None:
    socket = await api.connect()
    await sim.send_disconnect()
    frame = await socket.frame()
    assert (frame["type"], frame["headers"]["topic"]) == ("SYSTEM", "disconnect")
    await socket.ack(frame, data=frame["data"])        # as the SDK does; no harm
    await sim.user("zhangsan").says("断开期间", wait=False)
    closed = await socket.ws.receive(timeout=5)        # ~1 s later, and no frame before it
    assert closed.type is aiohttp.WSMsgType.CLOSE
    fresh = await api.connect()
    frame = await fresh.frame()
    assert data_of(frame)["text"]["content"] == " 断开期间"


async def test_a_ping_is_answered_with_its_opaque(sim: DingTalkSimulator, api: Api) -> None:
    socket = await api.connect()

    async def answer(reply: Callable[[dict[str, Any]], Awaitable[None]]) -> dict[str, Any]:
        frame = await socket.frame()
        await reply(frame)
        return frame

    pinging = asyncio.create_task(sim.ping())
    frame = await answer(socket.echo)
    assert await pinging is True
    assert (frame["type"], frame["headers"]["topic"]) == ("SYSTEM", "ping")
    assert sim.pongs == [data_of(frame)["opaque"]]

    pinging = asyncio.create_task(sim.ping())
    await answer(lambda f: socket.ack(f, data='{"opaque": "not-the-one"}'))
    assert await pinging is False
    silent = asyncio.create_task(sim.ping(timeout=0.1))
    await socket.frame()
    assert await silent is False
    assert len(sim.pongs) == 1
    assert sim.acks == [] and sim.redeliveries == 0    # pings are neither ACKs nor redelivered


async def test_events_need_an_ack_too(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(ack_timeout=QUICK_ACK)
    socket = await Api(http, sim.base_url).connect()
    sending = asyncio.create_task(sim.send_event("user_leave_org", {"userId": ["wangwu"]}))
    frame = await socket.frame()
    assert (frame["type"], frame["headers"]["topic"], frame["headers"]["eventType"]) == (
        "EVENT", "user_leave_org", "user_leave_org")
    assert data_of(frame) == {"userId": ["wangwu"]}
    again = await socket.frame()
    assert again["headers"]["messageId"] == frame["headers"]["messageId"]
    await socket.ack(again, data='{"status": "SUCCESS", "message": "ok"}')
    assert (await sending).status == 200 and sim.redeliveries == 1
    await socket.ws.close()


async def test_a_connection_gets_only_the_topics_it_subscribed_to(
        sim: DingTalkSimulator, api: Api) -> None:
    socket = await api.connect([{"type": "CALLBACK", "topic": BOT_TOPIC}])
    await sim.user("lisi").clicks("hz-0004-review-1", {"decision": "approve"}, wait=False)
    frame, result = await acked(socket, sim.user("lisi").says("只要消息"))
    assert frame["headers"]["topic"] == BOT_TOPIC and result.status == 200
    everything = await api.connect()                   # subscribes to cards too
    click = await everything.frame()
    assert click["headers"]["topic"] == CARD_TOPIC


async def test_a_card_click_and_an_ack_that_updates_the_card(sim: DingTalkSimulator,
                                                             api: Api) -> None:
    await api.send_card("hz-0005-review-1", "IM_ROBOT.lisi")
    socket = await api.connect()
    clicking = asyncio.create_task(
        sim.user("lisi").clicks("hz-0005-review-1", {"decision": "approve"}, "review"))
    frame = await socket.frame()
    assert frame["headers"]["topic"] == CARD_TOPIC
    click = data_of(frame)
    assert (click["outTrackId"], click["userId"], click["corpId"], click["extension"]) == (
        "hz-0005-review-1", "lisi", "dingcorp0001", "{}")
    assert json.loads(click["content"]) == {
        "cardPrivateData": {"actionIds": ["review"], "params": {"decision": "approve"}}}
    update = {"cardData": {"cardParamMap": {"status": "approved"}},
              "privateData": {"lisi": {"cardParamMap": {"mine": "已通过"}}}}
    await socket.ack(frame, data=json.dumps({"response": update}))
    assert (await clicking).status == 200
    card = sim.card("hz-0005-review-1")
    assert (card.param_map["status"], card.private["lisi"]) == ("approved", {"mine": "已通过"})
    assert card.param_map["title"] == "隐患复查"         # merged by key
    [updated] = sim.card_updates
    assert updated.body == update
    # A click on a card never created, or not sent to the clicker, is delivered all the same.
    _, forged = await acked(socket, sim.user("wangwu").clicks("no-such-card", {}))
    assert forged.status == 200 and len(sim.card_updates) == 1


async def test_resend_delivers_the_same_message_in_a_new_frame(sim: DingTalkSimulator,
                                                               api: Api) -> None:
    socket = await api.connect()
    first_frame, first = await acked(socket, sim.user("zhangsan").says("同一条"))
    again_frame, _ = await acked(socket, sim.user("zhangsan").resend(first))
    assert data_of(again_frame)["msgId"] == data_of(first_frame)["msgId"]
    assert again_frame["data"] == first_frame["data"]
    assert again_frame["headers"]["messageId"] != first_frame["headers"]["messageId"]
    click_frame, click = await acked(socket, sim.user("lisi").clicks("c", {"a": "b"}))
    resent_click, _ = await acked(socket, sim.user("lisi").resend(click))
    assert resent_click["headers"]["topic"] == CARD_TOPIC
    assert resent_click["data"] == click_frame["data"]


# -- HTTP callback mode ------------------------------------------------------------------------


@dataclass
class Receiver:
    """Our side of the HTTP callback, reduced to checking the sign as §7.1 says."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        found.received.append((dict(request.headers), body))
        timestamp = request.headers.get("timestamp", "")
        expected = base64.b64encode(hmac.new(CLIENT_SECRET.encode(),
                                             f"{timestamp}\n{CLIENT_SECRET}".encode(),
                                             hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(request.headers.get("sign", ""), expected):
            raise web.HTTPForbidden()
        return web.json_response({})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.add_routes([web.post("/dingtalk/callback", receive)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/dingtalk/callback"
    yield found
    await runner.cleanup()


async def test_http_mode_posts_signed_json(make_sim: MakeSim, receiver: Receiver) -> None:
    sim = await make_sim(mode="http")
    sim.callback_url = receiver.url
    said = await sim.user("zhangsan").says("配电箱门没关")
    clicked = await sim.user("lisi").clicks("hz-0006-review-1", {"decision": "reject"})
    assert (said.status, said.body, clicked.status) == (200, "{}", 200)
    (headers, body), (click_headers, click_body) = receiver.received
    assert headers["Content-Type"] == "application/json"
    assert abs(int(headers["timestamp"]) / 1000 - time.time()) < 60
    message = json.loads(body)
    assert message == said.payload and message["text"]["content"] == " 配电箱门没关"
    assert json.loads(click_body)["outTrackId"] == "hz-0006-review-1"
    assert click_headers["sign"] and clicked.topic == CARD_TOPIC
    assert (await sim.user("zhangsan").resend(said)).status == 200
    assert json.loads(receiver.received[2][1])["msgId"] == message["msgId"]
    with pytest.raises(RuntimeError, match="stream mode only"):
        await sim.send_event("user_leave_org", {})


async def test_post_callback_sends_whatever_a_bad_input_test_needs(
        make_sim: MakeSim, receiver: Receiver) -> None:
    sim = await make_sim(mode="http")
    sim.callback_url = receiver.url
    payload = (await sim.user("zhangsan").says("正常的一条")).payload
    assert (await sim.post_callback(payload, sign="d3Jvbmc=")).status == 403
    old = str(int(time.time() * 1000) - 2 * 3600 * 1000)
    assert (await sim.post_callback(payload, timestamp=old)).status == 200   # signed right
    assert receiver.received[-1][0]["timestamp"] == old
    assert (await sim.post_callback(payload, omit=("sign",))).status == 403
    assert "sign" not in receiver.received[-1][0]
    await sim.post_callback(payload, omit=("timestamp", "sign"))
    assert "timestamp" not in receiver.received[-1][0]
    assert (await sim.post_callback(b"{not json")).status == 200
    assert receiver.received[-1][1] == b"{not json"
    huge = json.dumps({**payload, "text": {"content": "安" * 500_000}}).encode()
    await sim.post_callback(huge)
    assert receiver.received[-1][1] == huge


async def test_http_mode_needs_a_callback_url(make_sim: MakeSim) -> None:
    sim = await make_sim(mode="http")
    with pytest.raises(RuntimeError, match="callback_url"):
        await sim.user("zhangsan").says("无处可去")
    with pytest.raises(ValueError, match="mode"):
        DingTalkSimulator(CLIENT_ID, CLIENT_SECRET, ROBOT_CODE, mode="webhook")  # type: ignore[arg-type]
