"""A worker's photo becomes a ticket that is owned, fixed, reviewed and closed, all in chat,
through the real service and a platform's simulator (demo plant: see config/demo-org.toml). Each
story runs on WeCom and on DingTalk; the few that need one platform's protocol say why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from handlers.hazard.rectify import NUMBER
from models.audit import AuditEvent, record
from models.dialog import Dialog
from models.hazard import Status, Ticket, TicketCard
from models.inbound import Inbound, InboundKind
from models.inbox import inbox_put
from models.org import Area, User
from scheduler.dialogs import expire_dialogs
from tests.harness import Service, settled
from tests.plant import PLATFORMS, Person, Phone, Seen, phone_of, plant

TZ = ZoneInfo("Asia/Shanghai")     # the demo plant's


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    async with plant(database_url, media_dir, platform=request.param) as (sim, service):
        yield phone_of(sim), service


@pytest.fixture
def phone(world: tuple[Phone[Any], Service]) -> Phone[Any]:
    return world[0]


@pytest.fixture
def service(world: tuple[Phone[Any], Service]) -> Service:
    return world[1]


async def file_general(phone: Phone[Any]) -> tuple[Person, Person, str]:
    """张三 reports a bare live wire in 3号车间; 电工 高峰 (the 用电类 owner) gets it."""
    worker, owner = Person(phone, "zhangsan"), Person(phone, "gaofeng")
    await worker.sends_photo()
    await worker.expect("已收到照片", "哪个区域")
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    summary = await worker.expect("请确认隐患上报")
    await worker.clicks(summary, "提交")
    filed = await worker.expect("已提交，编号")
    number = NUMBER.search(filed.text)
    assert number is not None
    return worker, owner, number.group()


async def accept_and_rectify(owner: Person, assigned: Seen, number: str) -> None:
    """The owner accepts the card, sends the after-photo and 已整改: sent for review."""
    await owner.clicks(assigned, "接收")
    await owner.expect(f"已接收 {number}")
    await owner.sends_photo()
    await owner.expect("如是整改后的照片")
    await owner.says("已整改")
    await owner.expect(f"{number} 已提交复查，复查人：徐明")


# ---------------------------------------------------------------------------------------------
# The report dialog


async def test_a_photo_and_one_sentence_fill_the_whole_report(phone: Phone[Any]) -> None:
    worker = Person(phone, "zhangsan")
    await worker.sends_photo()
    await worker.expect("已收到照片（共1张）", "哪个区域", "1. 1号车间")   # one message
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    summary = await worker.expect("请确认隐患上报")
    assert summary.field("区域") == "3号车间"
    assert summary.field("类别") == "用电类 H01"      # the code, as inspectors look for it
    assert summary.field("等级") == "一般"
    assert summary.field("照片") == "1张"
    assert summary.labels == ["提交", "修改", "取消"]
    assert "配电箱门没关 有裸露电线" in summary.note
    assert "未命中重大隐患判定条件" in summary.note

    await worker.clicks(summary, "提交")
    filed = (await worker.expect("已提交，编号")).text
    assert "整改责任人：高峰" in filed and "整改期限" in filed
    ticket = await Ticket.get(status=Status.OPEN)
    assert ticket.number and ticket.number in filed
    assert (ticket.owner_id, ticket.reviewer_id, ticket.category) == ("gaofeng", "xuming", "H01")
    assert ticket.deadline is not None
    # 用电类: three working days on, at the end of the working day (tests/unit/test_calendar.py).
    assert ticket.deadline.astimezone(TZ).time() == time(17, 30)
    assert ticket.deadline > ticket.opened_at + timedelta(days=2)  # type: ignore[operator]
    assert ticket.checklist["责任"] == "高峰"
    assert await Dialog.filter(user_id="zhangsan").count() == 0

    owner = Person(phone, "gaofeng")
    await owner.expect("[image]")
    assigned = await owner.expect(f"隐患整改 {ticket.number}")
    assert assigned.field("上报人") == "张三"
    assert assigned.labels == ["接收", "已整改", "转派", "申请延期"]
    filed_events = await AuditEvent.filter(subject_id=str(ticket.id), action="filed")
    assert [(e.from_state, e.to_state) for e in filed_events] == [("draft", "open")]


async def test_the_description_keeps_the_reporter_s_words_and_findings_stay_apart(
        phone: Phone[Any]) -> None:
    """An expired extinguisher and a gauge in the red are two findings, not a failed safety
    fitting: 一般. The area is found in the sentence, which is kept as written."""
    worker = Person(phone, "zhaolei")
    await worker.says("二号仓库的灭火器过期了，压力表指针在红区")
    summary = await worker.expect("请确认隐患上报")
    assert (summary.field("区域"), summary.field("类别"), summary.field("等级")) == (
        "仓库", "消防类 F02", "一般")
    draft = await Ticket.get(reporter_id="zhaolei")
    assert draft.description == "二号仓库的灭火器过期了，压力表指针在红区"
    await worker.says("取消")
    await worker.says("仓库，安全阀被拆除了")          # one finding: 重大
    summary = await worker.expect("请确认隐患上报", "承压设备安全附件失效")
    assert (summary.field("区域"), summary.field("等级")) == ("仓库", "重大")
    assert (await Ticket.filter(reporter_id="zhaolei").order_by("-id").first()
            ).description == "安全阀被拆除了"        # the area, named apart, is cut


async def test_a_hazard_that_comes_back_is_filed_and_marked_recurring(
        phone: Phone[Any]) -> None:
    """Closed last week and reported again in other words: a new ticket marked 复发 with the
    earlier one named, the owner and the safety managers told. A different hazard of the same
    area and category is only new."""
    worker, owner, number = await file_general(phone)
    await accept_and_rectify(owner, await owner.expect(f"隐患整改 {number}"), number)
    reviewer = Person(phone, "xuming")
    await reviewer.clicks(await reviewer.expect(f"整改复查 {number}"), "通过")
    await reviewer.expect(f"{number} 复查通过，已闭环")
    manager = Person(phone, "sunli")

    async def reported(text: str) -> Ticket:
        await worker.says(text)
        await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
        filed = NUMBER.search((await worker.expect("已提交，编号")).text)
        assert filed is not None and filed.group() != number
        return await Ticket.get(number=filed.group())

    other = await reported("3号车间 插座烧焦发黑")            # 用电类 too, another hazard
    assert other.recurs is None
    await manager.says(f"取消 {other.number} 另行处理")       # no longer open: not a duplicate
    await manager.expect(f"已取消 {other.number}")
    await settled()
    assert [m for m in manager.unread() if "【复发】" in m.text] == []

    again = await reported("3号车间 配电箱门又没关，里面电线裸露")
    assert again.status is Status.OPEN and again.recurs == [number]
    assigned = await owner.expect(f"隐患整改 {again.number}")
    for person in (owner, Person(phone, "liuyang"), manager):
        notice = await person.expect(f"【复发】{again.number}", f"已闭环的{number}相似")
        assert "管理缺陷" in notice.text
    await worker.says(again.number or "")
    assert f"复发：与已闭环的{number}相似" in (await worker.expect("**记录**")).text

    # Its review asks whether a 管理缺陷 let it come back before it closes.
    await accept_and_rectify(owner, assigned, again.number or "")
    review = await reviewer.expect(f"整改复查 {again.number}")
    await reviewer.clicks(review, "通过")
    await reviewer.expect(f"{again.number} 为复发隐患", "是否属于管理缺陷")
    await reviewer.says("可能吧")
    await reviewer.expect("请回复“是”（属于管理缺陷）或“否”（不属于）")
    await reviewer.says("是，巡检制度未落实")
    await reviewer.expect(f"{again.number} 复查通过，已闭环")
    await again.refresh_from_db()
    assert (again.status, again.recurrence_cause) == (Status.CLOSED, "管理缺陷")
    assert await AuditEvent.filter(subject_id=str(again.id), action="recurrence_cause",
                                   note="管理缺陷：巡检制度未落实").exists()


async def test_the_third_recurrence_in_a_quarter_proposes_a_management_defect(
        phone: Phone[Any], service: Service) -> None:
    now = service.clock()
    for n, recurs in ((1, None), (2, ["HZ-20261101-0001"]), (3, ["HZ-20261101-0002"])):
        await Ticket.create(number=f"HZ-20261101-000{n}", status=Status.CLOSED,
                            reporter_id="zhangsan", owner_id="gaofeng", reviewer_id="xuming",
                            area_id="A3", category="H01", description="配电箱门没关，电线裸露",
                            created_at=now, updated_at=now, closed_at=now, recurs=recurs)
    worker, manager = Person(phone, "zhangsan"), Person(phone, "sunli")
    await worker.says("3号车间 配电箱门又没关，里面电线裸露")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    await worker.expect("已提交，编号")
    await manager.expect("【复发】")
    proposal = await manager.expect("【建议】3号车间 · 用电类 H01 本季度已复发3次")
    suggested = proposal.text.rsplit("可直接发送：", 1)[1]
    assert suggested == "3号车间 同类隐患本季度复发3次，巡检和管理制度未落实"
    await manager.says(suggested)
    summary = await manager.expect("请确认隐患上报")
    assert (summary.field("类别"), summary.field("类型")) == ("管理制度类 D09", "管理缺陷")
    await settled()
    assert [m for m in Person(phone, "gaofeng").unread() if "【建议】" in m.text] == []


async def test_the_menu_and_the_usual_words_start_a_report(phone: Phone[Any]) -> None:
    for user_id, start in (("zhangsan", "menu"), ("huangjun", "随手拍"), ("wanghaiyan", "隐患")):
        if start == "menu":
            await phone.uses_menu(user_id, "report", "上报")
        else:
            await Person(phone, user_id).says(start)
        await Person(phone, user_id).expect("开始上报隐患")
        assert (await Dialog.get(user_id=user_id)).kind == "report"
        assert (await Ticket.get(reporter_id=user_id)).status is Status.DRAFT
    worker = Person(phone, "zhangsan")
    asked = (await worker.expect("哪个区域")).text
    await worker.says("2")                                  # the area by its number
    await worker.expect("哪一类隐患")
    second = asked.split("\n2. ", 1)[1].split("\n", 1)[0]
    assert (await Area.get(code=(await Ticket.get(reporter_id="zhangsan")).area_id or "")
            ).name == second


async def test_the_bot_asks_only_for_what_is_missing(phone: Phone[Any]) -> None:
    worker = Person(phone, "wanghaiyan")
    await worker.says("上报")
    await worker.expect("哪个区域")
    await worker.says("火星基地")
    await worker.expect("没有找到“火星基地”对应的区域", "哪个区域", "6. ")   # re-asked, choices
    await worker.says("三车间")                             # an alias
    await worker.expect("哪一类隐患", "1. 用电类")
    await worker.says("不知道")
    await worker.expect("没有找到“不知道”对应的类别", "哪一类隐患")
    await worker.says("2")                                  # a numbered choice: 消防类
    await worker.expect("请用一句话描述隐患情况")
    await worker.says("x" * 501)
    await worker.expect("内容太长了（最多500字）", "请用一句话描述隐患情况")
    await worker.says("灭火器压力不足，指针在红区")
    summary = await worker.expect("请确认隐患上报")
    assert (summary.field("区域"), summary.field("类别")) == ("3号车间", "消防类 F02")
    draft = await Ticket.get(reporter_id="wanghaiyan")
    assert draft.status is Status.DRAFT and draft.description == "灭火器压力不足，指针在红区"


@pytest.mark.parametrize("name", ["第{n:02d}号精馏装置区", "东区{n:02d}号联合装置二楼北侧"
                                  "精馏塔顶冷凝器检修平台及周边管廊区域"], ids=["short", "long"])
async def test_a_large_plants_area_question_still_fits_one_message(
        phone: Phone[Any], name: str) -> None:
    """A platform refuses a text over its size (WeCom 2,048 bytes: 45002): the list stops at 30
    areas, or sooner when the names are long, and the rest are named by the reporter."""
    for n in range(60):
        await Area.create(code=f"Z{n:02d}", name=name.format(n=n), owner_id="lihua",
                          reviewer_id="huangjun")
    worker = Person(phone, "zhangsan")
    await worker.says("上报")
    question = (await worker.expect("开始上报隐患", "哪个区域",
                                    "共66个区域，其他区域请直接回复名称")).text
    assert len(question.encode()) <= phone.limits.message_bytes
    listed = question.count("\n") - 2
    # DingTalk's 5,000 bytes hold 30 of the long names too; WeCom's 2,048 do not.
    all_fit = name.startswith("第") or phone.platform == "dingtalk"
    assert listed == 30 if all_fit else 10 < listed < 30
    await worker.says("45")                            # a number the list never shows
    await worker.expect("没有找到“45”对应的区域", "哪个区域")
    await worker.says("没有这个区域" * 4)               # the longest answer quoted back
    question = (await worker.expect("没有找到", "哪个区域", "共66个区域")).text
    assert len(question.encode()) <= phone.limits.message_bytes
    await worker.says(name.format(n=59))               # not in the list, found by name
    await worker.expect("哪一类隐患")
    assert (await Ticket.get(reporter_id="zhangsan")).area_id == "Z59"


async def test_a_close_match_finds_the_area(phone: Phone[Any]) -> None:
    worker = Person(phone, "zhaolei")
    await worker.says("隐患")
    await worker.expect("哪个区域")
    await worker.says("锅炉房房")                           # a typo, close to 锅炉房
    await worker.expect("哪一类隐患")
    assert (await Ticket.get(reporter_id="zhaolei")).area_id == "B1"


# WeCom only: a DingTalk robot is sent no location messages.
@pytest.mark.parametrize("world", ["wecom"], indirect=True)
async def test_a_location_finds_the_area_and_back_keeps_it(phone: Phone[Any]) -> None:
    worker = Person(phone, "zhaolei")
    await worker.says("隐患")
    await worker.expect("哪个区域")
    await worker.sends_location(32.25405, 118.78185, "江苏省南京市某路1号")   # by 配电房 (E1)
    await worker.expect("已根据位置确定区域：配电房", "哪一类隐患")
    await worker.says("返回")
    await worker.expect("哪个区域")
    await worker.says("锅炉房")
    await worker.expect("哪一类隐患")
    draft = await Ticket.get(reporter_id="zhaolei")
    assert draft.area_id == "B1" and draft.location is not None


async def test_several_photos_join_one_draft_and_cancel_keeps_nothing_open(
        phone: Phone[Any]) -> None:
    worker = Person(phone, "zhangsan")
    for _ in range(3):
        await worker.sends_photo()
    await worker.expect("已收到照片（共1张）", "哪个区域")
    await settled()
    assert worker.unread() == []                            # the 2nd and 3rd joined quietly
    draft = await Ticket.get(reporter_id="zhangsan")
    assert len(draft.photos) == 3
    await worker.says("取消")
    await worker.expect("已取消本次上报")
    await draft.refresh_from_db()
    assert draft.status is Status.CANCELLED
    assert await Dialog.filter(user_id="zhangsan").count() == 0


async def test_a_bad_photo_gets_a_clear_answer_and_the_draft_stays(phone: Phone[Any]) -> None:
    worker = Person(phone, "zhangsan")
    await worker.says("3号车间 皮带防护罩缺失")
    await worker.expect("请确认隐患上报")
    await worker.sends_photo(b"%PDF-1.4 not an image")
    await worker.expect("只能接收图片")
    await phone.sends_lost_photo(worker.id)
    await worker.expect("照片没有接收成功，请重新发送")
    draft = await Ticket.get(reporter_id="zhangsan")
    assert draft.status is Status.DRAFT and draft.photos == []
    assert (draft.area_id, draft.category) == ("A3", "M03")
    assert (await Dialog.get(user_id="zhangsan")).step == "confirm"


async def test_blank_text_and_two_answers_sent_together(phone: Phone[Any]) -> None:
    worker = Person(phone, "zhangsan")
    await worker.says("上报")
    await worker.expect("哪个区域")
    await worker.says("   ")
    await worker.expect("没有收到文字内容", "哪个区域")
    await worker.says("3号车间")             # two answers at once, before any reply:
    await worker.says("消防")                 # each is taken by the question it answers
    await worker.expect("哪一类隐患")
    await worker.expect("请用一句话描述隐患情况")
    draft = await Ticket.get(reporter_id="zhangsan")
    assert (draft.area_id, draft.category) == ("A3", "F02")


async def test_a_submit_with_nobody_to_own_it_is_refused_and_the_draft_stays(
        phone: Phone[Any]) -> None:
    """The 用电类 owner has left: nothing is filed and no number drawn; once the roster names
    him again, 提交 by text files the same draft."""
    await User.filter(id="gaofeng").update(active=False)
    worker = Person(phone, "zhangsan")
    await worker.sends_photo()
    await worker.expect("哪个区域")
    await worker.says("3号车间 配电箱门没关 有裸露电线")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    await worker.expect("尚未指定整改责任人或复查人")
    draft = await Ticket.get(reporter_id="zhangsan")
    assert (draft.status, draft.number) == (Status.DRAFT, None)
    await User.filter(id="gaofeng").update(active=True)
    await worker.says("提交")
    await worker.expect("已提交，编号 HZ-")
    filed = await Ticket.get(id=draft.id)
    assert (filed.status, filed.owner_id) == (Status.OPEN, "gaofeng")
    assert filed.number and filed.number.endswith("-0001")


async def test_a_restart_in_the_middle_of_the_dialog_loses_nothing(
        world: tuple[Phone[Any], Service]) -> None:
    phone, service = world
    worker = Person(phone, "linfang")
    await worker.says("上报")
    await worker.expect("哪个区域")
    await worker.says("仓库")
    await worker.expect("哪一类隐患")
    await service.stop()
    await service.start()
    await worker.says("现场管理")
    await worker.expect("请用一句话描述隐患情况")
    await worker.says("通道堆放杂物，叉车无法通行")
    summary = await worker.expect("请确认隐患上报")
    assert (summary.field("区域"), summary.field("类别")) == ("仓库", "现场管理类 G08")


async def test_edit_from_the_summary_card_changes_one_field(phone: Phone[Any]) -> None:
    worker = Person(phone, "zhangsan")
    await worker.says("1号车间 插座烧黑了")
    summary = await worker.expect("请确认隐患上报")
    await worker.clicks(summary, "修改")
    await worker.expect("要修改哪一项")
    await worker.says("1")
    await worker.expect("哪个区域")
    await worker.says("配电房")
    second = await worker.expect("请确认隐患上报")
    assert (second.field("区域"), second.field("类别")) == ("配电房", "用电类 H01")
    await worker.clicks(summary, "提交")                      # the old card
    await worker.expect("无需再次操作")
    assert await Ticket.filter(status=Status.OPEN).count() == 0
    await worker.clicks(second, "提交")
    await worker.expect("已提交，编号")


async def idle_for(service: Service, span: timedelta) -> None:
    """Nobody answers for `span`: the service's clock moves on."""
    await service.time_passes(until=service.clock() + span)


