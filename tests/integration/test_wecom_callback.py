"""A person writes to the app in WeCom; the service acknowledges at once and answers once."""

import asyncio
import hashlib
from pathlib import Path

import aiohttp
import pytest

from bot.channels.wecom import parse_event
from bot.channels.wecom_crypto import WeComCrypto, signature
from models.inbox import InboxEvent, InboxStatus
from models.outbox import OutboxMessage
from simulator.wecom import WeComSimulator
from tests.harness import AES_KEY, CORP_ID, TOKEN, Service, settled

JPEG = b"\xff\xd8\xff\xe0" + b"photo of an open switchboard" * 20


def content(message: object) -> str:
    body = message.body  # type: ignore[attr-defined]
    kind = body["msgtype"]
    return str(body[kind].get("content", ""))


async def test_url_verification_answers_the_plain_echo(service: Service,
                                                       wecom: WeComSimulator) -> None:
    answer = await wecom.user("zhangsan").verify_url("1288432023552776189")
    assert (answer.status, answer.body) == (200, "1288432023552776189")


async def test_help_is_answered(service: Service, wecom: WeComSimulator) -> None:
    answer = await wecom.user("zhangsan").says("帮助")
    assert (answer.status, answer.body) == (200, "")
    [reply] = await wecom.wait_for("zhangsan")
    assert "安全助手" in content(reply) and "帮助" in content(reply)


async def test_a_stranger_is_told_politely_they_are_not_registered(
        service: Service, wecom: WeComSimulator) -> None:
    await wecom.user("stranger").says("你好")
    [reply] = await wecom.wait_for("stranger")
    assert "还没有登记" in content(reply)


async def test_the_same_callback_four_times_is_handled_once(service: Service,
                                                            wecom: WeComSimulator) -> None:
    plaintext = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA["
                 "zhangsan]]></FromUserName><CreateTime>1764400000</CreateTime><MsgType><![CDATA["
                 "text]]></MsgType><Content><![CDATA[帮助]]></Content><MsgId>777001</MsgId>"
                 "<AgentID>1000002</AgentID></xml>")
    user = wecom.user("zhangsan")
    answers = await asyncio.gather(*(user.send_plaintext(plaintext) for _ in range(4)))
    assert [a.status for a in answers] == [200] * 4
    await wecom.wait_for("zhangsan")
    await settled()            # a wrong second answer would be in by now
    assert len(wecom.messages_for("zhangsan")) == 1
    assert await InboxEvent.all().count() == 1


async def test_a_photo_is_downloaded_and_stored_by_content_hash(
        service: Service, wecom: WeComSimulator, media_dir: Path) -> None:
    await wecom.user("zhangsan").sends_photo(JPEG)
    await wecom.wait_for("zhangsan")
    digest = hashlib.sha256(JPEG).hexdigest()
    assert (media_dir / digest[:2] / digest[2:4] / digest).read_bytes() == JPEG
    row = await InboxEvent.get()
    assert row.payload["media"] == digest


async def test_unknown_message_type_is_stored_acknowledged_and_ignored(
        service: Service, wecom: WeComSimulator) -> None:
    plaintext = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>zhangsan</FromUserName>"
                 "<CreateTime>1764400001</CreateTime><MsgType>link</MsgType><Title>t</Title>"
                 "<MsgId>777002</MsgId><AgentID>1000002</AgentID></xml>")
    answer = await wecom.user("zhangsan").send_plaintext(plaintext)
    assert answer.status == 200
    await settled()
    row = await InboxEvent.get()
    assert row.status is InboxStatus.DONE and row.kind == "unknown"
    assert await OutboxMessage.all().count() == 0


async def test_wrong_signature_is_403_and_nothing_is_stored(service: Service,
                                                            wecom: WeComSimulator) -> None:
    answer = await wecom.user("zhangsan").send_plaintext(
        f"<xml><FromUserName>zhangsan</FromUserName><MsgType>text</MsgType><Content>帮助</Content>"
        f"<MsgId>1</MsgId><ToUserName>{CORP_ID}</ToUserName></xml>", signature="0" * 40)
    assert answer.status == 403
    assert await InboxEvent.all().count() == 0


