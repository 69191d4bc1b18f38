"""`safetybot export-drills --year Y`: the year's drills as the regulator's filing asks for them
(第三十三条: 演练情况报送), with each plan's count and whether it is due, in one xlsx."""

from __future__ import annotations

import io
from datetime import date

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from models.plan_calendar import DrillRow, PlanDates, drill_overdue
from scheduler.monthly import table_header

DRILL_COLUMNS = (("开始时间", 18), ("结束时间", 18), ("预案", 28), ("预案类型", 14),
                 ("响应级别", 10), ("区域", 12), ("指挥", 10), ("通知人数", 10),
                 ("确认人数", 10), ("响应时间中位数（秒）", 20), ("未响应人员", 30))
PLAN_COLUMNS = (("预案", 28), ("预案类型", 14), ("本年演练次数", 14), ("最长间隔（月）", 14),
                ("上次演练", 14), ("下次应演练", 14), ("状态", 10), ("上次评审", 14),
                ("应评估", 14))


def drills_workbook(year: int, rows: list[DrillRow], plans: list[PlanDates],
                    today: date) -> bytes:
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = f"{year}年应急演练"
    table_header(sheet, DRILL_COLUMNS)
    for r in rows:
        sheet.append([r.started.replace(tzinfo=None),
                      r.closed.replace(tzinfo=None) if r.closed else None, r.plan, r.kind,
                      r.level, r.area, r.commander, r.called, r.answered,
                      round(r.median_seconds) if r.median_seconds is not None else None,
                      "、".join(r.silent)])
    for letter in ("A", "B"):
        for cell in sheet[letter][1:]:
            cell.number_format = "yyyy-mm-dd hh:mm"
    summary = book.create_sheet("按预案")
    table_header(summary, PLAN_COLUMNS)
    for d in plans:
        state = "逾期" if drill_overdue(d, today) else ("按期" if d.months else "无要求")
        summary.append([d.plan.name, d.plan.kind.value, d.drills, d.months, d.last_drill,
                        d.drill_due, state, d.plan.reviewed_on, d.review_due])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

