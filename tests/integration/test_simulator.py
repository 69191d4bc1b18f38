"""The WeCom simulator keeps WeCom's promises and quirks (chat-protocols.md §1–§4) over real HTTP
on loopback: the other tests trust it to fail where WeCom fails and deliver what WeCom delivers."""

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bot.channels.wecom_crypto import CryptoError, WeComCrypto, parse_xml
from bot.clock import ManualClock
from simulator.wecom import WeComSimulator

CORP_ID = "wwsimulator0000001"
AGENT_ID = 1000002
SECRET = "sim-secret"
TOKEN = "simtoken"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # project-generated
PEOPLE = ("zhangsan", "lisi", "wangwu")
JPEG = b"\xff\xd8\xff\xe0" + b"switchboard" * 10


@dataclass
class Api:
    """A bare client of the simulator's API, so each test sees the raw errcodes."""

    http: aiohttp.ClientSession
    base: str
    token: str = ""

    async def fetch_token(self, secret: str = SECRET) -> dict[str, Any]:
        return await self.get("gettoken", corpid=CORP_ID, corpsecret=secret)

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        async with self.http.get(f"{self.base}/cgi-bin/{path}", params=params) as resp:
            assert resp.status == 200        # WeCom answers errors with HTTP 200 too
            return await resp.json()  # type: ignore[no-any-return]

    async def post(self, path: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        if not self.token:
            self.token = (await self.fetch_token())["access_token"]
        async with self.http.post(f"{self.base}/cgi-bin/{path}", json=body,
                                  params={"access_token": self.token, **params}) as resp:
            assert resp.status == 200
            return await resp.json()  # type: ignore[no-any-return]

    async def upload(self, data: bytes, filename: str = "photo.jpg") -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("media", data, filename=filename, content_type="image/jpeg")
        async with self.http.post(f"{self.base}/cgi-bin/media/upload", data=form,
                                  params={"access_token": self.token, "type": "image"}) as resp:
            return await resp.json()  # type: ignore[no-any-return]

    async def send(self, touser: str, content: str = "请注意安全", **extra: Any) -> dict[str, Any]:
        return await self.post("message/send", {"touser": touser, "agentid": AGENT_ID,
                                                "msgtype": "text", "text": {"content": content},
                                                **extra})

    async def send_card(self, touser: str, task_id: str | None) -> dict[str, Any]:
        card: dict[str, Any] = {
            "card_type": "button_interaction", "main_title": {"title": "隐患复查"},
            "button_list": [{"text": "通过", "key": "review:1:yes"}],
        }
        if task_id:
            card["task_id"] = task_id
        return await self.post("message/send", {"touser": touser, "agentid": AGENT_ID,
                                                "msgtype": "template_card",
                                                "template_card": card})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[WeComSimulator]:
    async with WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=PEOPLE,
                              clock=clock.seconds) as simulator:
        yield simulator


@pytest.fixture
async def api(sim: WeComSimulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, sim.base_url)


# -- tokens ------------------------------------------------------------------------------------


async def test_the_token_is_reused_while_valid_and_replaced_after_expiry(
        sim: WeComSimulator, api: Api, clock: ManualClock) -> None:
    first = await api.fetch_token()
    clock.advance(3600)
    second = await api.fetch_token()
    assert first["access_token"] == second["access_token"]
    assert (first["expires_in"], second["expires_in"]) == (7200, 3600)
    assert sim.token_fetches == 2
    api.token = first["access_token"]
    assert (await api.send("zhangsan"))["errcode"] == 0

    clock.advance(3600)
    assert (await api.send("zhangsan"))["errcode"] == 42001
    renewed = await api.fetch_token()
    assert renewed["access_token"] != first["access_token"]
    assert (await api.send("zhangsan"))["errcode"] == 42001      # the old one stays dead
    api.token = "forged"
    assert (await api.send("zhangsan"))["errcode"] == 40014


async def test_wrong_secret_and_missing_token(api: Api) -> None:
    assert (await api.fetch_token(secret="wrong"))["errcode"] == 40001
    answer = await api.get("appchat/get", chatid="x")
    assert answer["errcode"] == 41001


async def test_expire_tokens_invalidates_early(sim: WeComSimulator, api: Api) -> None:
    assert (await api.send("zhangsan"))["errcode"] == 0
    sim.expire_tokens()
    assert (await api.send("zhangsan"))["errcode"] == 42001
    api.token = ""
    assert (await api.send("zhangsan"))["errcode"] == 0
    assert sim.token_fetches == 2