async def test_another_corps_message_is_refused(service: Service) -> None:
    other = WeComCrypto(TOKEN, AES_KEY, "ww0000000000000000")
    body, sig = other.seal_xml("<xml><FromUserName>x</FromUserName><MsgType>text</MsgType>"
                               "<MsgId>5</MsgId></xml>", "1764400000", "42")
    status = await _post(service, body, {"msg_signature": sig, "timestamp": "1764400000",
                                         "nonce": "42"})
    assert status == 403
    assert await InboxEvent.all().count() == 0


@pytest.mark.parametrize(("body", "status"), [
    (b"<xml><Encrypt>abc</xml>", 400),
    (b"not xml at all", 400),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
     b"<xml><Encrypt>&b;</Encrypt></xml>", 400),
    (b"<xml><Encrypt>" + b"A" * 70000 + b"</Encrypt></xml>", 413),
])
async def test_hostile_bodies_are_refused_cleanly(service: Service, body: bytes,
                                                  status: int) -> None:
    encrypted = body.decode(errors="ignore")
    sig = signature(TOKEN, "1764400000", "42", encrypted)
    assert await _post(service, body, {"msg_signature": sig, "timestamp": "1764400000",
                                       "nonce": "42"}) == status
    assert await InboxEvent.all().count() == 0


async def test_missing_signature_parameters_are_400(service: Service) -> None:
    assert await _post(service, b"<xml/>", {}) == 400


async def _post(service: Service, body: bytes, query: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            f"{service.url}/wecom/callback", params=query, data=body) as resp:
        return resp.status


async def stored(kind: str) -> InboxEvent:
    for _ in range(100):
        row = await InboxEvent.filter(kind=kind).first()
        if row and row.status is InboxStatus.DONE:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"no handled {kind} event")


async def test_every_kind_is_normalized(service: Service, wecom: WeComSimulator) -> None:
    zhang = wecom.user("zhangsan")
    await zhang.sends_location(31.2304, 121.4737, "3号车间东门")
    await zhang.sends_voice(b"#!AMR\n" + b"\x00" * 64)
    await zhang.enters()
    await zhang.clicks_menu("report")
    await zhang.clicks("hz-1-review-1", "review:1:yes", response_code="RC-1",
                       selected={"grade": ["major"]})
    where = (await stored("location")).event.location
    assert where is not None and (where.latitude, where.label) == (31.2304, "3号车间东门")
    assert (await stored("voice")).event.media
    assert (await stored("enter")).event.raw_type == "enter_agent"
    assert (await stored("menu")).event.event_key == "report"
    click = (await stored("card_action")).event
    assert (click.task_id, click.event_key, click.response_code, click.selected) == (
        "hz-1-review-1", "review:1:yes", "RC-1", {"grade": ["major"]})


def test_a_card_sent_after_its_first_send_answers_with_its_own_task_id() -> None:
    """A later send of a card carries a tagged task_id (single-use on WeCom); handlers see the
    card's own id."""
    plaintext = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>zhangsan</FromUserName>"
                 "<CreateTime>1764400003</CreateTime><MsgType>event</MsgType>"
                 "<Event>template_card_event</Event><EventKey>emg:ack:1</EventKey>"
                 "<TaskId>emg-1-abc@17</TaskId><ResponseCode>RC-9</ResponseCode>"
                 "<AgentID>1000002</AgentID></xml>")
    click = parse_event(plaintext, CORP_ID)
    assert (click.task_id, click.event_key, click.response_code) == (
        "emg-1-abc", "emg:ack:1", "RC-9")


async def test_a_photo_that_cannot_be_fetched_is_marked_not_retried_forever(
        service: Service, wecom: WeComSimulator) -> None:
    plaintext = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>zhangsan</FromUserName>"
                 "<CreateTime>1764400002</CreateTime><MsgType>image</MsgType><PicUrl>x</PicUrl>"
                 "<MediaId>expired-media-id</MediaId><MsgId>777003</MsgId>"
                 "<AgentID>1000002</AgentID></xml>")
    await wecom.user("zhangsan").send_plaintext(plaintext)
    row = await stored("image")
    assert row.event.media_lost and not row.event.media and row.attempts == 0
    await wecom.wait_for("zhangsan")     # the person still gets an answer
