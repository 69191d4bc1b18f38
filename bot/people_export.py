"""`safetybot export-files`: people's files (一人一档) as one xlsx, for the archive or an
inspector's visit: one person's, a department's, or everyone's.

Each person's file is read by `person_file`, the same reading chat shows, so the file and the
chat agree; it is written row by row (openpyxl's write-only mode), so a plant of thousands never
sits in memory as cells. Every sheet carries the person's id and name on each row, to be
filtered and sorted in Excel.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

from openpyxl import Workbook

from bot.people_import import BadRow, find_holders, one_holder
from models.org import Department, User
from models.people.certificates import Certificate, HolderKind
from models.people.file import PersonFile, people_of_department, person_file
from models.people.records import PersonRecord, RecordKind
from models.people.rules import QualificationRules
from scheduler.monthly import table_header

WHO = (("工号", 16), ("姓名", 10))
SHEETS = {
    "人员": (*WHO, ("部门", 12), ("岗位", 10), ("入职日期", 12), ("现岗位起始", 12),
           ("承包商", 20), ("证书数", 8), ("近12个月学时", 12), ("开工校验通过", 12),
           ("开工校验未通过", 14), ("违章", 6), ("上报隐患", 8), ("状态", 24)),
    "证书": (*WHO, ("证书", 34), ("证书编号", 24), ("发证日期", 12), ("有效期至", 12),
           ("复审日期", 12), ("状态", 10), ("说明", 30)),
    "培训": (*WHO, ("日期", 12), ("课程", 28), ("学时", 8), ("学分", 8), ("成绩", 8),
           ("是否合格", 10), ("来源", 8)),
    "开工校验": (*WHO, ("时间", 18), ("校验单", 12), ("作业类型", 14), ("区域", 10),
             ("结果", 8), ("原因", 48)),
    "违章与处理": (*WHO, ("时间", 18), ("类别", 12), ("内容", 48), ("记录人", 14)),
}
SOURCES = {"import": "导入", "chat": "线上", "roster": "花名册"}
HANDLING = {("violation", ""): "违章", ("suspension", "suspended"): "停岗",
            ("suspension", "resumed"): "复岗", ("blacklist", "listed"): "列入黑名单",
            ("blacklist", "removed"): "移出黑名单"}
EVERYONE = "全厂"
UNSAFE = re.compile(r'[\\/:*?"<>|]')        # not allowed in a file name on Windows


class ExportError(Exception):
    """The department or person asked for is not in the roster; the message says so."""


async def export_files(out: Path, rules: QualificationRules, today: date, tz: tzinfo, *,
                       department: str | None = None, person: str | None = None) -> Path:
    """The file asked for, in the folder `out`: one person's (by id or name), a department's
    (by id or name), or everyone's."""
    if person:
        try:
            ident = one_holder(person, (await find_holders(User, [person]))[person],
                               HolderKind.PERSON)
        except BadRow as exc:
            raise ExportError(str(exc)) from None
        found = await User.get(id=ident)
        people: Sequence[User] = [found]
        name = f"档案-{found.name}-{found.id}.xlsx"
    elif department:
        unit = (await Department.get_or_none(id=department)
                or await Department.filter(name=department).first())
        if unit is None:
            raise ExportError(f"department {department} is not in the roster")
        people = await people_of_department(unit.id)
        name = f"档案-{unit.name}.xlsx"
    else:
        people = await people_of_department(None)
        name = f"档案-{EVERYONE}.xlsx"
    path = out / UNSAFE.sub("_", name)
    await write_files(people, path, rules, today, tz)
    return path


async def write_files(people: Sequence[User], path: Path, rules: QualificationRules,
                      today: date, tz: tzinfo) -> None:
    book = Workbook(write_only=True)
    sheets = {title: book.create_sheet(title) for title in SHEETS}
    for title, sheet in sheets.items():
        table_header(sheet, SHEETS[title])
    for person in people:
        for title, row in file_rows(await person_file(person, today), rules, today, tz):
            sheets[title].append([person.id, person.name, *row])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


def file_rows(f: PersonFile, rules: QualificationRules, today: date, tz: tzinfo
              ) -> Iterator[tuple[str, list[object]]]:
    """A person's rows on each sheet, without the id and name that start every row."""
    p = f.profile
    passed = sum(1 for r in f.checks if r.data.get("ok"))
    status = "；".join(s for s in (p.suspended and f"停岗（{p.suspended}）",
                                   p.blacklisted and f"黑名单（{p.blacklisted}）") if s)
    yield "人员", [f.department, p.post, p.hired_on, p.post_since,
                 f.contractor.name if f.contractor else "", len(f.certificates),
                 f.hours_12_months, passed, len(f.checks) - passed, len(f.violations),
                 f.hazards_reported, status or "在岗"]
    soon = timedelta(days=max(rules.reminder_days))
    for c in f.certificates:
        kind = rules.certificates.get(c.type_code)
        yield "证书", [kind.label if kind else c.type_code, c.number, c.issued_on,
                     c.expires_on, c.review_on, *_validity(c, today, soon)]
    for t in f.training:
        yield "培训", [t.on, t.course, t.hours, t.credit, t.score, "是" if t.passed else "否",
                     SOURCES.get(t.source, t.source)]
    for r in f.checks:
        yield "开工校验", [_local(r.at, tz), r.data.get("check"), r.data.get("work_type"),
                       r.data.get("area"), "通过" if r.data.get("ok") else "未通过",
                       "；".join(r.data.get("reasons", ()))]
    handled = (e for e in f.events if e.kind in (RecordKind.SUSPENSION, RecordKind.BLACKLIST))
    for r in sorted((*f.violations, *handled), key=lambda r: r.seq):
        yield "违章与处理", [_local(r.at, tz), _handling(r),
                        r.data.get("what") or r.data.get("reason", ""), r.actor]


def _validity(c: Certificate, today: date, soon: timedelta) -> tuple[str, str]:
    """有效 / 即将到期 (within the first reminder's days) / 已失效, and what is due or wrong."""
    problem = c.problem(today)
    if problem:
        return "已失效", problem
    if c.due_on > today + soon:
        return "有效", ""
    return "即将到期", (f"应于{c.due_on:%Y-%m-%d}前复审" if c.due_is_review
                       else f"{c.due_on:%Y-%m-%d}到期")


def _handling(r: PersonRecord) -> str:
    event = "" if r.kind is RecordKind.VIOLATION else str(r.data.get("event", ""))
    return HANDLING.get((r.kind.value, event), r.kind.label)


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """Excel has no time zones: the plant's wall-clock time, as people read it."""
    return moment.astimezone(tz).replace(tzinfo=None)