# -- message/send ------------------------------------------------------------------------------


async def test_the_31st_message_in_a_minute_is_silently_dropped(
        sim: WeComSimulator, api: Api, clock: ManualClock) -> None:
    for n in range(31):
        assert (await api.send("zhangsan|lisi" if n == 0 else "zhangsan", f"第{n}条"))[
            "errcode"] == 0
        clock.advance(1)
    assert len(sim.messages_for("zhangsan")) == 30
    [dropped] = sim.dropped
    assert (dropped.user, dropped.body["text"]["content"]) == ("zhangsan", "第30条")
    clock.advance(29)                       # the first message leaves the window
    assert (await api.send("zhangsan", "又一条"))["errcode"] == 0
    assert sim.messages_for("zhangsan")[-1].body["text"]["content"] == "又一条"
    assert len(sim.messages_for("lisi")) == 1


async def test_unknown_users_come_back_lower_cased_and_all_unknown_is_81013(
        sim: WeComSimulator, api: Api) -> None:
    answer = await api.send("zhangsan|Ghost|nobody")
    assert (answer["errcode"], answer["invaliduser"]) == (0, "ghost|nobody")
    assert answer["msgid"]
    assert [m.user for m in sim.delivered] == ["zhangsan"]
    assert (await api.send("Ghost|nobody"))["errcode"] == 81013
    too_many = await api.send("|".join(f"u{n}" for n in range(1001)))
    assert too_many["errcode"] == 40058 and "touser" in too_many["errmsg"]
    assert (await api.post("message/send", {"touser": "zhangsan", "agentid": AGENT_ID,
                                            "msgtype": "voicemail"}))["errcode"] == 40008
    assert (await api.post("message/send", {"touser": "zhangsan", "agentid": 1,
                                            "msgtype": "text", "text": {"content": "x"}}))[
        "errcode"] == 40056


async def test_duplicate_check_delivers_an_identical_request_once(
        sim: WeComSimulator, api: Api, clock: ManualClock) -> None:
    check = {"enable_duplicate_check": 1, "duplicate_check_interval": 1800}
    first = await api.send("zhangsan", "整改提醒", **check)
    clock.advance(60)
    again = await api.send("zhangsan", "整改提醒", **check)
    assert (again["errcode"], again["msgid"]) == (0, first["msgid"])
    await api.send("zhangsan", "另一条提醒", **check)
    assert len(sim.messages_for("zhangsan")) == 2
    clock.advance(1800)
    await api.send("zhangsan", "整改提醒", **check)
    assert len(sim.messages_for("zhangsan")) == 3


async def test_task_id_is_required_and_single_use(sim: WeComSimulator, api: Api) -> None:
    sent = await api.send_card("lisi", "hz-0001-review-1")
    assert sent["errcode"] == 0 and sent["response_code"] and sent["msgid"]
    again = await api.send_card("wangwu", "hz-0001-review-1")
    assert (again["errcode"], again["errmsg"]) == (40058, "task_id duplicated")
    assert (await api.send_card("lisi", None))["errcode"] == 40058
    assert [m.user for m in sim.delivered] == ["lisi"]


async def test_a_response_code_updates_a_card_once(sim: WeComSimulator, api: Api) -> None:
    code = (await api.send_card("lisi|wangwu", "hz-0002-review-1"))["response_code"]
    update = {"agentid": AGENT_ID, "response_code": code, "atall": 1,
              "button": {"replace_name": "已由李四通过"}}
    assert (await api.post("message/update_template_card", update))["errcode"] == 0
    used = await api.post("message/update_template_card", update)
    assert (used["errcode"], used["errmsg"]) == (40058, "response_code used")
    unknown = await api.post("message/update_template_card", {**update, "response_code": "x"})
    assert unknown["errcode"] == 40058
    [updated] = sim.card_updates
    assert (updated.task_id, updated.body["button"]["replace_name"]) == (
        "hz-0002-review-1", "已由李四通过")


