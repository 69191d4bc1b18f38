"""Emergencies end to end: the demo plant and plans, the real service and a platform's simulator
(each story runs on WeCom and on DingTalk). A commander starts a plan, the groups get the
summary, each responder a card, the commander a board; reminders, deputies, the close, drills
and the 事故上报 countdown run from scheduler ticks called directly, as of the service's clock,
which the tests move to the moment something is due."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.db import ORM, activate
from bot.plans import load_plans
from bot.resources import load_resources
from models.audit import AuditEvent
from models.emergency import Activation, ActivationStatus, EmergencyPolicy, Responder
from models.hazard import Ticket, TicketKind
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, InboxStatus, inbox_put
from models.org import Area
from models.outbox import OutboxMessage
from models.outgoing import Priority
from scheduler.emergency import run_emergency
from tests.harness import ROOT, Service, settled
from tests.plant import PLATFORMS, Person, Phone, Seen, demo_ledger, phone_of, plant

PLANS = ROOT / "config" / "plans"
TZ = ZoneInfo("Asia/Shanghai")
A3_MAP = ROOT / "config" / "maps" / "a3-evacuation.png"
T1_MAP = ROOT / "config" / "maps" / "t1-evacuation.png"
# NH3 二级 calls the safety managers and six named people.
LEVEL2 = ["gaofeng", "guoqiang", "huangjun", "lihua", "liuyang", "sunli", "xuming", "zhouwei"]


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    async with plant(database_url, media_dir, platform=request.param) as (sim, service):
        phone = phone_of(sim)
        await load_plans(PLANS, service.clock(), phone.platform)
        await load_resources(demo_ledger(tmp_path / "resources.toml",
                                         service.clock().astimezone(TZ).date()),
                             service.clock(), TZ)
        await phone.group_chats_ready()
        yield phone, service


@pytest.fixture
def phone(world: tuple[Phone[Any], Service]) -> Phone[Any]:
    return world[0]


@pytest.fixture
def service(world: tuple[Phone[Any], Service]) -> Service:
    return world[1]


def cards_for(phone: Phone[Any], user: str, title: str) -> list[Seen]:
    """The cards `user` got whose title has `title` in it."""
    return [m for m in phone.messages_for(user) if m.kind == "card" and title in m.title]


async def start(commander: Person, command: str) -> Activation:
    """The command, the confirmation card, 确认启动; returns the activation once active."""
    await commander.says(command)
    card = await commander.expect("请确认启动预案")
    await commander.clicks(card, "确认启动")
    await commander.expect("已启动：已向")
    activation = await Activation.filter(status=ActivationStatus.ACTIVE).order_by("-id").first()
    assert activation is not None
    return activation


async def tick(service: Service, phone: Phone[Any]) -> int:
    """The emergency jobs as of the service's clock, on the service's own connection (SQLite
    has one writer). A time to come is reached with `service.time_passes(until=...)`."""
    async def run() -> int:
        assert service.app is not None
        activate(service.app[ORM])
        return await run_emergency(EmergencyPolicy(), service.clock(), phone.platform,
                                   TZ)

    return await asyncio.create_task(run())


async def test_activation_reaches_groups_and_each_responder_and_the_board_follows(
        phone: Phone[Any], service: Service) -> None:
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动预案 氨泄漏 二级 3号车间")
    assert activation.plan_id == "NH3" and activation.level == "二级"
    assert activation.area_id == "A3" and not activation.drill
    # The group: what happened, the first steps, the nearest resources (3号车间's first), then
    # the area's evacuation map.
    await phone.until(lambda: len(phone.group_messages("emergency01")) == 2, 10)
    group, drawn = phone.group_messages("emergency01")
    assert drawn.kind == "image" and phone.picture(drawn) == A3_MAP.read_bytes()
    content = group.text
    assert "液氨泄漏现场处置方案 二级响应已启动" in content and "区域：3号车间" in content
    assert "关闭泄漏点上游阀门" in content
    assert content.index(
        "空气呼吸器：正压式空气呼吸器 4套，3号车间东门应急柜（李华 13800000011）"
    ) < content.index("堵漏工具：堵漏工具箱")
    # The area's cameras, linked (in the group, and on the commander's board below).
    assert "[硝化釜平台](https://nvr.plant.local/live/a3-reactor)" in content
    assert "[3号车间东门](https://nvr.plant.local/live/a3-east)" in content
    # Each responder: one card with 收到 / 无法到场.
    for user in LEVEL2:
        await phone.until(lambda u=user: len(cards_for(phone, u, "液氨泄漏")) == 1, 10)
    assert await Responder.filter(activation_id=activation.id).count() == len(LEVEL2)
    # Emergency messages go ahead of everything routine.
    priorities = set(await OutboxMessage.filter(idempotency_key__startswith="emg:")
                     .values_list("priority", flat=True))
    assert priorities == {Priority.EMERGENCY}
    # 李华 presses 收到: his card alone greys out, and the commander's first board comes at once.
    lihua = Person(phone, "lihua")
    [card] = cards_for(phone, "lihua", "液氨泄漏")
    await lihua.clicks(card, "收到")
    assert (await phone.changed(card, users=("lihua",))).text.startswith("已回复收到")
    board = await zhouwei.expect("应急看板", "已确认 1/8")
    assert "未回复" in board.text and "现场视频" in board.text
    # The first board brings the map; the platform had it already (one upload, two sends).
    map_again = await zhouwei.expect("[image]")
    assert phone.picture(map_again) == A3_MAP.read_bytes() and phone.uploads == 1
    # 黄军 types 收到; the next board waits for the interval, then the tick sends it.
    huangjun = Person(phone, "huangjun")
    await huangjun.says("收到")
    await huangjun.expect("已记录：收到")
    row = await Activation.get(id=activation.id)
    assert row.board_due_at is not None and row.board_sent_at is not None
    assert row.board_due_at - row.board_sent_at == EmergencyPolicy().board_every
    await service.time_passes(until=row.board_due_at)
    assert await tick(service, phone) == 1              # the board, without the map again
    await zhouwei.expect("应急看板", "已确认 2/8")
    # A second press changes nothing.
    await lihua.clicks(card, "收到")
    await lihua.expect("无需重复确认")


async def test_the_board_brings_the_map_once_and_again_only_when_the_roster_changed_it(
        phone: Phone[Any], service: Service) -> None:
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动预案 氨泄漏 三级 3号车间")
    await Responder.filter(activation_id=activation.id).update(next_remind_at=None)
    assert activation.board_due_at is not None
    await service.time_passes(until=activation.board_due_at)
    assert await tick(service, phone) == 2                       # the first board and the map
    await phone.until(lambda: len(cards_for(phone, "lihua", "液氨泄漏")) == 1, 10)
    await Person(phone, "lihua").clicks(cards_for(phone, "lihua", "液氨泄漏")[0], "收到")

    async def next_board() -> int:
        await settled()
        due = (await Activation.get(id=activation.id)).board_due_at
        assert due is not None
        await service.time_passes(until=due)
        return await tick(service, phone)

    assert await next_board() == 1                               # the board alone
    # The roster's map of 3号车间 is redrawn: the next board shows the new one.
    redrawn = (await Area.get(code="T1")).map_digest
    await Area.filter(code="A3").update(map_digest=redrawn)
    await Person(phone, "huangjun").says("收到")
    assert await next_board() == 2
    def drawn() -> list[bytes]:
        return [phone.picture(m) for m in phone.messages_for("zhouwei") if m.kind == "image"]

    await phone.until(lambda: len(drawn()) == 2)
    assert drawn() == [A3_MAP.read_bytes(), T1_MAP.read_bytes()]


async def test_a_second_activation_of_the_same_plan_and_area_joins_the_first(
        phone: Phone[Any]) -> None:
    await start(Person(phone, "zhouwei"), "启动预案 氨泄漏 二级 3号车间")
    liuyang = Person(phone, "liuyang")
    await liuyang.says("启动预案 液氨泄漏 二级 3号车间")
    card = await liuyang.expect("请确认启动预案")
    await liuyang.clicks(card, "确认启动")
    await liuyang.expect("由周伟启动，本次并入")
    await Person(phone, "zhouwei").expect("刘洋也启动了")
    await settled()
    for user in LEVEL2:
        assert len(cards_for(phone, user, "液氨泄漏")) == 1
    assert len(phone.group_messages("emergency01")) == 2            # the text and the map, once
    statuses = await Activation.all().order_by("id").values_list("status", flat=True)
    assert statuses == [ActivationStatus.ACTIVE, ActivationStatus.JOINED]


async def test_someone_without_the_right_is_refused_and_it_is_recorded(
        phone: Phone[Any]) -> None:
    zhangsan = Person(phone, "zhangsan")
    await zhangsan.says("启动预案 氨泄漏 一级")
    await zhangsan.expect("只有应急指挥、安全管理员和主要负责人可以启动预案", "一键报警")
    assert not await Activation.exists()
    assert await AuditEvent.filter(actor="zhangsan", action="refused",
                                   subject_type="activation").exists()


async def test_an_unknown_plan_or_level_gets_choices(phone: Phone[Any]) -> None:
    zhouwei = Person(phone, "zhouwei")
    await zhouwei.says("启动预案 地震")
    question = await zhouwei.expect("没有找到与“地震”对应的预案", "请回复序号")
    assert "液氨泄漏现场处置方案" in question.text
    await zhouwei.says("9")
    await zhouwei.expect("没有这个预案")
    number = next(line.split(".")[0] for line in question.text.splitlines()
                  if "液氨泄漏" in line)
    await zhouwei.says(number)
    await zhouwei.expect("请回复序号选择响应级别", "1. 一级")
    await zhouwei.says("五级")
    await zhouwei.expect("没有这个级别")
    await zhouwei.says("3")
    card = await zhouwei.expect("请确认启动预案")
    assert "三级" in card.text and "全厂" in card.text


async def test_the_menu_and_a_card_pick_plan_and_level_in_one_tap(phone: Phone[Any]) -> None:
    zhouwei = Person(phone, "zhouwei")
    await phone.uses_menu("zhouwei", "emergency", "启动预案")
    await zhouwei.expect("请回复序号选择要启动的预案")
    pick = await zhouwei.expect("选择预案和响应级别")
    await zhouwei.clicks(pick, "二级")
    await zhouwei.expect("请先在下拉框中选择预案")
    await zhouwei.clicks(pick, "二级", selected="NH3")
    confirm = await zhouwei.expect("请确认启动预案")
    assert "液氨泄漏现场处置方案" in confirm.text and "二级" in confirm.text
    await zhouwei.clicks(confirm, "确认启动")
    await zhouwei.expect("已启动：已向8人发送确认卡片")


async def test_a_one_tap_alarm_goes_to_the_duty_commanders(phone: Phone[Any]) -> None:
    zhangsan = Person(phone, "zhangsan")
    await zhangsan.says("一键报警 3号车间 闻到很重的氨味，有漏氨")
    await zhangsan.expect("已向值班长", "报警")
    commanders = ["chenjianguo", "liuyang", "zhouwei"]
    for user in commanders:
        await phone.until(lambda u=user: len(cards_for(phone, u, "一键报警")) == 1, 10)
    zhouwei = Person(phone, "zhouwei")
    [card] = cards_for(phone, "zhouwei", "一键报警")
    assert "张三" in card.text and "3号车间" in card.text
    await zhouwei.clicks(card, "启动预案")
    # Everyone's alarm card shows who took it; 漏氨 named the plan, the level is asked.
    for user in commanders:
        [theirs] = cards_for(phone, user, "一键报警")
        assert (await phone.changed(theirs)).text == "已由周伟处理"
    await zhouwei.expect("液氨泄漏现场处置方案：请回复序号选择响应级别")
    await zhouwei.says("3")
    confirm = await zhouwei.expect("请确认启动预案")
    await zhouwei.clicks(confirm, "确认启动")
    await zhouwei.expect("已启动")
    await zhangsan.expect("您报告的情况已启动")
    # A second commander's press comes too late and changes nothing.
    liuyang = Person(phone, "liuyang")
    [late] = cards_for(phone, "liuyang", "一键报警")
    await liuyang.clicks(late, "误报")
    await liuyang.expect("无需再次操作")


async def test_a_false_alarm_is_dismissed_and_the_reporter_told(phone: Phone[Any]) -> None:
    await Person(phone, "zhangsan").says("报警 仓库冒烟")
    await phone.until(lambda: len(cards_for(phone, "chenjianguo", "一键报警")) == 1, 10)
    chen = Person(phone, "chenjianguo")
    [card] = cards_for(phone, "chenjianguo", "一键报警")
    await chen.clicks(card, "误报")
    zhangsan = Person(phone, "zhangsan")
    await zhangsan.expect("已由陈建国确认为误报")
    alarm = await Activation.get()
    assert alarm.status is ActivationStatus.DISMISSED and alarm.commander == "chenjianguo"


async def test_silent_responders_are_reminded_then_their_deputies_called(
        phone: Phone[Any], service: Service) -> None:
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动预案 氨泄漏 三级 3号车间")   # 李华, 黄军, 孙丽
    sunli = Person(phone, "sunli")
    await phone.until(lambda: len(cards_for(phone, "sunli", "液氨泄漏")) == 1, 10)
    await sunli.says("无法到场")
    await sunli.expect("已记录：无法到场", "指挥会安排他人")
    every = EmergencyPolicy().remind_every
    for reminder in (1, 2):
        await service.time_passes(until=service.clock() + every)
        assert await tick(service, phone) == 2
        for user in ("lihua", "huangjun"):
            await Person(phone, user).expect("请立即确认", f"第{reminder}次提醒")
    await service.time_passes(until=service.clock() + every)
    await tick(service, phone)
    # 李华's deputy is 周伟 (三级); 黄军 has none. The commander hears who replaced whom.
    await phone.until(lambda: len(cards_for(phone, "zhouwei", "液氨泄漏")) == 1, 10)
    note = await zhouwei.expect("多次提醒仍未确认")
    assert "李华（已通知替补周伟）" in note.text and "黄军（无替补）" in note.text
    deputy = await Responder.get(activation_id=activation.id, user_id="zhouwei")
    assert deputy.deputy_for == "lihua"
    await tick(service, phone)                           # nothing more is due
    assert await Responder.filter(activation_id=activation.id, reminders__gt=2).count() == 0


async def test_closing_sends_the_summary_and_a_late_answer_is_only_recorded(
        phone: Phone[Any], service: Service) -> None:
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动预案 氨泄漏 三级 3号车间")
    lihua = Person(phone, "lihua")
    await phone.until(lambda: len(cards_for(phone, "lihua", "液氨泄漏")) == 1, 10)
    await lihua.clicks(cards_for(phone, "lihua", "液氨泄漏")[0], "收到")
    await zhouwei.expect("应急看板", "已确认 1/3")
    await zhouwei.says("结束预案")
    closing = await zhouwei.expect("三级响应已结束")
    assert "李华：收到" in closing.text and "未回复" in closing.text
    await zhouwei.expect("应急评估", "实战")       # a real response is reviewed too
    await settled()
    assert not await Responder.filter(activation_id=activation.id,
                                      next_remind_at__isnull=False).exists()
    await phone.until(lambda: len(phone.group_messages("emergency01")) == 3, 10)
    assert "已结束" in phone.group_messages("emergency01")[2].text     # after the text and map
    huangjun = Person(phone, "huangjun")
    await huangjun.clicks(cards_for(phone, "huangjun", "液氨泄漏")[0], "收到")
    await huangjun.expect("该应急响应已结束，您的回复已记录")
    late = await Responder.get(activation_id=activation.id, user_id="huangjun")
    assert late.late and late.answer == "收到"
    await settled()
    assert not [m for m in zhouwei.unread() if "应急看板" in m.text]   # the board stays
    assert (await Activation.get(id=activation.id)).status is ActivationStatus.CLOSED
    # The broadcast's second step, had it been held back until after the close, calls nobody.
    called = await Responder.filter(activation_id=activation.id).count()
    await inbox_put(Inbound(platform=phone.platform, user_id="zhouwei", kind=InboundKind.FOLLOW_UP,
                            dedup_key="late-call", event_key=f"emg:call:{activation.id}"),
                    service.clock())
    await settled()
    assert await InboxEvent.filter(dedup_key="late-call", status=InboxStatus.DONE).exists()
    assert await Responder.filter(activation_id=activation.id).count() == called
    assert zhouwei.unread() == [] and len(phone.messages_for("lihua")) == 1   # his one card


async def test_a_drill_is_marked_and_its_review_is_due_48_hours_after_the_close(
        phone: Phone[Any], service: Service) -> None:
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动演练 氨泄漏 三级 3号车间")
    assert activation.drill and activation.report_due_at is None
    await phone.until(lambda: len(cards_for(phone, "lihua", "【演练】")) == 1, 10)
    await zhouwei.says("结束演练")
    await zhouwei.expect("【演练】", "已结束")
    card = await zhouwei.expect("应急评估", f"PG-{activation.id:04d}")
    assert card.labels == ["开始评估"]
    closed = await Activation.get(id=activation.id)
    review = await Ticket.get(activation_id=activation.id, kind=TicketKind.REVIEW)
    assert review.deadline is not None and closed.closed_at is not None
    assert review.deadline - closed.closed_at == timedelta(hours=48)
    # Its reminders are the review task's ladder (tests/e2e/test_emergency_review.py), not
    # the emergency job's.
    await service.time_passes(until=review.deadline)
    assert await tick(service, phone) == 0


async def test_a_real_activation_counts_down_the_one_hour_accident_report(
        phone: Phone[Any], service: Service) -> None:
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动预案 氨泄漏 二级 3号车间")
    assert activation.report_due_at is not None
    assert activation.activated_at is not None and activation.board_due_at is not None
    assert activation.report_due_at - activation.activated_at == timedelta(hours=1)
    # The responders' reminders are another test's story: switched off, so that what each tick
    # is counted to send below is the commander's board and the countdown alone.
    await Responder.filter(activation_id=activation.id).update(next_remind_at=None)
    assert await tick(service, phone) == 0                       # an hour to go: nothing yet
    await service.time_passes(until=activation.board_due_at)
    assert await tick(service, phone) == 2                       # the first board and its map
    await zhouwei.expect("应急看板")
    await service.time_passes(until=activation.report_due_at - timedelta(minutes=29, seconds=50))
    assert await tick(service, phone) == 1
    await zhouwei.expect("事故上报提醒", "还有29分钟")
    assert await tick(service, phone) == 0                       # each stage once
    await service.time_passes(until=activation.report_due_at + timedelta(seconds=60))
    assert await tick(service, phone) == 1                       # the limit passed
    await zhouwei.expect("事故上报提醒", "现已超过1小时时限")
    await zhouwei.says("已上报")
    await zhouwei.expect("已记录事故上报时间", "已超过1小时时限")
    assert await tick(service, phone) == 0


async def test_invalid_recipients_are_listed_to_the_commander(phone: Phone[Any],
                                                             service: Service) -> None:
    phone.remove_user("gaofeng")                    # left the company; still in the roster
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动预案 氨泄漏 二级 3号车间")
    await phone.until(lambda: len(cards_for(phone, "xuming", "液氨泄漏")) == 1, 10)
    # The first board is due a moment after the start, once the broadcast's results are in.
    assert activation.board_due_at is not None
    await service.time_passes(until=activation.board_due_at)
    await tick(service, phone)
    board = await zhouwei.expect("应急看板", "无法送达")
    assert "高峰" in board.text.split("无法送达")[-1]


async def test_a_failing_platform_or_a_restart_mid_broadcast_sends_every_card_once(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    zhouwei = Person(phone, "zhouwei")
    await zhouwei.says("启动预案 氨泄漏 二级 3号车间")
    card = await zhouwei.expect("请确认启动预案")
    phone.fail_next_sends(2)                          # busy: retried with backoff
    await zhouwei.clicks(card, "确认启动")
    await service.stop()                              # a restart right after the decision
    await service.start()
    for user in LEVEL2:
        await phone.until(lambda u=user: len(cards_for(phone, u, "液氨泄漏")) >= 1, 30)
    await settled(timeout=30)
    for user in LEVEL2:
        assert len(cards_for(phone, user, "液氨泄漏")) == 1, user
    assert len(phone.group_messages("emergency01")) == 2            # the text and the map
    assert await Activation.filter(status=ActivationStatus.ACTIVE).count() == 1
