"""The qualification module end to end on the demo plant, through the simulators: a team lead's
开工 check passes a qualified crew and refuses an expired electrician, whose refusal becomes a
proposed 重大 ticket that a safety manager confirms; a contractor's worker is admitted by card,
checked, blacklisted with his company and refused; certificates are registered in chat with a
photo; 一人一档 is read by those who may and refused to those who may not.

Certificates and training are given dates around the service's clock, so the tests do not age
with the demo roster's dates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook, load_workbook
from tortoise.context import TortoiseContext

from bot.qualification import shipped_rules
from models.audit import AuditEvent
from models.catalog import Grade
from models.hazard import Status, Ticket
from models.org import User
from models.people.certificates import Certificate, HolderKind, NewCertificate, register
from models.people.checks import Proposal, QualificationCheck
from models.people.profiles import Admission, AdmissionStatus, Contractor
from models.people.records import PersonRecord, RecordKind, records_of, verify
from models.training.records import Taken, add_training
from tests.harness import Service, cli, settled
from tests.plant import PLATFORMS, Person, Phone, around_the_clock, phone_of, plant

RULES = shipped_rules()
TZ = ZoneInfo("Asia/Shanghai")


async def qualify(today: date, now: Any) -> None:
    """高峰 a valid electrician; 张三's electrician certificate lapsed ten days ago; 黄军 and
    the contractor's 赵刚 valid welders; a year's training for the plant's people, the hot-work
    course for the welders, and 赵刚's entry training; the contractor's contract running."""
    def cert(person: str, code: str, number: str, issued: date, expires: date,
             review: date | None = None) -> NewCertificate:
        return NewCertificate(HolderKind.PERSON, person, RULES.certificates[code], number,
                              issued, expires, review)

    year = timedelta(days=365)
    await register([
        cert("gaofeng", "T-EL-LV", "T320102198503150012", today - year,
             today - year + 6 * year, today + 2 * year),
        cert("zhangsan", "T-EL-LV", "T320102199001010033", today - 6 * year,
             today - timedelta(days=10)),
        cert("huangjun", "T-WELD", "T320102198203110031", today - year, today + 5 * year,
             today + 2 * year),
        cert("huaan-zhaogang", "T-WELD", "T340104199002140019", today - year,
             today + 5 * year, today + 2 * year)], "import", "sunli", now, RULES.reminder_days)
    month_ago = today - timedelta(days=30)
    await add_training([Taken(p, "年度安全再培训", 24, month_ago, 90, True)
                        for p in ("gaofeng", "zhangsan", "huangjun", "wanghaiyan")]
                       + [Taken(p, "动火作业安全", 4, month_ago, 92, True)
                          for p in ("huangjun", "huaan-zhaogang")]
                       + [Taken("huaan-zhaogang", "承包商入厂安全教育", 8, month_ago, 88, True)],
                       "import", "sunli", now)
    await Contractor.filter(id="huaan").update(contract_end=today + timedelta(days=200))


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest, db: TortoiseContext, database_url: str,
                media_dir: Path) -> AsyncIterator[tuple[Phone[Any], Service]]:
    async with plant(database_url, media_dir, platform=request.param) as (sim, service):
        now = service.clock()
        await qualify(now.astimezone(TZ).date(), now)
        yield phone_of(sim), service


@pytest.fixture
async def wecom(db: TortoiseContext, database_url: str, media_dir: Path
                ) -> AsyncIterator[tuple[Phone[Any], Service]]:
    async with plant(database_url, media_dir) as (sim, service):
        now = service.clock()
        await qualify(now.astimezone(TZ).date(), now)
        yield phone_of(sim), service


async def test_a_crew_is_checked_and_an_unlicensed_electrician_becomes_a_major_ticket(
        world: tuple[Phone[Any], Service]) -> None:
    phone, _ = world
    huangjun, liuyang, sunli = (Person(phone, p) for p in ("huangjun", "liuyang", "sunli"))
    await huangjun.says("开工 临时用电 3号车间 高峰 张三")
    answer = await huangjun.expect("开工前资格校验 KG-")
    assert "> 作业：临时用电　区域：3号车间　作业票：临时用电安全作业票" in answer.text
    assert "> 可以开工（1人）：高峰" in answer.text
    assert "> 张三：低压电工作业或高压电工作业证已于" in answer.text
    asked = await huangjun.expect("有1人不可开工")
    check = await QualificationCheck.get()
    assert (check.allowed, check.refused, check.proposal) == (1, 1, Proposal.PROPOSED)
    # Each person's answer is in their chain of records.
    [record] = await records_of("zhangsan", RecordKind.CHECK)
    assert record.data["ok"] is False and record.data["check"] == check.label

    # The safety managers are proposed a 重大 ticket at once.
    proposal = await liuyang.expect("【建议立案】特种作业人员未持证上岗")
    assert "张三（低压电工作业或高压电工作业证）" in proposal.text
    late = await sunli.expect("【建议立案】特种作业人员未持证上岗")

    await huangjun.clicks(asked, "通知安全员")
    await huangjun.expect("已通知安全员（2人）")
    await liuyang.expect("【开工校验未通过】黄军在3号车间准备临时用电", "张三")
    await huangjun.clicks(asked, "通知安全员")
    await huangjun.expect("已就", "通知过安全员")

    # 刘洋 confirms; 孙丽's card is then spent.
    await liuyang.clicks(proposal, "确认为重大隐患")
    filed = await liuyang.expect("已立案，编号 HZ-", "重大隐患")
    ticket = await Ticket.get(grade=Grade.MAJOR)
    assert ticket.number in filed.text and ticket.status is Status.PLAN
    assert (ticket.area_id, ticket.category, ticket.reporter_id) == ("A3", "D09", "liuyang")
    assert "特种作业人员未持证上岗：张三" in ticket.description
    assert "第三条第（二）项" in ticket.grade_reason
    await Person(phone, "chenjianguo").expect("治理方案", ticket.number or "")
    await sunli.clicks(late, "不予立案")
    await sunli.expect("已确认立案，无需再次操作")
    assert await Ticket.all().count() == 1

    # A qualified crew for hot work.
    await huangjun.says("开工 动火 三号车间 黄军")
    passed = await huangjun.expect("开工前资格校验", "可以开工（1人）：黄军")
    assert "全部人员资格校验通过。请按规定办理动火安全作业票后开工。" in passed.text
    await settled()
    assert not [m for m in huangjun.unread() if "不可开工" in m.text]


async def test_bad_checks_are_answered_and_check_nobody(wecom: tuple[Phone[Any], Service]
                                                        ) -> None:
    phone, _ = wecom
    huangjun = Person(phone, "huangjun")
    await huangjun.says("开工 挖掘作业 3号车间 张三")
    await huangjun.expect("没有识别出作业类型", "动火作业")
    await huangjun.says("开工 动火作业 张三")
    await huangjun.expect("请写明作业区域")
    await huangjun.says("开工 动火作业 3号车间 黄军 李四四")
    await huangjun.expect("名册中没有：李四四", "本次未校验任何人")
    await phone.uses_menu("huangjun", "check", "开工校验")
    await huangjun.expect("开工前资格校验：请按“开工 作业类型 区域 人员”发送",
                          "可校验的作业：动火作业")
    crowd = " ".join(f"工人{n}" for n in range(30))
    await huangjun.says(f"开工 动火作业 3号车间 {crowd}")
    await huangjun.expect("一次最多校验20人，本次30人，请分批发送")
    await settled()
    assert await QualificationCheck.all().count() == 0


async def test_a_contractor_worker_is_admitted_checked_blacklisted_and_refused(
        wecom: tuple[Phone[Any], Service]) -> None:
    phone, service = wecom
    huangjun, liuyang = Person(phone, "huangjun"), Person(phone, "liuyang")
    await huangjun.says("开工 动火作业 3号车间 赵刚")
    await huangjun.expect("赵刚：承包商人员未办理准入")

    await huangjun.says("申请准入 赵刚 动火作业")
    await huangjun.expect("已提交赵刚的准入申请")
    card = await liuyang.expect("承包商人员准入审批", "赵刚（华安机电安装有限公司）")
    await liuyang.clicks(card, "准入")
    await liuyang.expect("已记录：赵刚已准入，有效期至")
    await huangjun.expect("【准入结果】赵刚已准入")
    admission = await Admission.get()
    assert admission.status is AdmissionStatus.ADMITTED and admission.decided_by == "liuyang"
    await liuyang.clicks(card, "不准入")
    await liuyang.expect("该准入申请已处理（已准入）")

    await huangjun.says("开工 动火作业 3号车间 赵刚 黄军")
    await huangjun.expect("可以开工（2人）：赵刚、黄军")
    # The admission lasts as long as the contract does, as it stands now.
    today = service.clock().astimezone(TZ).date()
    await Contractor.filter(id="huaan").update(contract_end=today - timedelta(days=1))
    await huangjun.says("开工 动火作业 3号车间 赵刚")
    await huangjun.expect(f"赵刚：准入已于{today - timedelta(days=1)}到期（合同期满）")
    await Contractor.filter(id="huaan").update(contract_end=today + timedelta(days=30))

    await huangjun.says("拉黑 华安机电安装有限公司 违规动火")
    await huangjun.expect("黑名单由安全管理员操作")
    await liuyang.says("拉黑 华安机电安装有限公司 动火作业未办理作业票")
    await liuyang.expect("已将华安机电安装有限公司列入黑名单", "其所有人员开工校验将一律不予通过")
    await huangjun.says("开工 动火作业 3号车间 赵刚")
    await huangjun.expect("赵刚：所属承包商华安机电安装有限公司已列入黑名单"
                          "（动火作业未办理作业票）")
    [listed] = await records_of("contractor:huaan", RecordKind.BLACKLIST)
    assert listed.actor == "liuyang"
    chains, records, broken = await verify()
    assert broken == [] and records >= chains > 0


async def test_a_certificate_is_registered_in_chat_with_its_photo(
        wecom: tuple[Phone[Any], Service]) -> None:
    phone, service = wecom
    sunli, zhangsan = Person(phone, "sunli"), Person(phone, "zhangsan")
    await zhangsan.says("登记证书 张三")
    await zhangsan.expect("证书登记由安全管理员操作")
    await sunli.says("登记证书 张三")
    await sunli.expect("为张三登记证书", "1/5 证书类型是？", "1. 特种作业操作证（低压电工作业）")
    await sunli.says("营业执照")
    await sunli.expect("没有“营业执照”这种证书")
    await sunli.says("1")
    await sunli.expect("2/5 证书编号是？")
    await sunli.says("T320102199001010033")
    await sunli.expect("3/5 发证")
    await sunli.says("2026-13-05")
    await sunli.expect("请回复日期")
    issued = service.clock().astimezone(TZ).date() - timedelta(days=3)
    await sunli.says(f"{issued:%Y年%m月%d日}")
    await sunli.expect("4/5 有效期至哪天？按规定有效期至")
    await sunli.says("默认")
    await sunli.expect("5/5 请发送证书照片")
    await sunli.sends_photo(b"%PDF-1.4 not a picture")
    await sunli.expect("只能接收图片")
    await sunli.sends_photo()
    await sunli.expect("已更新张三的特种作业操作证（低压电工作业） T320102199001010033")
    await zhangsan.expect("您的特种作业操作证（低压电工作业）", "已由孙丽登记")
    renewed = await Certificate.get(number="T320102199001010033")
    assert renewed.issued_on == issued and renewed.photo and renewed.valid(issued)
    assert renewed.review_on is not None and renewed.review_on.year == issued.year + 3


async def test_the_persons_file_is_shown_to_those_who_may_and_refused_to_others(
        wecom: tuple[Phone[Any], Service]) -> None:
    phone, _ = wecom
    zhangsan, wangqiang = Person(phone, "zhangsan"), Person(phone, "wangqiang")
    await Person(phone, "huangjun").says("开工 电工作业 1号车间 张三")
    await Person(phone, "wangqiang").says("记录违章 张三 未经许可进入配电房")
    await wangqiang.expect("已记入张三的档案")
    await zhangsan.says("我的档案")
    mine = await zhangsan.expect("一人一档 · 张三（zhangsan）")
    assert "> 部门：生产部　岗位：操作工" in mine.text
    assert "低压电工作业 T320102199001010033：已于" in mine.text
    assert "**培训**（近12个月24学时，要求每年20学时）" in mine.text
    assert "**开工校验**：通过0次，未通过1次" in mine.text
    assert "**违章**：1次" in mine.text and "未经许可进入配电房" in mine.text

    await zhangsan.says("档案 高峰")
    await zhangsan.expect("个人档案仅本人、其上级、安全管理员和主要负责人可以查看")
    refusal = await AuditEvent.get(action="refused", subject_type="person_file")
    assert (refusal.actor, refusal.subject_id) == ("zhangsan", "gaofeng")
    await wangqiang.says("档案 张三")
    await wangqiang.expect("一人一档 · 张三（zhangsan）")


async def test_a_company_and_its_worker_added_in_chat_refused_admission_with_a_reason(
        wecom: tuple[Phone[Any], Service]) -> None:
    phone, service = wecom
    liuyang, huangjun = Person(phone, "liuyang"), Person(phone, "huangjun")
    end = service.clock().astimezone(TZ).date() + timedelta(days=90)
    await huangjun.says(f"添加承包商 恒通安装工程有限公司 周明 13900000031 {end}")
    await huangjun.expect("添加承包商由安全管理员操作")
    await liuyang.says("添加承包商 恒通安装工程有限公司 周明")
    await liuyang.expect("请发送“添加承包商 名称 负责人 电话 合同截止日期”")
    await liuyang.says(f"添加承包商 恒通安装工程有限公司 周明 13900000031 {end}")
    await liuyang.expect("已添加承包商恒通安装工程有限公司", "登记资质 恒通安装工程有限公司")
    await liuyang.says("登记承包商人员 孙强 恒通安装工程有限公司 焊工")
    await liuyang.expect("已登记恒通安装工程有限公司人员孙强")
    assert (await Contractor.get(name="恒通安装工程有限公司")).contract_end == end

    # No entry training yet: refused before any card.
    await liuyang.says("申请准入 孙强")
    await liuyang.expect("孙强暂不能申请准入：未通过入厂安全教育考核（承包商入厂安全教育）")
    sunqiang = (await User.get(name="孙强")).id
    await add_training([Taken(sunqiang, "承包商入厂安全教育", 8,
                              service.clock().astimezone(TZ).date(), 85, True)],
                       "import", "liuyang", service.clock())
    await liuyang.says("申请准入 孙强")
    card = await liuyang.expect("承包商人员准入审批", "孙强（恒通安装工程有限公司）")
    await liuyang.clicks(card, "不准入")
    await liuyang.expect("请回复不准入的原因")
    await liuyang.says("未交安全技术交底记录")
    await liuyang.expect("已记录：孙强不准入：未交安全技术交底记录")
    admission = await Admission.get(person_id=sunqiang)
    assert admission.status is AdmissionStatus.REFUSED
    await huangjun.says("开工 受限空间 罐区 孙强")
    await huangjun.expect("孙强：承包商准入未获批准（未交安全技术交底记录）")

    # A suspension stops an employee's work until 复岗.
    await liuyang.says("停岗 黄军 安全教育考试作弊")
    await liuyang.expect("已将黄军停岗：安全教育考试作弊")
    await huangjun.says("开工 动火作业 3号车间 黄军")
    await huangjun.expect("黄军：停岗中（安全教育考试作弊）")
    await liuyang.says("复岗 黄军")
    await liuyang.expect("黄军已复岗")
    await huangjun.says("开工 动火作业 3号车间 黄军")
    await huangjun.expect("可以开工（1人）：黄军")



async def test_an_imported_certificate_is_reminded_lapses_and_the_file_shows_it(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path) -> None:
    """Imported, reminded 60 days before its expiry as the clock moves, lapsed the day after;
    the next 开工 refuses its holder; 我的档案 and the export show it; verify-records passes
    until a record is edited in the database."""
    async with plant(database_url, media_dir, **around_the_clock(tmp_path)) as (sim, service):
        phone = phone_of(sim)
        start = service.clock()
        today = start.astimezone(TZ).date()
        expires = today + timedelta(days=70)
        await qualify(today, start)
        sheet = Workbook()
        page = sheet.active
        assert page is not None
        page.append(["姓名或工号", "证书类型", "证书编号", "发证日期", "有效期至", "复审日期"])
        page.append(["高峰", "低压电工作业", "T320102198503150099", today - timedelta(days=700),
                     expires, expires])
        sheet.save(tmp_path / "certificates.xlsx")
        env = {"SAFETYBOT_DATABASE_URL": database_url}
        done = cli("import-certificates", str(tmp_path / "certificates.xlsx"), env=env)
        assert done.returncode == 0, done.stderr
        assert "imported 1: 1 added" in done.stdout
        # 高峰's electrician certificate from `qualify` has lapsed meanwhile: only this one counts.
        await Certificate.filter(number="T320102198503150012").delete()

        gaofeng, xuming = Person(phone, "gaofeng"), Person(phone, "xuming")
        await service.tick_at(datetime.combine(today + timedelta(days=10), time(9), TZ))
        await gaofeng.expect("【证书到期提醒】", "T320102198503150099", f"{expires:%Y年%m月%d日}")
        await xuming.expect("【证书到期提醒】", "高峰")
        await Person(phone, "liuyang").expect("【证书到期提醒】", "高峰")
        await service.tick_at(datetime.combine(today + timedelta(days=10), time(15), TZ))
        await settled()
        assert not [m for m in gaofeng.unread() if "【证书" in m.text]

        await service.tick_at(datetime.combine(expires + timedelta(days=1), time(9), TZ))
        await gaofeng.expect("【证书失效】", "T320102198503150099")
        await Person(phone, "huangjun").says("开工 临时用电 3号车间 高峰")
        await Person(phone, "huangjun").expect(
            f"高峰：低压电工作业或高压电工作业证已于{expires}到期")
        await gaofeng.says("我的档案")
        await gaofeng.expect("一人一档 · 高峰", f"T320102198503150099：已于{expires}到期")

        out = cli("export-files", "--person", "gaofeng", "--out", str(tmp_path), env=env)
        assert out.returncode == 0, out.stderr
        written = out.stdout.split()[-1]
        assert written.endswith("档案-高峰-gaofeng.xlsx"), out.stdout
        book = load_workbook(written, read_only=True)
        # The export reads the wall clock, on which the certificate is still valid; the check
        # refused on the service's later day is on record with its reason.
        assert any("T320102198503150099" in row for row in book["证书"].iter_rows(
            values_only=True))
        assert any("临时用电" in row and f"低压电工作业或高压电工作业证已于{expires}到期" in row
                   for row in book["开工校验"].iter_rows(values_only=True))

        intact = cli("verify-records", env=env)
        assert intact.returncode == 0 and "intact" in intact.stdout, intact.stdout
        [lapse] = await records_of("gaofeng", RecordKind.LAPSED)
        await PersonRecord.filter(id=lapse.id).update(data={**lapse.data, "reason": "有效"})
        broken = cli("verify-records", env=env)
        assert broken.returncode == 1
        assert f"gaofeng: record #{lapse.seq}" in broken.stdout + broken.stderr
