"""The patrol lines of the daily digest and the monthly report, from rounds opened by the
scheduler's own job and walked by writing visits: a round done too fast for its checkpoints is
flagged, a missed one named the next morning, a reading out of range counted."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from tortoise.context import TortoiseContext

from bot.inspection import load_inspections
from bot.roster import load_org
from bot.settings import SHIPPED_CONFIG
from models.catalog import load_catalog
from models.inspection.rounds import Round, RoundStatus, finish_round
from models.inspection.rules import InspectionRules
from models.inspection.visits import (
    Given,
    Result,
    Source,
    finish_visit,
    record_answer,
    record_visit,
)
from models.outbox import OutboxMessage
from scheduler.inspection import digest_lines, month_lines, run_rounds
from tests.harness import ROSTER_MEDIA

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 12, 8, 8, 0, tzinfo=TZ)
RULES = InspectionRules()


@pytest.fixture
async def sites(db: TortoiseContext) -> None:
    await load_org(SHIPPED_CONFIG / "demo-org.toml", DAY, ROSTER_MEDIA)
    categories = [c.code for c in load_catalog(SHIPPED_CONFIG / "categories.toml").categories]
    await load_inspections(SHIPPED_CONFIG / "inspection", categories, DAY)


async def walk(round_: Round, start: datetime, every: timedelta, *, out_of_range: bool = False
               ) -> None:
    for n, code in enumerate(round_.checkpoints):
        visit = await record_visit(round_.id, code, "huangjun", start + n * every, Source.TYPED)
        if out_of_range and n == 0:
            await record_answer(visit, Given("pressure", Result.ABNORMAL, value=0.8,
                                             shown="0.8 MPa", out_of_range=True, note="偏高"),
                                start)
        await finish_visit(visit, start + n * every)
    assert await finish_round(round_.id, start + len(round_.checkpoints) * every) \
        is RoundStatus.DONE


async def test_the_digest_and_the_month_tell_how_the_rounds_went(sites: None) -> None:
    # Day 1: walked in 15 seconds for four checkpoints (5 s apart): flagged.
    assert await run_rounds(RULES, DAY, TZ, "wecom") >= 1
    first = await Round.get(plan_id="P-PROD")
    await walk(first, DAY + timedelta(minutes=5), timedelta(seconds=5), out_of_range=True)
    # Day 2: walked at a person's pace.
    await run_rounds(RULES, DAY + timedelta(days=1), TZ, "wecom")
    second = await Round.get(plan_id="P-PROD", period="2026-12-09")
    await walk(second, DAY + timedelta(days=1, minutes=5), timedelta(minutes=6))
    # Day 3: opened and never walked: missed at 10:00, named in the next morning's digest.
    # (Each run also opens and closes 罐区巡检, 09:00–11:00, when its window is on.)
    await run_rounds(RULES, DAY + timedelta(days=2), TZ, "wecom")
    await run_rounds(RULES, DAY + timedelta(days=2, hours=2), TZ, "wecom")
    missed = await Round.get(plan_id="P-PROD", period="2026-12-10")
    assert missed.status is RoundStatus.MISSED
    assert await OutboxMessage.filter(idempotency_key=f"insp:{missed.id}:missed").exists()
    await run_rounds(RULES, DAY + timedelta(days=2, hours=3), TZ, "wecom")    # told once
    told = OutboxMessage.filter(idempotency_key__startswith=f"insp:{missed.id}:missed")
    assert await told.count() == 2          # the supervisor's, the patroller's

    midnight = datetime(2026, 12, 11, tzinfo=TZ)
    digest = "\n".join(await digest_lines(midnight - timedelta(days=1), midnight))
    # 罐区巡检 (09:00–11:00) opened at the 10:00 run and was missed at 11:00 too.
    assert "昨日漏检：2轮" in digest
    assert "生产区日常巡检：黄军" in digest and "罐区巡检：郭强" in digest
    assert await digest_lines(midnight, midnight + timedelta(days=1)) == []

    month = "\n".join(await month_lines(datetime(2026, 12, 1, tzinfo=TZ),
                                        datetime(2027, 1, 1, tzinfo=TZ), 20))
    assert "巡检轮次：4轮，按时完成2，逾期完成0，漏检2" in month
    assert "发现异常：1项（读数超限1项）" in month
    assert "路线 生产区日常巡检：完成2，逾期0，漏检1" in month
    assert "区域 1号车间：完成2，逾期0，漏检1" in month
    assert "异常最多的巡检点：A1-01（1项）" in month
    assert "到达方式：手输编号8次" in month
    assert "疑似未到场" in month and "2026-12-08：4个点用时15秒" in month
    assert "2026-12-09" not in month.split("疑似未到场")[1]