async def test_wait_for_returns_once_enough_arrived_and_says_what_is_missing(
        sim: WeComSimulator, api: Api) -> None:
    waiting = asyncio.create_task(sim.wait_for("ZhangSan", count=2))
    await api.send("zhangsan", "一")
    await api.send("zhangsan", "二")
    assert [m.body["text"]["content"] for m in await waiting] == ["一", "二"]
    with pytest.raises(TimeoutError, match="lisi received 0 of 1"):
        await sim.wait_for("lisi", timeout=0.05)


# -- media -------------------------------------------------------------------------------------


async def test_media_upload_then_get_returns_the_same_file(sim: WeComSimulator, api: Api) -> None:
    api.token = (await api.fetch_token())["access_token"]
    uploaded = await api.upload(JPEG, "switchboard.jpg")
    assert (uploaded["errcode"], uploaded["type"]) == (0, "image")
    assert abs(int(uploaded["created_at"]) - time.time()) < 60
    async with api.http.get(f"{api.base}/cgi-bin/media/get", params={
            "access_token": api.token, "media_id": uploaded["media_id"]}) as resp:
        assert resp.content_type == "image/jpeg"
        assert resp.headers["Content-Disposition"] == 'attachment; filename="switchboard.jpg"'
        assert await resp.read() == JPEG
    assert (await api.upload(b"12345"))["errcode"] == 40006


async def test_unknown_media_is_a_json_error(sim: WeComSimulator, api: Api) -> None:
    api.token = (await api.fetch_token())["access_token"]
    async with api.http.get(f"{api.base}/cgi-bin/media/get",
                            params={"access_token": api.token, "media_id": "nope"}) as resp:
        assert resp.content_type == "application/json"
        assert (await resp.json())["errcode"] == 40007


# -- app group chats ---------------------------------------------------------------------------


async def test_group_chat_takes_markdown_but_no_template_card(sim: WeComSimulator,
                                                              api: Api) -> None:
    created = await api.post("appchat/create", {"name": "应急指挥群", "owner": "lisi",
                                                "userlist": ["lisi", "wangwu", "zhangsan"],
                                                "chatid": "emergency01"})
    assert (created["errcode"], created["chatid"]) == (0, "emergency01")
    info = await api.get("appchat/get", access_token=api.token, chatid="emergency01")
    assert info["chat_info"]["userlist"] == ["lisi", "wangwu", "zhangsan"]
    said = await api.post("appchat/send", {"chatid": "emergency01", "msgtype": "markdown",
                                           "markdown": {"content": "**预案已启动**"}})
    assert said["errcode"] == 0
    card = await api.post("appchat/send", {"chatid": "emergency01", "msgtype": "template_card",
                                           "template_card": {"card_type": "text_notice"}})
    assert card["errcode"] == 40008
    lost = await api.post("appchat/send", {"chatid": "nochat", "msgtype": "text",
                                           "text": {"content": "x"}})
    assert lost["errcode"] == 86003
    [message] = sim.chat_messages("emergency01")
    assert message.body["markdown"]["content"] == "**预案已启动**"
    alone = await api.post("appchat/create", {"name": "一人群", "userlist": ["lisi"]})
    assert alone["errcode"] == 86006


async def test_group_chat_members_change_as_wecom_allows(sim: WeComSimulator, api: Api) -> None:
    await api.post("appchat/create", {"name": "应急指挥群", "owner": "lisi",
                                      "userlist": ["lisi", "wangwu"], "chatid": "emergency01"})

    async def update(**body: Any) -> int:
        errcode: int = (await api.post("appchat/update", {"chatid": "emergency01", **body})
                        )["errcode"]
        return errcode

    assert await update(add_user_list=["zhangsan"], del_user_list=["wangwu"]) == 0
    assert sim.chats["emergency01"].userlist == ("lisi", "zhangsan")
    unknown = await api.post("appchat/update", {"chatid": "nochat", "add_user_list": ["wangwu"]})
    assert unknown["errcode"] == 86003
    assert await update(add_user_list=["nobody"]) == 86007           # not in WeCom's directory
    assert await update(del_user_list=["lisi"]) == 86005             # the owner, with no new one
    assert await update(del_user_list=["lisi"], owner="zhangsan") == 0
    crowd = [f"worker{n}" for n in range(2000)]
    for user in crowd:
        sim.add_user(user)
    assert await update(add_user_list=crowd) == 86006                # 2,001 members
    assert await update(add_user_list=crowd[1:]) == 0                # 2,000
    chat = sim.chats["emergency01"]
    assert (chat.owner, len(chat.userlist), chat.userlist[0]) == ("zhangsan", 2000, "zhangsan")
    said = await api.post("appchat/send", {"chatid": "emergency01", "msgtype": "text",
                                           "text": {"content": "演练通知"}})
    assert said["errcode"] == 0
    [message] = sim.chat_messages("emergency01")
    assert message.members == chat.userlist                           # who could read it