async def test_an_idle_draft_is_put_aside_kept_and_resumed(phone: Phone[Any],
                                                          service: Service) -> None:
    worker = Person(phone, "zhangsan")
    await worker.sends_photo()
    await worker.expect("哪个区域")
    await idle_for(service, timedelta(minutes=31))
    assert await expire_dialogs(service.clock()) == 1
    assert await expire_dialogs(service.clock()) == 0   # a second tick queues nothing new
    await worker.expect("超过30分钟没有回复，草稿已为您保存", "继续上报")
    assert await Dialog.filter(user_id="zhangsan").count() == 0
    draft = await Ticket.get(reporter_id="zhangsan")
    assert draft.status is Status.DRAFT and len(draft.photos) == 1
    await worker.says("继续上报")
    await worker.expect("继续填写您", "哪个区域")
    await worker.says("1号车间 急停按钮失灵")
    summary = await worker.expect("请确认隐患上报")
    assert summary.field("照片") == "1张"


async def test_an_answer_given_before_the_expiry_is_handled_wins(phone: Phone[Any],
                                                                 service: Service) -> None:
    worker = Person(phone, "zhangsan")
    await worker.says("上报")
    await worker.expect("哪个区域")
    dialog = await Dialog.get(user_id="zhangsan")
    await worker.says("3号车间")                        # answered: a new question is asked
    await worker.expect("哪一类隐患")
    stale = Inbound(platform=phone.platform, user_id="zhangsan", kind=InboundKind.EXPIRED,
                    event_key=dialog.asked_at.isoformat(), dedup_key="expired:test")
    assert await inbox_put(stale, service.clock())
    await settled()
    assert worker.unread() == []
    assert (await Dialog.get(user_id="zhangsan")).step == "category"


