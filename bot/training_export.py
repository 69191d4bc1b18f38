"""`safetybot export-training`: the hours ledger (培训学时台账) of a year as xlsx, for the
inspector: a sheet of each person's hours and credit against the post's numbers, and a sheet of
every record — the course, its hours and credit, the exam's score, and whether it was taken in
chat or in a classroom (imported)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from openpyxl import Workbook

from bot.people_export import SOURCES, UNSAFE
from models.people.rules import QualificationRules
from models.training.ledger import LedgerRow, ledger
from models.training.rules import TrainingRules
from scheduler.monthly import table_header

WHO = (("工号", 16), ("姓名", 10), ("部门", 12), ("岗位", 10))
PEOPLE = (*WHO, ("年度学时", 10), ("要求学时", 10), ("学分", 8), ("学分目标", 10),
          ("完成课程", 10), ("未合格", 8))
RECORDS = (*WHO, ("日期", 12), ("课程", 28), ("学时", 8), ("学分", 8), ("成绩", 8),
           ("是否合格", 10), ("来源", 8))


async def export_training(out: Path, year: int, qualification: QualificationRules,
                          training: TrainingRules, department: str | None = None) -> Path:
    """The year's ledger (one department's, by name or id, or everyone's) in the folder `out`."""
    rows = await ledger(year, department)
    book = Workbook(write_only=True)
    people, records = book.create_sheet("学时汇总"), book.create_sheet("培训记录")
    table_header(people, PEOPLE)
    table_header(records, RECORDS)
    by_person: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        by_person[row.person_id].append(row)
        r = row.record
        records.append([row.person_id, row.name, row.department, row.post, r.on, r.course,
                        r.hours, r.credit, r.score, "是" if r.passed else "否",
                        SOURCES.get(r.source, r.source)])
    for person, mine in by_person.items():
        first = mine[0]
        passed = [m.record for m in mine if m.record.passed]
        people.append([person, first.name, first.department, first.post,
                       sum(r.hours for r in passed),
                       qualification.hours_for(first.post, first.roles).yearly,
                       sum(r.credit for r in passed), training.credit_target(first.post),
                       len(passed), len(mine) - len(passed)])
    path = out / UNSAFE.sub("_", f"培训台账-{year}{'-' + department if department else ''}.xlsx")
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
