"""The training lines of the safety managers' digest and of the monthly report, on the demo plant
with the shipped courses: what is overdue and who, the practical checks waiting, and the month's
courses, hours, quizzes, practical checks and catch-up courses."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.media.folder import FolderStore
from bot.roster import load_org
from bot.training import load_training
from models.training.enrolments import NewEnrolment, Reason, create_assignment, enrol
from models.training.learning import Attempt
from models.training.practical import PracticalCheck, PracticalStatus
from models.training.records import Taken, add_training
from scheduler.training import digest_lines, month_lines
from tests.harness import ROOT, ROSTER_MEDIA
from tests.plant import DEMO_ORG

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=TZ)
TODAY = NOW.date()
DAYS = ((3, 1), (1, 3))


@pytest.fixture
async def plant_with_courses(db: TortoiseContext, tmp_path: Path) -> None:
    await load_org(DEMO_ORG, NOW, ROSTER_MEDIA)
    await load_training(ROOT / "config" / "training", 80, FolderStore(tmp_path), NOW)


async def test_the_digest_names_what_is_overdue_and_the_checks_waiting(
        plant_with_courses: None) -> None:
    assert await digest_lines(TODAY) == []
    await create_assignment("HOT-WORK", "设备部", TODAY - timedelta(days=2), "sunli",
                            Reason.ASSIGNED, "", ["gaofeng", "xuming", "hepingan"], NOW, *DAYS)
    await enrol([NewEnrolment("zhangsan", "CONFINED", Reason.YEARLY, "y:zhangsan",
                              TODAY - timedelta(days=1))], NOW, *DAYS)
    await enrol([NewEnrolment("lihua", "CONFINED", Reason.YEARLY, "y:lihua",
                              TODAY + timedelta(days=1))], NOW, *DAYS)       # not yet due
    await PracticalCheck.create(person_id="huangjun", course="HOT-WORK", passed_on=TODAY,
                                status=PracticalStatus.ASKED, token="t", checker="lihua",
                                created_at=NOW)
    assert await digest_lines(TODAY) == [
        "**培训**",
        "> 逾期未完成《动火作业安全》：3人（高峰、徐明、何平安）",
        "> 逾期未完成《有限空间作业安全》：1人（张三）",
        "> 待完成的实操抽查：1项"]


async def test_the_month_in_the_report(plant_with_courses: None) -> None:
    start, end = datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ)
    first, last = date(2026, 11, 1), date(2026, 11, 30)
    assert await month_lines(start, end, first, last, TODAY) == []
    await add_training([Taken("gaofeng", "动火作业安全", 2, date(2026, 11, 5), 90, True, 2),
                        Taken("gaofeng", "有限空间作业安全", 2, date(2026, 11, 9), 85, True, 2),
                        Taken("zhangsan", "年度安全再培训", 24, date(2026, 11, 10), 88, True),
                        Taken("lihua", "动火作业安全", 2, date(2026, 10, 30), 90, True, 2)],
                       "chat", "test", NOW)
    for passed, score in ((True, 100.0), (False, 50.0), (True, 83.3)):
        await Attempt.create(person_id="gaofeng", course="HOT-WORK", level=0, number=1,
                             token="t", order=[], started_at=NOW, updated_at=NOW,
                             finished_at=datetime(2026, 11, 5, 10, tzinfo=TZ), score=score,
                             passed=passed)
    for status in (PracticalStatus.PASSED, PracticalStatus.FAILED, PracticalStatus.FAILED):
        await PracticalCheck.create(person_id="gaofeng", course="HOT-WORK", passed_on=first,
                                    status=status, token="t", checker="xuming",
                                    checked_at=datetime(2026, 11, 20, tzinfo=TZ),
                                    created_at=NOW)
    await create_assignment("HOT-WORK-PLUS", "生产部·焊工", date(2026, 11, 20), "scheduler",
                            Reason.CATCHUP, "通过率0%", ["huangjun"], datetime(
                                2026, 11, 9, 9, tzinfo=TZ), *DAYS)
    assert await month_lines(start, end, first, last, TODAY) == [
        "**培训**",
        "> 完成课程：3人次（2人），共28学时",
        "> 闯关测验：3次，通过率67%",
        "> 实操抽查：合格1人次，不合格2人次",
        "> 补强课程：1次；当前逾期未完成：1人次"]