async def test_an_unanswered_reject_reason_brings_the_review_card_back(
        phone: Phone[Any], service: Service) -> None:
    _, owner, number = await file_general(phone)
    await owner.expect(f"隐患整改 {number}")
    await owner.sends_photo()
    await owner.says("已整改")
    reviewer = Person(phone, "xuming")
    review = await reviewer.expect(f"整改复查 {number}")
    await reviewer.clicks(review, "驳回")
    await reviewer.expect("驳回原因")
    await idle_for(service, timedelta(hours=1))
    await expire_dialogs(service.clock())
    await reviewer.expect(f"（{number}）长时间没有回复，已结束")
    again = await reviewer.expect(f"整改复查 {number}")
    await reviewer.clicks(again, "通过")
    await reviewer.expect("已闭环")


# ---------------------------------------------------------------------------------------------
# Rectification and review


async def test_fix_reject_with_reason_fix_again_approve_closes(phone: Phone[Any]) -> None:
    worker, owner, number = await file_general(phone)
    assigned = await owner.expect(f"隐患整改 {number}")
    await owner.clicks(assigned, "接收")
    await owner.expect(f"已接收 {number}")
    await owner.sends_photo()                      # the after-photo first, then 已整改
    await owner.expect("如是整改后的照片，请回复“已整改”",
                       "哪个区域")                  # (it could be a new report …)
    await owner.says("已整改")                      # … until 已整改 claims it as evidence
    await owner.expect(f"{number} 已提交复查，复查人：徐明")
    reviewer = Person(phone, "xuming")
    await reviewer.expect("整改前照片")
    await reviewer.expect("整改后照片")
    review = await reviewer.expect(f"整改复查 {number}")
    assert (review.field("整改照片"), review.field("整改责任人")) == ("1张", "高峰")
    assert "隐患：配电箱门没关 有裸露电线\n整改说明：无" in review.text
    await reviewer.clicks(review, "驳回")
    await reviewer.expect("请回复", "驳回原因")
    await phone.changed(review)
    await reviewer.sends_photo()
    await reviewer.expect("驳回需要说明原因")
    await reviewer.says("线头没有包扎，箱门锁未更换")
    await reviewer.expect(f"已驳回 {number}")
    await owner.expect(f"{number} 复查未通过", "线头没有包扎")
    reopened = await owner.expect(f"隐患整改 {number}")          # a live card again
    assert reopened.labels == ["已整改", "转派", "申请延期"]
    ticket = await Ticket.get(number=number)
    assert ticket.status is Status.OPEN

    await owner.says(f"已整改 {number}")
    await owner.expect("请发送", "整改后的照片")
    await owner.says("提交")
    await owner.expect("请先发送至少一张整改后的照片")
    await owner.sends_photo()
    await owner.expect("已收到整改照片")
    await owner.says("已包扎并更换门锁")
    await owner.says("提交")
    await owner.expect(f"{number} 已提交复查")
    review = await reviewer.expect(f"整改复查 {number}", "已包扎并更换门锁")
    await reviewer.clicks(review, "通过")
    await reviewer.expect(f"{number} 复查通过，已闭环")
    await worker.expect(f"{number}", "已闭环")
    await owner.expect(f"{number}", "已闭环")
    await ticket.refresh_from_db()
    assert ticket.status is Status.CLOSED and ticket.closed_at is not None
    actions = await AuditEvent.filter(subject_id=str(ticket.id)).order_by("id").values_list(
        "action", flat=True)
    assert actions == ["filed", "accepted", "submitted", "rejected", "submitted", "closed"]

    await reviewer.clicks(review, "通过")                   # the same card, pressed again
    await reviewer.expect("无需再次操作")
    await settled()
    assert await AuditEvent.filter(subject_id=str(ticket.id)).count() == len(actions)