# -- faults ------------------------------------------------------------------------------------


async def test_fail_next_answers_the_errcode_then_recovers(sim: WeComSimulator, api: Api) -> None:
    sim.fail_next("message/send", -1, times=2)
    sim.fail_next("message/send", 45009)
    codes = [(await api.send("zhangsan"))["errcode"] for _ in range(4)]
    assert codes == [-1, -1, 45009, 0]
    assert sim.calls["message/send"] == 4
    assert len(sim.messages_for("zhangsan")) == 1
    with pytest.raises(ValueError, match="unknown API path"):
        sim.fail_next("message/sned", -1)


async def test_hang_next_carries_out_the_call_but_holds_the_answer(sim: WeComSimulator,
                                                                   api: Api) -> None:
    """Told by order, not by a stopwatch: the held answer is held for an hour, so the next call's
    answer, which comes at once, comes first."""
    await api.fetch_token()
    sim.hang_next("message/send", 3600)
    held = asyncio.create_task(api.send("zhangsan", "超时的那一条"))
    await sim.wait_for("zhangsan")                     # WeCom did deliver it
    async with asyncio.timeout(10):                    # a guard: held, it would be an hour
        assert (await api.send("zhangsan"))["errcode"] == 0   # the next call is not held
    assert len(sim.messages_for("zhangsan")) == 2
    assert not held.done()                             # while the first answer still is
    held.cancel()                                      # the caller's timeout
    with pytest.raises(asyncio.CancelledError):
        await held


async def test_latency_is_added_to_every_answer(sim: WeComSimulator, api: Api) -> None:
    """An hour's latency: a call is carried out, its answer is not back while a call made after
    the latency was lifted is answered."""
    api.token = (await api.fetch_token())["access_token"]
    sim.latency = 3600
    held = asyncio.create_task(api.send("zhangsan", "慢的那一条"))
    await sim.wait_for("zhangsan")                     # carried out; the answer waits
    sim.latency = 0
    async with asyncio.timeout(10):                    # a guard: held, it would be an hour
        assert (await api.fetch_token())["errcode"] == 0
        assert (await api.send("lisi"))["errcode"] == 0
    assert not held.done()
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held


# -- the callback client -----------------------------------------------------------------------


