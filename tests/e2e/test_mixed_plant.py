"""One plant, two platforms: a worker on WeCom reports, the owner and the reviewer on DingTalk fix
and close it, and an emergency reaches each responder where they are — through the real service,
both simulators and the demo plant (config/demo-org.toml; who is on DingTalk is set below, as a
roster's `platform` key would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from bot.clock import ManualClock
from bot.media.folder import FolderStore
from bot.plans import load_plans
from bot.roster import load_org, parse_roster
from handlers.hazard.rectify import NUMBER
from models.emergency import Responder
from models.hazard import Status, Ticket
from models.org import User
from simulator.dingtalk import DingTalkSimulator
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
from tests.plant import DingTalkPhone, Person, WeComPhone

DEMO_ORG = ROOT / "config" / "demo-org.toml"
# The owner of 用电类 hazards in 3号车间, its reviewer, and one of the NH3 responders.
ON_DINGTALK = ("gaofeng", "xuming", "lihua")


@dataclass
class Plant:
    wecom: WeComPhone
    dingtalk: DingTalkPhone
    service: Service

    def on_wecom(self, user: str) -> Person:
        return Person(self.wecom, user)

    def on_dingtalk(self, user: str) -> Person:
        return Person(self.dingtalk, user)


@pytest.fixture
async def plant(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[Plant]:
    clock = ManualClock()
    await load_org(DEMO_ORG, clock(), FolderStore(media_dir))
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
        yield Plant(WeComPhone(wecom), DingTalkPhone(dingtalk), service)
    finally:
        await service.stop()
        await dingtalk.stop()
        await wecom.stop()


async def test_a_wecom_report_is_fixed_and_closed_on_dingtalk(plant: Plant) -> None:
    worker = plant.on_wecom("zhangsan")
    await worker.sends_photo()
    await worker.expect("哪个区域")
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    filed = await worker.expect("已提交，编号", "整改责任人：高峰")
    number = NUMBER.search(filed.text)
    assert number is not None
    ticket = number.group()

    # The owner is on DingTalk: the before-photo and the card reach him there.
    owner = plant.on_dingtalk("gaofeng")
    await owner.expect("[image]")
    assigned = await owner.expect(f"隐患整改 {ticket}")
    await owner.clicks(assigned, "接收")
    await owner.expect(f"已接收 {ticket}")
    assert "已由高峰接收" in (await plant.dingtalk.changed(assigned)).text
    await owner.says(f"已整改 {ticket}")
    await owner.expect("整改后的照片")
    await owner.sends_photo()
    await owner.expect("已收到整改照片")
    await owner.says("提交")
    await owner.expect(f"{ticket} 已提交复查")

    # The reviewer is on DingTalk too; the worker hears the outcome on WeCom.
    reviewer = plant.on_dingtalk("xuming")
    await reviewer.clicks(await reviewer.expect(f"整改复查 {ticket}"), "通过")
    await reviewer.expect(f"{ticket} 复查通过，已闭环")
    await worker.expect(ticket, "已闭环")
    assert (await Ticket.get(number=ticket)).status is Status.CLOSED
    await settled()
    # Nobody heard anything on the platform they are not on.
    assert not plant.wecom.messages_for("gaofeng") and not plant.wecom.messages_for("xuming")
    assert not plant.dingtalk.messages_for("zhangsan")


async def test_an_emergency_reaches_each_responder_where_they_are(plant: Plant) -> None:
    await load_plans(ROOT / "config" / "plans", plant.service.clock(), "wecom")
    await plant.wecom.group_chats_ready()
    # The plan's group lives on WeCom: its DingTalk people get their own messages instead.
    assert "lihua" not in plant.wecom.sim.chats["emergency01"].userlist
    commander = plant.on_wecom("zhouwei")
    await commander.says("启动预案 氨泄漏 三级 3号车间")
    await commander.clicks(await commander.expect("请确认启动预案"), "确认启动")
    await commander.expect("已启动：已向3人")

    lihua = plant.on_dingtalk("lihua")                          # on DingTalk
    card = await lihua.expect("液氨泄漏")
    await plant.on_wecom("huangjun").expect("液氨泄漏")           # on WeCom
    await lihua.clicks(card, "收到")
    assert "已回复收到" in (await plant.dingtalk.changed(card, ("lihua",))).text
    assert [c for c in plant.dingtalk.changes(card) if not c.users] == []  # only her view
    await commander.expect("应急看板", "已确认 1/3")
    await plant.wecom.until(lambda: plant.wecom.group_messages("emergency01"))
    answered = await Responder.filter(user_id="lihua").first()
    assert answered is not None and answered.answer