async def test_one_decision_updates_every_recipients_card_and_later_clicks_change_nothing(
        phone: Phone[Any]) -> None:
    _, owner, number = await file_general(phone)
    assigned = await owner.expect(f"隐患整改 {number}")
    await owner.clicks(assigned, "接收")
    await owner.expect(f"已接收 {number}")
    assert "已由高峰接收" in (await phone.changed(assigned)).text       # everyone's copy
    await owner.clicks(assigned, "接收")
    await owner.expect("已由高峰处理")
    assert await AuditEvent.filter(action="accepted").count() == 1


async def test_a_card_to_several_principals_is_decided_once_for_all(
        phone: Phone[Any]) -> None:
    """A 重大 ticket's 治理方案 card goes to every principal; the first to act takes it."""
    await User.create(id="zhaomin", name="赵敏", roles=["principal"])
    phone.add_user("zhaomin")
    worker = Person(phone, "guoqiang")
    await worker.says("罐区 液氨储罐法兰泄漏，有刺鼻气味")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    await worker.expect("主要负责人组织制定治理方案")
    ticket = await Ticket.get(reporter_id="guoqiang")
    first, second = Person(phone, "chenjianguo"), Person(phone, "zhaomin")
    card_one = await first.expect(f"重大隐患 {ticket.number}")
    card_two = await second.expect(f"重大隐患 {ticket.number}")
    assert card_one.task_id == card_two.task_id
    await first.clicks(card_one, "填写治理方案")
    await first.expect("1. 请填写")
    assert "已由陈建国填写治理方案" in (await phone.changed(card_one)).text
    await second.clicks(card_two, "填写治理方案")
    await second.expect("已由陈建国处理")
    assert not await Dialog.filter(user_id="zhaomin").exists()
    assert (await Dialog.get(user_id="chenjianguo")).kind == "plan"


