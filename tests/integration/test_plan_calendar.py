"""Emergency plans drilled and evaluated on time (《生产安全事故应急预案管理办法》第三十三条,
第三十五条), on the demo plans and the shipped config/drills.toml: due dates from the drills
held, reminders before a plan falls due, overdue plans in the digest, the year's drills in the
monthly report and in the export for the regulator."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from tortoise.context import TortoiseContext

from bot.plans import load_plans
from bot.roster import load_org
from bot.scheduling import load_drill_rules
from bot.settings import EmergencySettings, SettingError
from models.emergency import Activation, ActivationStatus, Responder
from models.outbox import OutboxMessage
from models.plan_calendar import plan_dates
from tests.harness import ROOT, ROSTER_MEDIA, cli, plant_jobs, queued_texts
from tests.plant import DEMO_ORG

TZ = ZoneInfo("Asia/Shanghai")
RULES_FILE = ROOT / "config" / "drills.toml"
RULES = load_drill_rules(EmergencySettings(drill_rules_file=str(RULES_FILE)))


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
async def plans(db: TortoiseContext) -> None:
    now = local("2026-01-05 09:00")
    await load_org(DEMO_ORG, now, ROSTER_MEDIA)
    await load_plans(ROOT / "config" / "plans", now, "webchat")


async def drill(plan: str, at: str, answered: tuple[str, ...] = ("zhouwei",),
                silent: tuple[str, ...] = ()) -> Activation:
    """A drill of `plan` held at `at` and closed an hour later."""
    start = local(at)
    held = await Activation.create(
        status=ActivationStatus.CLOSED, plan_id=plan, level="三级", area_id="T1", drill=True,
        token="drill", raised_by="liuyang", commander="liuyang", created_at=start,
        activated_at=start, closed_at=start + timedelta(hours=1))
    for n, person in enumerate((*answered, *silent)):
        await Responder.create(activation=held, user_id=person, task_id=f"t{held.id}{n}",
                               notified_at=start, answered_at=start + timedelta(seconds=40)
                               if person in answered else None)
    return held


async def test_due_dates_follow_the_rules_and_the_drills_held(plans: None) -> None:
    dates = {d.plan.code: d for d in await plan_dates(RULES, TZ, 2026)}
    # Never drilled: counted from the plan's last review.
    assert dates["NH3"].drill_due == date(2026, 3, 1)            # 现场处置方案: 6 months
    assert dates["FIRE"].drill_due == date(2026, 3, 20)          # 专项: 12 months
    assert dates["GENERAL"].review_due == date(2027, 4, 15)      # 3 years after 2024-04-15
    await drill("FIRE", "2026-06-10 14:00")
    await drill("NH3", "2026-11-20 10:00")
    await drill("NH3", "2025-12-01 10:00")                       # last year's
    dates = {d.plan.code: d for d in await plan_dates(RULES, TZ, 2026)}
    # 综合 or 专项 once a year, either counts for both; each 现场处置方案 its own, every half year.
    assert dates["FIRE"].drill_due == dates["GENERAL"].drill_due == date(2027, 6, 10)
    assert dates["NH3"].drill_due == date(2027, 5, 20)
    assert (dates["FIRE"].drills, dates["GENERAL"].drills, dates["NH3"].drills) == (1, 0, 1)
    high_risk = load_drill_rules(EmergencySettings(drill_rules_file=str(RULES_FILE),
                                                   high_risk_industry=True))
    fire = next(d for d in await plan_dates(high_risk, TZ, 2026) if d.plan.code == "FIRE")
    assert fire.drill_due == date(2026, 12, 10)                  # every half year


async def test_a_plan_falling_due_is_reminded_30_and_7_days_before_once_each(
        plans: None, database_url: str, media_dir: Path) -> None:
    await drill("NH3", "2026-06-01 10:00")
    await drill("FIRE", "2026-06-10 14:00")
    plant = plant_jobs(database_url, media_dir)
    for day in ("2026-10-31", "2026-11-01"):
        await plant.tick(local(f"{day} 09:00"))
    # The 30 days begin on Sunday 1 November: reminded on Monday, the next working day.
    assert await queued_texts("plan-drill:") == []
    for day in ("2026-11-02", "2026-11-24", "2026-11-25"):
        report = await plant.tick(local(f"{day} 09:00"))
        assert not report.failed, report.summary()
    await plant.settle()            # the monthly report started on the 1st
    sent = await queued_texts("plan-drill:")
    assert [key for key, _, _ in sent] == ["plan-drill:NH3:2026-12-01:30",
                                           "plan-drill:NH3:2026-12-01:7"]
    _, words, to = sent[0]
    assert words == ("【演练提醒】《液氨泄漏现场处置方案》（现场处置方案，至少每6个月一次）应于"
                     "2026年12月01日前完成演练，还有29天。上次演练：2026年06月01日。发送“启动演练 "
                     "氨泄漏”开始。")
    # The commanders and the safety managers of the demo plant.
    assert to == ["chenjianguo", "liuyang", "sunli", "zhouwei"]
    assert "还有7天" in sent[1][1]


async def test_an_evaluation_falling_due_is_reminded_60_days_before(
        plans: None, database_url: str, media_dir: Path) -> None:
    await plant_jobs(database_url, media_dir).tick(local("2027-02-15 09:00"))     # Monday
    [(key, words, _)] = await queued_texts("plan-review:")
    assert key == "plan-review:GENERAL:2027-04-15"
    assert ("《生产安全事故综合应急预案》上次评审于2024年04月15日，"
            "应于2027年04月15日前完成评估") in words


async def test_the_digest_names_overdue_plans_when_emergency_plans_are_on(
        plans: None, database_url: str, media_dir: Path) -> None:
    await drill("NH3", "2026-06-01 10:00")
    await plant_jobs(database_url, media_dir).tick(local("2026-12-05 09:00"))
    [(_, digest, _)] = await queued_texts("digest:")
    assert "**应急预案**" in digest
    for line in ("> 《液氨泄漏现场处置方案》演练已逾期：应于2026年12月01日前，"
                 "上次演练：2026年06月01日",
                 "> 《火灾事故专项应急预案》演练已逾期：应于2026年03月20日前，上次演练：尚无记录"):
        assert line in digest.splitlines()
    await OutboxMessage.all().delete()
    await plant_jobs(database_url, media_dir, modules_emergency="false").tick(
        local("2026-12-06 09:00"))
    [(_, digest, _)] = await queued_texts("digest:")
    assert "应急预案" not in digest


async def test_the_monthly_report_counts_the_year_s_drills(
        plans: None, database_url: str, media_dir: Path) -> None:
    await drill("NH3", "2026-06-01 10:00")
    await drill("NH3", "2026-11-20 10:00")
    await drill("FIRE", "2026-06-10 14:00")
    plant = plant_jobs(database_url, media_dir)
    await plant.tick(local("2026-12-01 09:00"))
    await plant.settle()
    [(_, report, _)] = await queued_texts("monthly:2026-11:text")
    assert ("**应急演练（2026年累计）**\n> 《火灾事故专项应急预案》1次，"
            "《生产安全事故综合应急预案》0次，《液氨泄漏现场处置方案》2次") in report


async def test_export_drills_writes_the_year_for_the_regulator(
        plans: None, database_url: str, tmp_path: Path) -> None:
    await drill("NH3", "2026-11-20 10:00", answered=("zhouwei", "lihua"), silent=("guoqiang",))
    await drill("NH3", "2025-11-20 10:00")
    out = tmp_path / "drills.xlsx"
    run = cli("export-drills", "--year", "2026", "--out", str(out),
              env={"SAFETYBOT_DATABASE_URL": database_url})
    assert run.returncode == 0, run.stderr
    book = load_workbook(out)
    assert book.sheetnames == ["2026年应急演练", "按预案"]
    rows = list(book["2026年应急演练"].iter_rows(values_only=True))
    # Excel has no time zones: the plant's wall-clock times.
    wall = [local(t).replace(tzinfo=None) for t in ("2026-11-20 10:00", "2026-11-20 11:00")]
    assert rows[1] == (*wall,
                       "液氨泄漏现场处置方案", "现场处置方案", "三级", "罐区", "刘洋", 3, 2, 40,
                       "郭强")
    assert len(rows) == 2
    plans_sheet = {row[0]: row for row in book["按预案"].iter_rows(min_row=2, values_only=True)}
    assert plans_sheet["液氨泄漏现场处置方案"][2:4] == (1, 6)


def test_a_bad_drill_rules_file_stops_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "drills.toml"
    bad.write_text('[[rules]]\nkinds = ["应急预案"]\nmonths = 6\n', encoding="utf-8")
    with pytest.raises(SettingError, match=r"^SAFETYBOT_EMERGENCY_DRILL_RULES_FILE: .*rules\[1\]"):
        load_drill_rules(EmergencySettings(drill_rules_file=str(bad)))
