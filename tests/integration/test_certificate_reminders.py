"""Certificates kept current by the scheduler (一人一档): the holder, their supervisor and the
safety managers reminded 60, 30 and 7 days before a review or an expiry, each once, on working
days; the lapse recorded and announced the day after; a renewal starting over; a contractor's
documents told to the safety managers; and the 人员资质 lines of the daily digest and the
monthly report. The clock moves by ticking the plant's jobs at chosen instants."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.roster import load_org
from models.org import User
from models.people.certificates import Certificate, HolderKind, NewCertificate, register
from models.people.checks import judge, record_check
from models.people.profiles import (
    Contractor,
    Profile,
    ask_admission,
    decide_admission,
    set_blacklisted,
)
from models.people.records import RecordKind, contractor_holder, records_of
from models.training.records import Taken, add_training
from scheduler.jobs import Jobs
from tests.harness import ROSTER_MEDIA, plant_jobs, queued_texts
from tests.plant import DEMO_ORG

TZ = ZoneInfo("Asia/Shanghai")
MANAGERS = ["liuyang", "sunli"]
# 高峰 (电工) reports to 徐明, 何平安 (司炉工) too, 郭强 (罐区班长) to 马晓东.
GAOFENG = ["gaofeng", *MANAGERS, "xuming"]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
async def org(db: TortoiseContext) -> None:
    """The demo plant without the roster's own people's files (certificates, posts, the
    contractor): each test gives its own."""
    await load_org(DEMO_ORG, local("2026-09-01 09:00"), ROSTER_MEDIA)
    for model in (Certificate, Profile, Contractor):
        await model.all().delete()


@pytest.fixture
def plant(org: None, database_url: str, media_dir: Path) -> Jobs:
    return plant_jobs(database_url, media_dir)


async def holds(plant: Jobs, holder: str, code: str, number: str, expires: str,
                review: str | None = None, *, on: str = "2026-09-01",
                kind: HolderKind = HolderKind.PERSON) -> Certificate:
    """A certificate registered (or brought up to date) as an import registers it."""
    rules = plant.qualification
    await register([NewCertificate(kind, holder, rules.certificates[code], number, None,
                                   date.fromisoformat(expires),
                                   date.fromisoformat(review) if review else None)],
                   "import", "sunli", local(f"{on} 10:00"), rules.reminder_days)
    return await Certificate.get(type_code=code, number=number)


async def days(plant: Jobs, *days: str) -> None:
    """The plant's jobs tick on each day, after the digest's time."""
    for day in days:
        report = await plant.tick(local(f"{day} 09:00"))
        assert not report.failed, report.summary()


async def sent(key: str = "cert:") -> list[tuple[str, str, list[str]]]:
    return await queued_texts(key)


async def test_reminded_60_30_and_7_days_before_once_each_on_working_days_then_the_lapse(
        plant: Jobs) -> None:
    cert = await holds(plant, "gaofeng", "T-EL-LV", "T1", "2026-11-30")
    key = f"cert:{cert.id}:2026-11-30"
    # 60 days before is 10-01, in the 国庆 holidays: reminded on Thursday 10-08, once.
    await days(plant, "2026-09-30", "2026-10-01", "2026-10-07", "2026-10-08", "2026-10-09")
    await plant.tick(local("2026-10-08 15:00"))
    [(first, words, to)] = await sent()
    assert (first, to) == (f"{key}:60", GAOFENG)
    assert words == ("【证书到期提醒】高峰的特种作业操作证（低压电工作业）（编号 T1）"
                     "将于2026年11月30日到期，还有53天。请及时办理换证，并更新证书信息。")
    # 高峰 moves under 周伟: this due day's reminders keep going to those told first.
    await User.filter(id="gaofeng").update(supervisor_id="zhouwei")
    # 30 days before is Saturday 10-31: on Monday 11-02. 7 days before, 11-23, is a Monday.
    await days(plant, "2026-10-30", "2026-10-31", "2026-11-02", "2026-11-03", "2026-11-22",
               "2026-11-23", "2026-11-24", "2026-11-30")
    assert [(k, t) for k, _, t in await sent()] == [
        (f"{key}:60", GAOFENG), (f"{key}:30", GAOFENG), (f"{key}:7", GAOFENG)]
    assert "还有28天" in (await sent(f"{key}:30"))[0][1]
    assert (await Certificate.get(id=cert.id)).lapsed_on is None      # valid on its last day

    await days(plant, "2026-12-01", "2026-12-02")

    [(_, words, to)] = await sent(f"{key}:lapsed")
    assert to == GAOFENG
    assert words == ("【证书失效】高峰的特种作业操作证（低压电工作业）（编号 T1）"
                     "已于2026年11月30日到期，自2026年12月01日起失效，不得再凭此证从事"
                     "临时用电、电工作业。换证或复审后，请及时更新证书信息。")
    row = await Certificate.get(id=cert.id)
    assert (row.lapsed_on, row.remind_on) == (date(2026, 12, 1), None)
    [lapse] = await records_of("gaofeng", RecordKind.LAPSED)
    assert (lapse.actor, lapse.data["number"], lapse.data["due_on"]) == (
        "scheduler", "T1", "2026-11-30")
    assert len(await sent()) == 4


async def test_a_review_registered_late_gets_the_nearest_window_only(plant: Jobs) -> None:
    cert = await holds(plant, "hepingan", "T-WELD", "W1", "2029-06-30", "2026-11-30",
                       on="2026-11-20")
    key = f"cert:{cert.id}:2026-11-30"

    await days(plant, "2026-11-20")

    # The 60- and 30-day windows had both opened: the nearer one only, and nothing is left
    # due in the past (the next is 7 days before).
    [(first, words, to)] = await sent()
    assert (first, to) == (f"{key}:30", ["hepingan", *MANAGERS, "xuming"])
    assert words.startswith("【证书复审提醒】何平安的特种作业操作证（熔化焊接与热切割作业）"
                            "（编号 W1）应于2026年11月30日前复审，还有10天。")
    assert (await Certificate.get(id=cert.id)).remind_on == date(2026, 11, 23)
    await days(plant, "2026-11-23", "2026-12-01")
    assert [k for k, _, _ in await sent()] == [f"{key}:30", f"{key}:7", f"{key}:lapsed"]
    lapsed = (await sent(f"{key}:lapsed"))[0][1]
    assert ("未在2026年11月30日前复审，自2026年12月01日起失效，"
            "不得再凭此证从事动火作业、焊接与热切割。") in lapsed


async def test_a_renewal_starts_the_reminders_over_for_the_new_dates(plant: Jobs) -> None:
    cert = await holds(plant, "gaofeng", "T-EL-LV", "T1", "2026-11-30")
    await days(plant, "2026-10-08", "2026-11-02")
    await holds(plant, "gaofeng", "T-EL-LV", "T1", "2032-11-09", "2029-11-09", on="2026-11-10")
    renewed = await Certificate.get(id=cert.id)
    assert (renewed.reminded, renewed.notify, renewed.remind_on) == (
        [], [], date(2029, 9, 10))
    await User.filter(id="gaofeng").update(supervisor_id="zhouwei")

    await days(plant, "2026-11-23", "2026-12-01", "2029-09-10")

    assert [(k, t) for k, _, t in await sent()] == [
        (f"cert:{cert.id}:2026-11-30:60", GAOFENG), (f"cert:{cert.id}:2026-11-30:30", GAOFENG),
        (f"cert:{cert.id}:2029-11-09:60", ["gaofeng", *MANAGERS, "zhouwei"])]
    assert (await sent(f"cert:{cert.id}:2029-11-09:60"))[0][1].startswith("【证书复审提醒】")
    assert await records_of("gaofeng", RecordKind.LAPSED) == []


async def test_renewed_under_a_new_number_the_old_one_lapses_quietly(plant: Jobs) -> None:
    old = await holds(plant, "guoqiang", "S-N1", "N-OLD", "2026-11-30")
    await days(plant, "2026-10-08")
    new = await holds(plant, "guoqiang", "S-N1", "N-NEW", "2030-11-29", on="2026-10-20")

    await days(plant, "2026-11-02", "2026-11-23", "2026-12-01")

    assert [k for k, _, _ in await sent()] == [f"cert:{old.id}:2026-11-30:60"]
    assert (await Certificate.get(id=old.id)).lapsed_on == date(2026, 12, 1)
    assert (await Certificate.get(id=new.id)).lapsed_on is None


async def test_a_contractors_documents_are_told_to_the_safety_managers(plant: Jobs) -> None:
    await Contractor.create(id="hd", name="华东安装工程有限公司")
    permit = await holds(plant, "hd", "C-SAFETY", "(苏)JZ安许证字[2023]001234", "2026-12-31",
                         kind=HolderKind.CONTRACTOR)

    await days(plant, "2026-11-02", "2027-01-04")

    assert [(k, t) for k, _, t in await sent()] == [
        (f"cert:{permit.id}:2026-12-31:60", MANAGERS),
        (f"cert:{permit.id}:2026-12-31:lapsed", MANAGERS)]
    [(_, words, _), (_, lapsed, _)] = await sent()
    assert words == ("【承包商资质到期提醒】承包商华东安装工程有限公司的安全生产许可证"
                     "（编号 (苏)JZ安许证字[2023]001234）将于2026年12月31日到期，还有59天。"
                     "请督促承包商及时办理，并更新资质信息。")
    assert lapsed.startswith("【承包商资质失效】承包商华东安装工程有限公司的安全生产许可证")
    assert [r.kind for r in await records_of(contractor_holder("hd"))] == [
        RecordKind.CERTIFICATE, RecordKind.LAPSED]


async def test_someone_gone_from_the_roster_is_not_reminded_of(plant: Jobs) -> None:
    cert = await holds(plant, "linfang", "S-N1", "N2", "2026-11-30")
    await User.filter(id="linfang").update(active=False)

    await days(plant, "2026-10-08", "2026-11-02", "2026-11-23", "2026-12-01")

    assert await sent() == []
    assert (await Certificate.get(id=cert.id)).lapsed_on == date(2026, 12, 1)


async def test_the_module_switched_off_reminds_nobody(org: None, database_url: str,
                                                      media_dir: Path) -> None:
    plant = plant_jobs(database_url, media_dir, modules_qualification="false")
    await holds(plant, "gaofeng", "T-EL-LV", "T1", "2026-11-30")

    await days(plant, "2026-10-08", "2026-12-01")

    assert await sent() == []
    [(_, digest, _)] = await queued_texts("digest:2026-11-30")
    assert "人员资质" not in digest


# ---------------------------------------------------------------------------------------------
# The digest and the monthly report


async def test_the_digest_names_certificates_due_lapsed_and_people_not_qualified(
        plant: Jobs) -> None:
    await Profile.create(person_id="gaofeng", post="电工")
    await Profile.create(person_id="hepingan", post="焊工")
    await Profile.create(person_id="zhangsan", post="操作工")       # a post with no work types
    await add_training([Taken("gaofeng", "电工安全操作规程", 24, date(2026, 6, 1), 92, True)],
                       "import", "sunli", local("2026-09-01 10:00"))
    await holds(plant, "gaofeng", "T-EL-LV", "T1", "2029-06-30", "2026-12-20")
    await holds(plant, "guoqiang", "S-N1", "N1", "2026-11-20")
    await holds(plant, "gaofeng", "S-N1", "N3", "2027-06-30")          # not due yet

    await days(plant, "2026-12-02")

    [(_, digest, to)] = await queued_texts("digest:2026-12-01")
    assert to == MANAGERS
    assert digest.split("\n")[-4:] == [
        "**人员资质**",
        "> 60天内到期或需复审：1项（高峰 低压电工作业 2026-12-20）",
        "> 已失效未换证：1项（郭强 叉车司机N1 2026-11-20）",
        "> 不具备岗位作业资格：1人（何平安（焊工）：无熔化焊接与热切割作业证）",
    ]


async def test_the_monthly_report_counts_the_months_checks_certificates_and_contractors(
        plant: Jobs) -> None:
    rules = plant.qualification
    await holds(plant, "gaofeng", "T-EL-LV", "T1", "2032-06-30", "2026-11-30", on="2026-10-20")
    await holds(plant, "gaofeng", "T-EL-LV", "T1", "2032-06-30", "2029-11-30", on="2026-11-05")
    await holds(plant, "guoqiang", "S-N1", "N1", "2026-11-20", on="2026-11-02")
    await holds(plant, "hepingan", "T-WELD", "W1", "2032-06-30", on="2026-11-02")
    await add_training([Taken("gaofeng", "电工安全操作规程", 24, date(2026, 6, 1), 92, True)],
                       "import", "sunli", local("2026-09-01 10:00"))
    await days(plant, "2026-11-23")           # N1 lapses
    await holds(plant, "guoqiang", "S-N1", "N1", "2030-11-19", on="2026-11-25")
    work = rules.work_types["电工作业"]
    crew = list(await User.filter(id__in=["gaofeng", "hepingan"]).order_by("id"))
    await record_check("huangjun", work, "A3",
                       await judge(crew, work, rules, date(2026, 11, 26)),
                       local("2026-11-26 08:00"))
    company = await Contractor.create(id="hd", name="华东安装工程有限公司")
    await Profile.create(person_id="zhaolei", contractor_id="hd")
    admission = await ask_admission("zhaolei", company, ["动火作业"], "huangjun",
                                    local("2026-11-26 09:00"))
    await decide_admission(admission, True, "sunli", "", local("2026-11-26 10:00"))
    await set_blacklisted(None, company, "违章动火", "sunli", local("2026-11-27 10:00"))
    await holds(plant, "hepingan", "S-N1", "N9", "2030-12-01", on="2026-12-01")   # December

    await days(plant, "2026-12-01")
    await plant.settle()

    [(_, summary, _)] = await queued_texts("monthly:2026-11:text")
    assert summary.split("\n")[-6:-1] == [
        "**人员资质**",
        "> 开工前资格校验：1次，2人次，不符合1人次（1人）",
        "> 主要原因：无低压电工作业或高压电工作业证 1人次、近12个月培训学时不足 1人次",
        "> 证书：新登记2项，换证1项，复审1项，失效1项",
        "> 承包商：准入1人，不予准入0人；列入黑名单：人员0人，承包商1家",
    ]