async def test_clicks_by_the_wrong_person_or_with_a_forged_key_change_nothing(
        phone: Phone[Any]) -> None:
    _, owner, number = await file_general(phone)
    assigned = await owner.expect(f"隐患整改 {number}")
    intruder = Person(phone, "wanghaiyan")
    await intruder.clicks(assigned, "接收")                 # a forwarded card
    await intruder.expect("这张卡片不是发给您的")
    task_id = assigned.task_id
    forged = await phone.clicks(owner.id, assigned, f"own:accept:{task_id[:-1]}x")
    assert forged.status == 200
    await owner.expect("无法识别这个操作")
    ticket = await Ticket.get(number=number)
    assert ticket.accepted_at is None and ticket.version == 1
    refused = await AuditEvent.filter(action="refused").values_list("actor", flat=True)
    assert sorted(refused) == ["gaofeng", "wanghaiyan"]
    card = await TicketCard.get(task_id=task_id)
    assert card.decided_by is None


async def test_the_same_click_delivered_twice_is_one_decision(phone: Phone[Any]) -> None:
    _, owner, number = await file_general(phone)
    assigned = await owner.expect(f"隐患整改 {number}")
    click = await owner.clicks(assigned, "接收")
    await phone.sends_again(owner.id, click)               # the platform's retry
    await owner.expect(f"已接收 {number}")
    await settled()
    assert not [m for m in owner.unread() if "已接收" in m.text]
    assert await AuditEvent.filter(action="accepted").count() == 1


async def test_only_the_owner_submits_and_only_the_reviewer_decides(phone: Phone[Any]) -> None:
    worker, owner, number = await file_general(phone)
    await worker.says(f"已整改 {number}")
    await worker.expect("只有整改责任人可以提交整改")
    await worker.says(f"申请延期 {number}")
    await worker.expect("只有整改责任人可以申请延期")
    await worker.says(f"转派 {number}")
    await worker.expect("只有整改责任人、安全管理员或主要负责人可以转派")
    ticket = await Ticket.get(number=number)
    refusals = await AuditEvent.filter(subject_id=str(ticket.id), action="refused",
                                       actor="zhangsan").values_list("note", flat=True)
    assert sorted(refusals) == sorted([
        "提交整改: 只有整改责任人可以提交整改。", "申请延期: 只有整改责任人可以申请延期。",
        "转派: 只有整改责任人、安全管理员或主要负责人可以转派。"])
    assert (await Ticket.get(number=number)).version == ticket.version
    await owner.says("已整改")
    await owner.expect("请发送", "整改后的照片")
    await owner.sends_photo()
    await owner.says("提交")
    reviewer = Person(phone, "xuming")
    review = await reviewer.expect(f"整改复查 {number}")
    outsider = Person(phone, "huangjun")
    await outsider.clicks(review, "通过")
    await outsider.expect("这张卡片不是发给您的")
    assert (await Ticket.get(number=number)).status is Status.SUBMITTED


async def test_a_manager_transfers_by_typing_and_a_refused_done_keeps_the_draft(
        phone: Phone[Any]) -> None:
    worker, owner, number = await file_general(phone)
    await worker.sends_photo()                      # a new report begins with a photo …
    await worker.expect("哪个区域")
    await worker.says(f"已整改 {number}")           # … then a 已整改 that is not theirs
    await worker.expect("只有整改责任人可以提交整改")
    draft = await Ticket.get(reporter_id="zhangsan", status=Status.DRAFT)
    assert len(draft.photos) == 1
    assert await Dialog.filter(user_id="zhangsan", kind="report").exists()
    manager = Person(phone, "sunli")                  # 孙丽, 专职安全员
    await manager.says(f"转派 {number}")
    await manager.expect(f"请回复 {number} 新的整改责任人")
    await manager.says("何平安")
    await manager.expect(f"已将 {number} 转派给何平安")
    assert (await Ticket.get(number=number)).owner_id == "hepingan"
    await Person(phone, "hepingan").expect(f"隐患整改 {number}")
    await owner.expect(f"{number} 已由孙丽转派给何平安")
    await owner.says(f"已整改 {number}")            # 高峰 no longer owns it
    await owner.expect("只有整改责任人可以提交整改")