@dataclass
class Receiver:
    """Our side of the callback, reduced to verifying and decrypting."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def receiver(sim: WeComSimulator) -> AsyncIterator[Receiver]:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    found = Receiver("")

    async def verify(request: web.Request) -> web.Response:
        q = request.query
        try:
            echo = crypto.open_echo(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        except CryptoError:
            raise web.HTTPForbidden() from None
        return web.Response(text=echo)

    async def receive(request: web.Request) -> web.Response:
        q = request.query
        try:
            plain = crypto.open_message(await request.read(), q["msg_signature"],
                                        q["timestamp"], q["nonce"])
        except CryptoError:
            raise web.HTTPForbidden() from None
        found.received.append(parse_xml(plain))
        return web.Response(text="")

    app = web.Application()
    app.add_routes([web.get("/wecom/callback", verify), web.post("/wecom/callback", receive)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/wecom/callback"
    sim.callback_url = found.url
    yield found
    await runner.cleanup()


async def test_text_arrives_sealed_as_wecom_does(sim: WeComSimulator, receiver: Receiver) -> None:
    first = await sim.user("zhangsan").says("配电箱门没关]]>请处理")
    await sim.user("zhangsan").says("第二条")
    assert (first.status, first.body) == (200, "")
    one, two = receiver.received
    assert one["ToUserName"] == CORP_ID and one["FromUserName"] == "zhangsan"
    assert (one["MsgType"], one["Content"]) == ("text", "配电箱门没关]]>请处理")
    assert one["AgentID"] == str(AGENT_ID)
    assert abs(int(one["CreateTime"]) - time.time()) < 60
    assert int(two["MsgId"]) > int(one["MsgId"])


async def test_a_resend_of_the_same_plaintext_is_accepted_and_a_forgery_refused(
        sim: WeComSimulator, receiver: Receiver) -> None:
    user = sim.user("zhangsan")
    first = await user.says("同一条")
    again = await user.send_plaintext(first.plaintext)
    forged = await user.send_plaintext(first.plaintext, signature="0" * 40)
    assert (again.status, forged.status) == (200, 403)
    assert receiver.received[0] == receiver.received[1]


async def test_photo_and_location(sim: WeComSimulator, receiver: Receiver, api: Api) -> None:
    await sim.user("zhangsan").sends_photo(JPEG)
    await sim.user("zhangsan").sends_location(31.2304, 121.4737, "3号车间")
    photo, where = receiver.received
    assert photo["MsgType"] == "image"
    assert sim.media[photo["MediaId"]].data == JPEG
    async with api.http.get(photo["PicUrl"]) as resp:
        assert await resp.read() == JPEG
    assert (where["Location_X"], where["Location_Y"], where["Label"]) == (
        "31.2304", "121.4737", "3号车间")
    assert where["AppType"] == "wxwork" and where["MsgId"]


async def test_menu_click_and_entering_the_app(sim: WeComSimulator, receiver: Receiver) -> None:
    await sim.user("lisi").enters()
    await sim.user("lisi").clicks_menu("report_hazard")
    entered, clicked = receiver.received
    assert (entered["MsgType"], entered["Event"]) == ("event", "enter_agent")
    assert (clicked["Event"], clicked["EventKey"]) == ("click", "report_hazard")
    assert "MsgId" not in clicked


async def test_a_vote_submit_carries_both_selected_items(sim: WeComSimulator,
                                                         receiver: Receiver, api: Api) -> None:
    await sim.user("lisi").clicks(
        "hz-0003-vote-1", "submit", card_type="vote_interaction",
        selected={"cause": ["wiring", "cover"], "level": ["major"]})
    [event] = receiver.received
    assert (event["Event"], event["TaskId"], event["EventKey"], event["CardType"]) == (
        "template_card_event", "hz-0003-vote-1", "submit", "vote_interaction")
    items = event["SelectedItems"]["SelectedItem"]
    assert [(i["QuestionKey"], i["OptionIds"]["OptionId"]) for i in items] == [
        ("cause", ["wiring", "cover"]), ("level", ["major"])]
    update = {"agentid": AGENT_ID, "response_code": event["ResponseCode"], "userids": ["lisi"],
              "button": {"replace_name": "已提交"}}
    assert (await api.post("message/update_template_card", update))["errcode"] == 0


async def test_url_verification_sends_an_encrypted_echo(sim: WeComSimulator,
                                                        receiver: Receiver) -> None:
    answer = await sim.user("zhangsan").verify_url("1288432023552776189")
    assert (answer.status, answer.body) == (200, "1288432023552776189")


async def test_a_web_login_code_names_its_person_once_and_for_five_minutes() -> None:
    """获取访问用户身份: "code只能使用一次，5分钟未被使用自动过期" (errcode 40029 after)."""
    now = [1000.0]
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=["sunli"],
                         clock=lambda: now[0])
    async with sim, aiohttp.ClientSession() as http:
        async def code() -> str:
            sim.web_login.signs_in("sunli")
            async with http.get(f"{sim.base_url}/wwlogin/sso/login", params={
                    "login_type": "CorpApp", "appid": CORP_ID, "agentid": str(AGENT_ID),
                    "redirect_uri": "http://127.0.0.1:1/dashboard/auth/wecom", "state": "s"},
                    allow_redirects=False) as page:
                assert page.status == 302
                return URL(page.headers["Location"]).query["code"]

        async def who(code: str) -> dict[str, Any]:
            async with http.get(f"{sim.base_url}/cgi-bin/gettoken", params={
                    "corpid": CORP_ID, "corpsecret": SECRET}) as resp:
                token = (await resp.json())["access_token"]
            async with http.get(f"{sim.base_url}/cgi-bin/auth/getuserinfo",
                                params={"access_token": token, "code": code}) as resp:
                answer: dict[str, Any] = await resp.json()
                return answer

        first = await code()
        assert (await who(first))["userid"] == "sunli"
        assert (await who(first))["errcode"] == 40029           # used
        late = await code()
        now[0] += 301
        assert (await who(late))["errcode"] == 40029            # expired
