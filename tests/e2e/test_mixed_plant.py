"""One plant, two platforms: a worker on WeCom reports, the owner and the reviewer on DingTalk fix
and close it, and an emergency reaches each responder where they are — through the real service,
both simulators and the demo plant (config/demo-org.toml; who is on DingTalk is set below, as a
roster's `platform` key would)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from bot.clock import ManualClock
from bot.plans import load_plans
from bot.roster import load_org, parse_roster
from handlers.hazard.rectify import NUMBER
from models.emergency import Responder
from models.hazard import Status, Ticket
from models.org import User
from simulator.dingtalk import Delivered as DingTalkDelivered
from simulator.dingtalk import DingTalkSimulator
from simulator.photos import photo
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    DINGTALK_CLIENT_ID,
    DINGTALK_ROBOT,
    DINGTALK_SECRET,
    ROOT,
    SECRET,
    TOKEN,
    Service,
    service_settings,
    settled,
)

DEMO_ORG = ROOT / "config" / "demo-org.toml"
# The owner of 用电类 hazards in 3号车间, its reviewer, and one of the NH3 responders.
ON_DINGTALK = ("gaofeng", "xuming", "lihua")


class Plant:
    def __init__(self, wecom: WeComSimulator, dingtalk: DingTalkSimulator,
                 service: Service) -> None:
        self.wecom = wecom
        self.dingtalk = dingtalk
        self.service = service

    def dingtalk_text(self, user: str) -> list[str]:
        return [_text(m) for m in self.dingtalk.messages_for(user)]

    def wecom_text(self, user: str) -> list[str]:
        return [_wecom_text(m.body) for m in self.wecom.messages_for(user)]

    async def on_dingtalk(self, user: str, *words: str) -> DingTalkDelivered:
        def found() -> DingTalkDelivered | None:
            return next((m for m in self.dingtalk.messages_for(user)
                         if all(w in _text(m) for w in words)), None)

        await self.dingtalk.until(lambda: found() is not None, 10,
                                  lambda: f"{user} on DingTalk: {self.dingtalk_text(user)}")
        message = found()
        assert message is not None
        return message

    async def on_wecom(self, user: str, *words: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m.body for m in self.wecom.messages_for(user)
                         if all(w in _wecom_text(m.body) for w in words)), None)

        await self.wecom.until(lambda: found() is not None, 10,
                               lambda: f"{user} on WeCom: {self.wecom_text(user)}")
        body = found()
        assert body is not None
        return body

    async def click_on_dingtalk(self, user: str, card: DingTalkDelivered, label: str) -> None:
        params = card.body["cardParamMap"]
        [key] = [b["key"] for b in json.loads(params["buttons"]) if b["text"] == label]
        assert (await self.dingtalk.user(user).clicks(card.body["outTrackId"],
                                                      {"key": key})).status == 200

    async def click_on_wecom(self, user: str, card: dict[str, Any], label: str) -> None:
        tc = card["template_card"]
        [key] = [b["key"] for b in tc["button_list"] if b["text"] == label]
        assert (await self.wecom.user(user).clicks(tc["task_id"], key,
                                                   f"code-{user}-{key}")).status == 200


def _text(message: DingTalkDelivered) -> str:
    body = message.body
    if message.msgtype == "card":
        params = body["cardParamMap"]
        fields = " ".join(f"{f['key']}:{f['value']}" for f in json.loads(params["fields"]))
        return f"{params['title']} {fields} {params['body']}"
    return str(body.get("content") or body.get("text") or f"[{message.msgtype}]")


def _wecom_text(body: dict[str, Any]) -> str:
    if body.get("msgtype") == "template_card":
        card = body["template_card"]
        return f"{card['main_title']['title']} {card.get('sub_title_text', '')}"
    kind = body.get("msgtype", "")
    return str(body.get(kind, {}).get("content") or f"[{kind}]")


@pytest.fixture
async def plant(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[Plant]:
    clock = ManualClock()
    await load_org(DEMO_ORG, clock())
    await User.filter(id__in=ON_DINGTALK).update(platform="dingtalk")
    everyone = [u.id for u in parse_roster(DEMO_ORG.read_text(encoding="utf-8")).users]
    wecom = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY,
                           users=[u for u in everyone if u not in ON_DINGTALK],
                           per_member_per_minute=10_000)
    dingtalk = DingTalkSimulator(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT,
                                 users=ON_DINGTALK)
    await wecom.start()
    await dingtalk.start()
    service = Service(service_settings(database_url, wecom.base_url, media_dir,
                                       dingtalk=dingtalk.base_url,
                                       wecom_per_member_per_minute=10_000), clock)
    await service.start()
    wecom.callback_url = f"{service.url}/wecom/callback"
    try:
        yield Plant(wecom, dingtalk, service)
    finally:
        await service.stop()
        await dingtalk.stop()
        await wecom.stop()


async def test_a_wecom_report_is_fixed_and_closed_on_dingtalk(plant: Plant) -> None:
    worker = plant.wecom.user("zhangsan")
    await worker.sends_photo(photo(901), "image/png")
    await plant.on_wecom("zhangsan", "哪个区域")
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    summary = await plant.on_wecom("zhangsan", "请确认隐患上报")
    await plant.click_on_wecom("zhangsan", summary, "提交")
    filed = await plant.on_wecom("zhangsan", "已提交，编号")
    number = NUMBER.search(_wecom_text(filed))
    assert number is not None and "整改责任人：高峰" in _wecom_text(filed)
    ticket = number.group()

    # The owner is on DingTalk: the before-photo and the card reach him there.
    assigned = await plant.on_dingtalk("gaofeng", f"隐患整改 {ticket}")
    assert any(m.msgtype == "sampleImageMsg" for m in plant.dingtalk.messages_for("gaofeng"))
    await plant.click_on_dingtalk("gaofeng", assigned, "接收")
    await plant.on_dingtalk("gaofeng", f"已接收 {ticket}")
    await plant.dingtalk.until(
        lambda: "已由高峰接收" in plant.dingtalk.card(assigned.body["outTrackId"]).param_map.get(
            "status", ""), 10)
    owner = plant.dingtalk.user("gaofeng")
    await owner.says(f"已整改 {ticket}")
    await plant.on_dingtalk("gaofeng", "整改后的照片")
    await owner.sends_photo(photo(902), "image/png")
    await plant.on_dingtalk("gaofeng", "已收到整改照片")
    await owner.says("提交")
    await plant.on_dingtalk("gaofeng", f"{ticket} 已提交复查")

    # The reviewer is on DingTalk too; the worker hears the outcome on WeCom.
    review = await plant.on_dingtalk("xuming", f"整改复查 {ticket}")
    await plant.click_on_dingtalk("xuming", review, "通过")
    await plant.on_dingtalk("xuming", f"{ticket} 复查通过，已闭环")
    await plant.on_wecom("zhangsan", ticket, "已闭环")
    assert (await Ticket.get(number=ticket)).status is Status.CLOSED
    await settled()
    # Nobody heard anything on the platform they are not on.
    assert not plant.wecom.messages_for("gaofeng") and not plant.wecom.messages_for("xuming")
    assert not plant.dingtalk.messages_for("zhangsan")


async def test_an_emergency_reaches_each_responder_where_they_are(plant: Plant) -> None:
    await load_plans(ROOT / "config" / "plans", plant.service.clock(), "wecom")
    await plant.wecom.until(lambda: "emergency01" in plant.wecom.chats, 10)
    # The plan's group lives on WeCom: its DingTalk people get their own messages instead.
    assert "lihua" not in plant.wecom.chats["emergency01"].userlist
    commander = plant.wecom.user("zhouwei")
    await commander.says("启动预案 氨泄漏 三级 3号车间")
    confirm = await plant.on_wecom("zhouwei", "请确认启动预案")
    await plant.click_on_wecom("zhouwei", confirm, "确认启动")
    await plant.on_wecom("zhouwei", "已启动：已向3人")

    on_dingtalk = await plant.on_dingtalk("lihua", "液氨泄漏")        # lihua: DingTalk
    await plant.on_wecom("huangjun", "液氨泄漏")                       # huangjun: WeCom
    await plant.click_on_dingtalk("lihua", on_dingtalk, "收到")
    track = on_dingtalk.body["outTrackId"]
    await plant.dingtalk.until(
        lambda: "已回复收到" in plant.dingtalk.card(track).private.get("lihua", {}).get(
            "status", ""), 10)
    assert plant.dingtalk.card(track).param_map["done"] == "false"   # only lihua's view greys
    await plant.on_wecom("zhouwei", "应急看板", "已确认 1/3")
    await plant.wecom.until(lambda: bool(plant.wecom.chat_messages("emergency01")), 10)
    answered = await Responder.filter(user_id="lihua").first()
    assert answered is not None and answered.answer