async def test_the_principal_may_transfer_too(phone: Phone[Any]) -> None:
    """转派 is the owner's, a safety manager's and the principal's (主要负责人), who answers
    for every hazard in the plant; README and the refusal say the same."""
    _, owner, number = await file_general(phone)
    principal = Person(phone, "chenjianguo")
    await principal.says(f"转派 {number}")
    await principal.expect(f"请回复 {number} 新的整改责任人")
    await principal.says("何平安")
    await principal.expect(f"已将 {number} 转派给何平安")
    assert (await Ticket.get(number=number)).owner_id == "hepingan"
    await owner.expect(f"{number} 已由陈建国转派给何平安")


async def test_several_open_tickets_ask_which_and_the_card_starts_the_evidence(
        phone: Phone[Any]) -> None:
    worker, owner, first = await file_general(phone)
    first_card = await owner.expect(f"隐患整改 {first}")
    await worker.sends_photo()
    await worker.expect("哪个区域")
    await worker.says("1号车间 配电箱门没关 有裸露电线")
    await worker.clicks(await worker.expect("请确认隐患上报"), "提交")
    second = NUMBER.search((await worker.expect("已提交，编号")).text)
    assert second is not None and second.group() != first
    await owner.says("已整改")
    listed = (await owner.expect("您有2项整改中的隐患")).text
    assert first in listed and second.group() in listed
    await owner.says("3")
    await owner.expect("请回复 1 到 2 之间的序号")
    chosen = first if listed.index(first) > listed.index(second.group()) else second.group()
    await owner.says("2")
    await owner.expect(f"请发送 {chosen} 整改后的照片")
    await owner.says("取消")
    await owner.expect("已取消")
    await owner.clicks(first_card, "已整改")         # through the card this time
    await owner.expect(f"请发送 {first} 整改后的照片")
    await owner.says("取消")                         # a card that started it comes again
    again = await owner.expect(f"隐患整改 {first}")
    await owner.clicks(again, "已整改")
    await owner.sends_photo()
    await owner.expect("已收到整改照片")
    await owner.says("提交")
    await owner.expect(f"{first} 已提交复查")
    assert (await Ticket.get(number=first)).status is Status.SUBMITTED
    assert (await Ticket.get(number=second.group())).status is Status.OPEN


async def test_transfer_by_the_cards_drop_down_and_an_approved_extension(
        phone: Phone[Any]) -> None:
    _, owner, number = await file_general(phone)
    assigned = await owner.expect(f"隐患整改 {number}")
    assert ("hepingan", "何平安") in assigned.options
    # 高峰's colleagues in 设备部 first, then the other areas' owners.
    assert [i for i, _ in assigned.options] == [
        "hepingan", "xuming", "guoqiang", "lihua", "linfang", "wangqiang"]
    await owner.clicks(assigned, "转派", selected="hepingan")
    await owner.expect(f"已将 {number} 转派给何平安")
    new_owner = Person(phone, "hepingan")
    await new_owner.expect(f"隐患整改 {number}")
    ticket = await Ticket.get(number=number)
    assert ticket.owner_id == "hepingan"
    old_deadline = ticket.deadline
    assert old_deadline is not None

    await new_owner.says("申请延期")
    await new_owner.expect("申请延期的原因")
    await new_owner.says("备件需要采购")
    await new_owner.expect("希望延至的日期")
    await new_owner.says("下周吧")
    await new_owner.expect("没有看懂这个日期")
    await new_owner.says("10天")
    await new_owner.expect("延期申请已提交复查人审批")
    reviewer = Person(phone, "xuming")
    asked = await reviewer.expect(f"延期申请 {number}", "备件需要采购")
    await reviewer.clicks(asked, "同意延期")
    await new_owner.expect(f"{number} 的延期申请", "同意延期")
    await ticket.refresh_from_db()
    assert ticket.deadline is not None and ticket.deadline > old_deadline + timedelta(days=5)
    assert ticket.extension == {}


async def test_an_extension_asked_from_the_card_and_refused_keeps_the_deadline(
        phone: Phone[Any]) -> None:
    _, owner, number = await file_general(phone)
    await owner.clicks(await owner.expect(f"隐患整改 {number}"), "申请延期")
    await owner.expect("申请延期的原因")
    await owner.says("等停产检修")
    await owner.expect("希望延至的日期")
    await owner.says("20天")
    await owner.expect("延期申请已提交复查人审批")
    before = await Ticket.get(number=number)
    assert before.extension["reason"] == "等停产检修"
    reviewer = Person(phone, "xuming")
    await reviewer.clicks(await reviewer.expect(f"延期申请 {number}"), "不同意")
    await reviewer.expect(f"已处理 {number} 的延期申请")
    told = (await owner.expect(f"{number} 的延期申请")).text
    assert "不同意延期，请按原期限" in told
    fresh = await owner.expect(f"隐患整改 {number}")        # the one clicked is stale now
    await owner.clicks(fresh, "已整改")
    await owner.expect(f"请发送 {number} 整改后的照片")
    after = await Ticket.get(number=number)
    assert (after.deadline, after.extension) == (before.deadline, {})
    assert await AuditEvent.filter(subject_id=str(after.id), action="extension_refused",
                                   actor="xuming").count() == 1


