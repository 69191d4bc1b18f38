"""The review after a response closes, end to end on each platform: the commander gets the task
at the close, holds the review in chat with two improvement actions, the 评估报告 arrives as
markdown and a workbook; one action is done with evidence and 复查, the other runs past its
deadline and is escalated; a review nobody holds is reminded and escalated like a ticket."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from tortoise.context import TortoiseContext

from bot.media.folder import FolderStore
from bot.plans import load_plans
from models.emergency import Activation, ActivationStatus
from models.hazard import Status, Ticket, TicketKind
from models.outbox import OutboxMessage
from models.outgoing import File, outgoing_from_payload
from tests.e2e.test_emergency import PLANS, cards_for, start
from tests.harness import Service, cli, settled
from tests.plant import PLATFORMS, Person, Phone, around_the_clock, phone_of, plant


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    """Every hour of every day is working time (`around_the_clock`); the plans loaded."""
    async with plant(database_url, media_dir, platform=request.param,
                     **around_the_clock(tmp_path)) as (sim, service):
        phone = phone_of(sim)
        await load_plans(PLANS, service.clock(), phone.platform)
        await phone.group_chats_ready()
        yield phone, service


async def closed_drill(phone: Phone[Any]) -> tuple[Activation, Person]:
    """周伟 runs the 氨泄漏 drill in 3号车间, 李华 answers, the drill ends; returns it and him
    with the review card read."""
    zhouwei = Person(phone, "zhouwei")
    activation = await start(zhouwei, "启动演练 氨泄漏 三级 3号车间")
    await phone.until(lambda: len(cards_for(phone, "lihua", "【演练】")) == 1, 10)
    await Person(phone, "lihua").clicks(cards_for(phone, "lihua", "【演练】")[0], "收到")
    await settled()                     # her answer is in before the close
    await zhouwei.says("结束演练")
    await zhouwei.expect("已结束")
    return await Activation.get(id=activation.id), zhouwei


async def test_a_drill_is_reviewed_in_chat_its_actions_followed_up_and_its_report_sent(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    activation, zhouwei = await closed_drill(phone)
    assert activation.status is ActivationStatus.CLOSED and activation.closed_at is not None
    review = await Ticket.get(kind=TicketKind.REVIEW, activation_id=activation.id)
    assert review.number == f"PG-{activation.id:04d}" and review.owner_id == "zhouwei"
    assert review.deadline == activation.closed_at + timedelta(hours=48)
    card = await zhouwei.expect("应急评估", review.number)
    await zhouwei.clicks(card, "开始评估")
    await zhouwei.expect("做得好的方面")
    await zhouwei.says("指挥到位，李华45秒内确认")
    await zhouwei.expect("存在哪些问题")
    await zhouwei.says("二号岗对讲机没电，黄军没有收到通知")
    await zhouwei.expect("请逐条发送改进措施")
    # A line without an owner is refused and nothing is kept; then two good ones in one message.
    await zhouwei.says("增配备用对讲机电池 12月20日")
    await zhouwei.expect("缺少责任人")
    local = (service.clock() + timedelta(days=3)).astimezone(service.settings.tz)
    later = (service.clock() + timedelta(days=10)).astimezone(service.settings.tz)
    await zhouwei.says(f"增配备用对讲机电池 王强 {local:%m月%d日}\n"
                       f"修订通讯联络表 李华 {later:%m月%d日}")
    await zhouwei.expect("已记下", "共2项")
    await zhouwei.says("完成")
    done = await zhouwei.expect("已完成", "2项改进措施已派发")
    first, second = f"GJ-{activation.id:04d}-01", f"GJ-{activation.id:04d}-02"
    assert first in done.text and second in done.text
    wangqiang, lihua = Person(phone, "wangqiang"), Person(phone, "lihua")
    owner_card = await wangqiang.expect(f"改进措施整改 {first}")
    assert "增配备用对讲机电池" in owner_card.text
    await lihua.expect(f"改进措施整改 {second}")
    action = await Ticket.get(number=first)
    assert action.kind is TicketKind.ACTION and action.status is Status.OPEN
    assert action.reviewer_id == "zhouwei" and action.deadline is not None
    assert action.deadline.astimezone(service.settings.tz).strftime("%H:%M") == "17:30"
    assert (await Ticket.get(id=review.id)).status is Status.CLOSED

    # The next tick sends the 评估报告 to the commander and the safety managers, once.
    report = await service.tick_at(service.clock())
    assert report.done["reviews"] == 1
    for person in (zhouwei, Person(phone, "sunli"), Person(phone, "liuyang")):
        text = await person.expect("应急评估报告", "改进措施")
        assert "李华" in text.text and "未回复" in text.text and first in text.text
        await phone.until(lambda p=person: any(m.kind == "file" for m in p.unread()), 10)
    assert (await service.tick_at(service.clock())).done["reviews"] == 0
    stored = await OutboxMessage.get(idempotency_key=f"review:{activation.id}:book")
    book_file = outgoing_from_payload(stored.payload)
    assert isinstance(book_file, File)
    assert book_file.filename == f"应急评估报告-PG-{activation.id:04d}.xlsx"
    book = load_workbook(io.BytesIO(
        await FolderStore(Path(service.settings.media_dir)).get(book_file.media)))
    assert book.sheetnames == ["基本情况", "时间线", "响应情况", "按角色", "改进措施"]
    people = {row[0]: row for row in book["响应情况"].iter_rows(min_row=2, values_only=True)}
    assert people["李华"][4] == "收到" and isinstance(people["李华"][6], int)
    assert people["黄军"][4] == "未回复"
    actions = list(book["改进措施"].iter_rows(min_row=2, values_only=True))
    assert [a[0] for a in actions] == [first, second] and actions[0][2] == "王强"
    assert "应急队员" in {row[0] for row in book["按角色"].iter_rows(min_row=2, values_only=True)}

    # 李华 does hers: a photo, 已整改 (the photo is its evidence), and 周伟 approves it.
    await lihua.sends_photo()
    await lihua.says(f"已整改 {second}")
    await lihua.expect(f"{second} 已提交复查", "周伟")
    review_card = await zhouwei.expect(f"整改复查 {second}")
    await zhouwei.clicks(review_card, "通过")
    await settled()
    assert (await Ticket.get(number=second)).status is Status.CLOSED
    # 王强 does nothing: reminded before his deadline, escalated to 周伟 after it.
    assert action.deadline is not None
    await service.tick_at(service.clock())                 # its ladder is written
    await service.tick_at(action.deadline - timedelta(hours=2))
    await wangqiang.expect("整改提醒", first, "改进措施")
    await service.tick_at(action.deadline + timedelta(minutes=1))
    escalation = await zhouwei.expect("改进措施超期督办", first)
    assert "王强" in escalation.text


async def test_a_review_nobody_holds_is_reminded_then_escalated(
        world: tuple[Phone[Any], Service], database_url: str, tmp_path: Path) -> None:
    phone, service = world
    activation, zhouwei = await closed_drill(phone)
    review = await Ticket.get(kind=TicketKind.REVIEW, activation_id=activation.id)
    assert review.deadline is not None
    await zhouwei.expect("应急评估", review.number or "")
    await service.tick_at(service.clock())                 # its ladder is written
    await service.tick_at(review.deadline - timedelta(hours=2))
    reminder = await zhouwei.expect("评估提醒", review.number or "")
    assert "应急评估" in reminder.text
    await service.tick_at(review.deadline + timedelta(minutes=1))
    escalation = await Person(phone, "chenjianguo").expect("应急评估超期督办", review.number or "")
    assert "周伟尚未完成评估" in escalation.text
    # Typed 已整改 with the review's number does not take it into the evidence dialog.
    await zhouwei.says(f"已整改 {review.number}")
    await zhouwei.expect("请发送“应急评估”完成")
    # Held late, it still closes and its report goes out.
    await zhouwei.says("应急评估")
    await zhouwei.expect("做得好的方面")
    await zhouwei.says("响应迅速")
    await zhouwei.says("取消")
    await zhouwei.expect("已暂停")
    await zhouwei.says("应急评估")                   # resumes at the second question
    await zhouwei.expect("存在哪些问题")
    await zhouwei.says("无")
    await zhouwei.says("无")
    await zhouwei.expect("已完成", "没有登记改进措施")
    report = await service.tick_at(service.clock())
    assert report.done["reviews"] == 1
    stored = await Activation.get(id=activation.id)
    assert stored.review == {"good": "响应迅速", "problems": "无", "by": "zhouwei",
                             "actions": []}
    # The files again, for an inspector: every line in the markdown, the same workbook.
    env = {"SAFETYBOT_DATABASE_URL": database_url}
    run = cli("review-report", review.number or "", "--out", str(tmp_path / "out"), env=env)
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "out" / f"应急评估报告-{review.number}.md").read_text(encoding="utf-8")
    for heading in ("一、基本情况", "二、时间线", "三、响应情况", "四、未回复人员",
                    "五、做得好的方面", "六、存在的问题", "七、改进措施"):
        assert heading in text
    assert "响应迅速" in text and "李华：" in text
    book = load_workbook(tmp_path / "out" / f"应急评估报告-{review.number}.xlsx")
    assert book.sheetnames[0] == "基本情况"
    unheld = cli("review-report", "PG-9999", "--out", str(tmp_path / "out"), env=env)
    assert unheld.returncode == 1 and "no review PG-9999 has been held" in unheld.stderr


async def test_only_the_commander_or_a_safety_manager_holds_the_review(
        world: tuple[Phone[Any], Service]) -> None:
    phone, _ = world
    activation, _ = await closed_drill(phone)
    number = f"PG-{activation.id:04d}"
    lihua = Person(phone, "lihua")
    await lihua.says(f"应急评估 {number}")
    await lihua.expect("由应急指挥或安全管理员完成")
    await lihua.says("应急评估")
    await lihua.expect("没有待完成的应急评估")
    sunli = Person(phone, "sunli")
    await sunli.says(f"应急评估 {number}")
    await sunli.expect("做得好的方面")
    await sunli.says("响应迅速")
    await sunli.says("无")
    await sunli.expect("请逐条发送改进措施")
    # Each part missing is named, and nothing is kept from a line that lacks one.
    await sunli.says("增配备用对讲机电池 王强")
    await sunli.expect("缺少期限")
    await sunli.says("王强 12月20日")
    await sunli.expect("缺少措施内容")
    await sunli.says("完成")
    await sunli.expect("已完成", "没有登记改进措施")
    assert not await Ticket.filter(kind=TicketKind.ACTION).exists()
    assert (await Activation.get(id=activation.id)).review == {
        "good": "响应迅速", "problems": "无", "by": "sunli", "actions": []}