async def test_a_major_hazard_needs_its_plan_and_the_principals_approval(
        phone: Phone[Any]) -> None:
    worker = Person(phone, "guoqiang")
    await worker.sends_photo()
    await worker.expect("哪个区域")
    await worker.says("罐区 液氨储罐法兰泄漏，有刺鼻气味")
    summary = await worker.expect("请确认隐患上报")
    assert summary.field("等级") == "重大"
    reason = summary.note
    assert "「液氨」" in reason and "「泄漏」" in reason and "液氨制冷" in reason
    await worker.clicks(summary, "提交")
    await worker.expect("已提交", "主要负责人组织制定治理方案")
    ticket = await Ticket.get(reporter_id="guoqiang")
    assert ticket.status is Status.PLAN and ticket.deadline is None

    principal = Person(phone, "chenjianguo")
    plan = await principal.expect(f"重大隐患 {ticket.number}")
    await principal.clicks(plan, "填写治理方案")
    answers = ["停用泄漏储罐，消除泄漏", "倒罐后更换法兰垫片", "维修费2万元已批准",
               "设备部牵头，罐区配合", "默认", "设警戒区，配备正压式空气呼吸器"]
    for n, answer in enumerate(answers, 1):
        asked = await principal.expect(f"{n}. 请填写")
        if answer == "默认":     # the category's major_deadline_days (30 unless it says)
            assert "回复“默认”：30天" in asked.text
            await principal.says("尽快")
            await principal.expect("治理时限需要包含完成日期")
        await principal.says(answer)
    await principal.expect("治理方案已确定")
    await ticket.refresh_from_db()
    assert ticket.status is Status.OPEN and ticket.deadline is not None
    assert ticket.opened_at is not None
    assert ticket.deadline.astimezone(TZ).date() == (
        ticket.opened_at.astimezone(TZ) + timedelta(days=30)).date()
    assert ticket.plan["deadline"] == "30天内完成（类别默认时限）"
    assert set(ticket.plan) == {"goal", "method", "funds", "people", "deadline", "safety"}
    assert ticket.checklist["资金"] == "维修费2万元已批准"

    owner = Person(phone, ticket.owner_id or "")
    await owner.expect(f"隐患整改 {ticket.number}")
    await owner.sends_photo()
    await owner.says("已整改")
    reviewer = Person(phone, ticket.reviewer_id or "")
    review = await reviewer.expect(f"整改复查 {ticket.number}")
    await reviewer.clicks(review, "通过")
    await reviewer.expect("已提交主要负责人审批")
    await ticket.refresh_from_db()
    assert ticket.status is Status.SUBMITTED and ticket.first_approval == reviewer.id
    second = await principal.expect(f"整改复查 {ticket.number}", "主要负责人审批")
    await principal.clicks(second, "通过")
    await principal.expect("已闭环")
    await ticket.refresh_from_db()
    assert ticket.status is Status.CLOSED


async def test_a_major_hazard_without_a_principal_in_the_roster_keeps_its_draft(
        phone: Phone[Any]) -> None:
    await User.filter(id="chenjianguo").update(active=False)
    worker = Person(phone, "guoqiang")
    await worker.says("罐区 液氨阀门泄漏")
    summary = await worker.expect("请确认隐患上报")
    await worker.clicks(summary, "提交")
    await worker.expect("名册中没有主要负责人")
    draft = await Ticket.get(reporter_id="guoqiang")
    assert draft.status is Status.DRAFT and draft.number is None


async def test_one_word_never_makes_a_hazard_major(phone: Phone[Any]) -> None:
    worker = Person(phone, "guoqiang")
    await worker.says("罐区 液氨储罐标识褪色")
    summary = await worker.expect("请确认隐患上报")
    assert summary.field("等级") == "一般"


async def test_a_repeat_report_is_linked_not_filed_twice(phone: Phone[Any]) -> None:
    _, owner, number = await file_general(phone)
    other = Person(phone, "huangjun")
    await other.says("3号车间 电线裸露在地上")
    summary = await other.expect("请确认隐患上报")
    await other.clicks(summary, "提交")
    await other.expect(f"与已登记的 {number}", "已合并记录")
    await owner.expect(f"{number}", "被黄军再次上报，累计2次")
    assert await Ticket.filter(number__isnull=False).count() == 1
    assert (await Ticket.get(number=number)).reports == 2
    assert (await Ticket.get(reporter_id="huangjun")).status is Status.LINKED


async def test_a_report_after_the_window_or_like_a_closed_ticket_is_filed_anew(
        phone: Phone[Any], service: Service) -> None:
    """The repeat window is 72 hours by default, and only tickets still open count."""
    _, _, number = await file_general(phone)
    original = await Ticket.get(number=number)
    assert original.created_at is not None
    await service.time_passes(until=original.created_at + timedelta(hours=72, minutes=1))

    async def report(user_id: str) -> str:
        other = Person(phone, user_id)
        await other.says("3号车间 电线裸露在地上")
        await other.clicks(await other.expect("请确认隐患上报"), "提交")
        return (await other.expect("已提交")).text

    later = NUMBER.search(await report("huangjun"))        # outside the window: a new ticket
    assert later is not None and later.group() != number
    await Ticket.filter(number=later.group()).update(status=Status.CLOSED)
    again = NUMBER.search(await report("wanghaiyan"))      # like a closed one: a new ticket
    assert again is not None and again.group() not in (number, later.group())
    assert await Ticket.filter(status=Status.LINKED).count() == 0
    assert (await Ticket.get(number=number)).reports == 1


# ---------------------------------------------------------------------------------------------
# Commands


async def test_my_tickets_details_and_statistics(phone: Phone[Any]) -> None:
    worker, owner, number = await file_general(phone)
    await worker.says("我的隐患")
    mine = (await worker.expect("我上报的")).text
    assert number in mine and "整改中" in mine
    await owner.says("我的隐患")
    assert number in (await owner.expect("我负责整改")).text
    await owner.says("已整改")
    await owner.expect("整改后的照片")
    await owner.sends_photo()
    await owner.says("提交")
    await owner.expect(f"{number} 已提交复查")
    reviewer = Person(phone, "xuming")
    await reviewer.says("我的隐患")
    assert number in (await reviewer.expect("待我复查")).text
    await worker.says(number)
    detail = (await worker.expect(f"{number} 3号车间 · 用电类")).text
    assert "张三 登记" in detail and "五到位" in detail
    assert "高峰 提交整改" in detail and detail.index("张三 登记") < detail.index("高峰 提交整改")
    await worker.says("统计")
    await worker.expect("统计仅对安全管理员和主要负责人开放")
    assert await AuditEvent.filter(action="refused", actor="zhangsan", subject_type="command",
                                   subject_id="统计").count() == 1
    manager = Person(phone, "liuyang")
    await manager.says("统计")
    stats = (await manager.expect("隐患统计")).text
    assert "未闭环：1项" in stats and "3号车间：1项" in stats and "待复查1项" in stats


async def test_a_ticket_s_details_are_for_the_people_it_concerns(phone: Phone[Any]) -> None:
    """The reporter, owner and reviewer, their supervisors up the chain and the safety managers
    read it; a worker or a manager of another department is refused politely, on record."""
    _, _, number = await file_general(phone)
    for reader in ("zhangsan", "gaofeng", "xuming", "wangqiang", "zhouwei", "chenjianguo",
                   "sunli"):
        person = Person(phone, reader)
        await person.says(number)
        await person.expect(f"{number} 3号车间 · 用电类", "**记录**")
    for outsider in ("linfang", "maxiaodong", "wanghaiyan"):
        person = Person(phone, outsider)
        await person.says(number)
        refusal = await person.expect(f"您无权查看 {number} 的详情")
        assert "3号车间" not in refusal.text and "裸露电线" not in refusal.text
    ticket = await Ticket.get(number=number)
    refused = await AuditEvent.filter(action="refused", subject_id=str(ticket.id)) \
        .order_by("id").values_list("actor", flat=True)
    assert refused == ["linfang", "maxiaodong", "wanghaiyan"]
    await settled()
    assert await AuditEvent.filter(subject_id=str(ticket.id)).exclude(
        action="refused").count() == 1                          # filed: nothing else changed


async def test_long_lists_and_records_still_fit_one_message(phone: Phone[Any]) -> None:
    """A platform refuses a message over its size (WeCom 2,048 bytes: 45002): 我的隐患 lists the
    newest ten of each kind and says how many there are; a long-lived ticket's details keep its
    newest record."""
    worker, owner, number = await file_general(phone)
    ticket = await Ticket.get(number=number)
    now = datetime.now(UTC)
    roles = ((Status.OPEN, "zhangsan", "gaofeng", "xuming"),         # 高峰 owns,
             (Status.SUBMITTED, "zhangsan", "xuming", "gaofeng"),    # reviews
             (Status.OPEN, "gaofeng", "xuming", "liuyang"))          # and reported 12 each
    for n in range(36):
        status, reporter, owner_id, reviewer = roles[n // 12]
        await Ticket.create(number=f"HZ-20261201-{n + 1:04d}", status=status,
                            reporter_id=reporter, owner_id=owner_id, reviewer_id=reviewer,
                            area_id=ticket.area_id, category=ticket.category,
                            description="配电箱门没关", deadline=now + timedelta(days=3),
                            created_at=now, updated_at=now, opened_at=now)
    ticket.description = "配电箱门没关，有裸露电线。" * 40
    await ticket.save()
    for n in range(60):
        await record(at=now + timedelta(minutes=n + 1), actor="zhaolei", action="refused",
                     subject_type="ticket", subject_id=str(ticket.id),
                     note=f"第{n}次：" + "您不是该隐患的整改责任人。" * 5)

    await owner.says("我的隐患")
    mine = (await owner.expect("我负责整改（共13项，列出最近10项）",
                               "待我复查（共12项，列出最近10项）")).text
    assert len(mine.encode()) <= phone.limits.message_bytes
    # Ten of each kind, all shown (DingTalk's 5,000 bytes) or cut to the room and said so.
    cut = mine.count("\n> HZ-") < 30
    assert mine.endswith("……发送编号可查看其他隐患的详情。" if cut else "发送编号可查看详情。")
    await worker.says(number)
    detail = (await worker.expect(f"{number} 3号车间 · 用电类")).text
    assert len(detail.encode()) <= phone.limits.message_bytes
    assert "较早的记录从略" in detail and "第59次" in detail and "张三 登记" not in detail
    assert "描述：配电箱门没关" in detail and "…" in detail


async def test_a_safety_manager_cancels_with_a_reason_a_worker_cannot(
        phone: Phone[Any]) -> None:
    worker, owner, number = await file_general(phone)
    assigned = await owner.expect(f"隐患整改 {number}")
    await worker.says(f"取消 {number} 重复")
    await worker.expect("只有上报人（草稿）或安全管理员可以取消隐患")
    assert await AuditEvent.filter(action="refused", actor="zhangsan").count() == 1
    manager = Person(phone, "sunli")
    await manager.says(f"取消 {number}")
    await manager.expect("需要说明原因")
    await manager.says(f"取消 {number} 误报，现场已核实无此问题")
    await manager.expect(f"已取消 {number}")
    await owner.expect(f"{number} 已由孙丽取消")
    assert (await Ticket.get(number=number)).status is Status.CANCELLED
    await owner.clicks(assigned, "接收")               # a card of a ticket no longer open
    await owner.expect("无需再次操作")
    ticket = await Ticket.get(number=number)
    assert ticket.status is Status.CANCELLED and ticket.accepted_at is None


def test_deadline_words_are_read_in_local_time() -> None:
    from handlers.hazard.dates import parse_date
    now = datetime(2026, 11, 29, 10, 0, tzinfo=TZ)
    assert parse_date("12月15日", now) == now.replace(month=12, day=15, hour=18)
    assert parse_date("2027-01-05前完成", now) == now.replace(year=2027, month=1, day=5, hour=18)
    assert parse_date("3月1日", now) == now.replace(year=2027, month=3, day=1, hour=18)
    assert parse_date("5天", now) == now.replace(month=12, day=4, hour=18)
    assert parse_date("尽快", now) is None
    assert parse_date("2月30日", now) is None
