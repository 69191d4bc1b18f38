"""`safetybot import-certificates` and `import-training`: the paper ledgers (证书台账, 培训台账)
typed into a spreadsheet, into people's files (一人一档).

Every row is checked first, alone and against the roster and the certificates already held,
and every bad one is named by the row number Excel shows, with its reason: a ledger has hundreds
of rows typed from paper, and whoever fixes it needs them all at once. The good rows are then
written in one transaction (with their records in each holder's chain), so an import never
stops half-written, and importing the same sheet again changes nothing.

The templates, `config/certificates-template.xlsx` and `config/training-template.xlsx`, are made
by `tools/make_templates.py` from the columns below.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import TypeVar
from zipfile import BadZipFile

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from tortoise.expressions import Q

from bot.loading import limit, show
from models.org import User
from models.people.certificates import (
    Certificate,
    HolderKind,
    NewCertificate,
    default_dates,
    register,
    taken_numbers,
)
from models.people.profiles import Contractor
from models.people.rules import CertificateType, QualificationRules
from models.training.courses import course_titles
from models.training.records import Taken, TrainingRecord, add_training

WHO = "姓名或工号"
CERTIFICATE_COLUMNS = (WHO, "证书类型", "证书编号", "发证日期", "有效期至", "复审日期")
TRAINING_COLUMNS = (WHO, "课程", "学时", "日期", "成绩", "是否合格")
SOURCE = "import"           # the rows' source, and the actor of their records
PASS_MARK = 60              # 是否合格 left empty: passed at this score or with none
PASSED = {"是": True, "合格": True, "否": False, "不合格": False}
# 2026-03-01, 2026/3/1, 2026.3.1, 2026年3月1日: a date typed as text rather than as a date
DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
T = TypeVar("T")


class NotASheet(Exception):
    """A file that is not a workbook of ours (unreadable, not xlsx, or without the header)."""


class BadRow(Exception):
    """Why a row cannot be imported, naming the column."""


@dataclass(frozen=True)
class Row:
    """A row of the sheet: its number as Excel shows it, and its cells by column name."""

    number: int
    cells: Mapping[str, object]

    def text(self, column: str, longest: int | None = None) -> str:
        value = self.cells[column]
        if value is None:
            raise BadRow(f"{column} is empty")
        # A number typed into a text column (123 shown, 123.0 stored) is the text people see.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value)
        if longest is not None and len(text) > longest:
            raise BadRow(f"{column} is longer than {longest} characters")
        return text

    def day(self, column: str) -> date | None:
        value = self.cells[column]
        if isinstance(value, datetime):
            return value.date()
        if value is None or isinstance(value, date):
            return value
        match = DATE.fullmatch(str(value))
        try:
            if match:
                return date(*(int(part) for part in match.groups()))
        except ValueError:
            pass
        raise BadRow(f"{column} {show(str(value))} is not a date")

    def amount(self, column: str) -> float | None:
        value = self.cells[column]
        if value is None:
            return None
        try:
            number = (float(value) if isinstance(value, int | float | str)
                      and not isinstance(value, bool) else math.nan)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise BadRow(f"{column} {show(str(value))} is not a number")
        return number


@dataclass(frozen=True)
class ImportReport:
    rows: int                        # rows imported, changed or not
    added: int
    updated: int
    refused: tuple[str, ...]         # "row 5: …", one per bad row, in the sheet's order

    def summary(self) -> str:
        unchanged = self.rows - self.added - self.updated
        bad = len(self.refused)
        return (f"imported {self.rows}: {self.added} added, {self.updated} updated, "
                f"{unchanged} unchanged; {bad} row{'' if bad == 1 else 's'} refused")


# ---------------------------------------------------------------------------------------------
# The sheet


def read_rows(path: Path, columns: Sequence[str]) -> list[Row]:
    """The first sheet's rows under its header (which must name `columns`, in any order;
    other columns are left alone), blank rows skipped."""
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError):
        raise NotASheet(f"{path} is not an Excel workbook (.xlsx)") from None
    except OSError as exc:
        raise NotASheet(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()        # as other programs write them, they cannot be trusted
        lines = sheet.iter_rows(values_only=True)
        header = [_cell(v) for v in next(lines, ())]
        missing = [c for c in columns if c not in header]
        if missing:
            raise NotASheet(f"{path}: the first row must name the columns "
                            f"{' | '.join(columns)}; {missing[0]} is missing")
        where = {c: header.index(c) for c in columns}
        rows = (Row(n, {c: _cell(line[i]) if i < len(line) else None for c, i in where.items()})
                for n, line in enumerate(lines, 2))
        return [r for r in rows if any(v is not None for v in r.cells.values())]
    finally:
        book.close()


def _cell(value: object) -> object:
    """Text trimmed, and a blank cell None whatever was typed into it."""
    if isinstance(value, str):
        return value.strip() or None
    return value


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class _Certificate:
    holder: str                     # as the sheet names them: an id or a name
    type: CertificateType
    number: str
    issued_on: date | None
    expires_on: date
    review_on: date | None


async def import_certificates(rows: Sequence[Row], rules: QualificationRules, now: datetime,
                              tz: tzinfo) -> ImportReport:
    """People's certificates and contractors' documents (by the type's holder), checked, then
    added or brought up to date in one transaction."""
    refused: dict[int, str] = {}
    today = now.astimezone(tz).date()
    lines = _parse(rows, lambda r: _certificate(r, rules, today), refused)
    found = {kind: await find_holders(model, {c.holder for c in lines.values()
                                              if c.type.holder == kind})
             for kind, model in ((HolderKind.PERSON, User), (HolderKind.CONTRACTOR, Contractor))}
    holders: dict[int, tuple[HolderKind, str]] = {}
    for n, c in lines.items():
        kind = HolderKind(c.type.holder)
        try:
            holders[n] = (kind, one_holder(c.holder, found[kind][c.holder], kind))
        except BadRow as exc:
            refused[n] = str(exc)
    _refuse_repeats({n: (c.type.code, c.number) for n, c in lines.items()},
                    lambda n: f"certificate number {lines[n].number} ({lines[n].type.name})",
                    refused)
    good = {n: c for n, c in lines.items() if n not in refused}
    taken = await taken_numbers([(c.type.code, c.number) for c in good.values()])
    for n, c in good.items():
        other = taken.get((c.type.code, c.number))
        if other is not None and other != holders[n][1]:
            refused[n] = f"number {c.number} ({c.type.name}) is held by {other}"
    good = {n: c for n, c in good.items() if n not in refused}
    added, updated = await register(
        [NewCertificate(*holders[n], c.type, c.number, c.issued_on, c.expires_on, c.review_on)
         for n, c in good.items()], SOURCE, SOURCE, now, rules.reminder_days)
    return _report(len(good), added, updated, refused)


def _certificate(row: Row, rules: QualificationRules, today: date) -> _Certificate:
    holder = row.text(WHO)
    word = row.text("证书类型")
    kind = rules.certificate_type(word)
    if kind is None:
        raise BadRow(f"unknown certificate type {show(word)}")
    number = row.text("证书编号", limit(Certificate, "number"))
    issued_on, expires_on, review_on = (row.day(c) for c in ("发证日期", "有效期至", "复审日期"))
    if issued_on is None:
        if expires_on is None:
            raise BadRow("发证日期 and 有效期至 are both empty: give at least one")
    else:
        if issued_on > today:
            raise BadRow(f"发证日期 {issued_on} is after today")
        default_expiry, default_review = default_dates(kind, issued_on)
        expires_on, review_on = expires_on or default_expiry, review_on or default_review
        if expires_on < issued_on:
            raise BadRow(f"有效期至 {expires_on} is before 发证日期 {issued_on}")
    return _Certificate(holder, kind, number, issued_on, expires_on, review_on)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class _Training:
    holder: str
    course: str
    hours: float
    on: date
    score: float | None
    passed: bool


async def import_training(rows: Sequence[Row], now: datetime, tz: tzinfo,
                          classroom: Collection[str] | None = None) -> ImportReport:
    """Training records not yet there (by person, course and day) added in one transaction;
    one already there is left as it is. With the training module on (`classroom` given), a
    course must be one of its courses or of its classroom courses."""
    refused: dict[int, str] = {}
    today = now.astimezone(tz).date()
    lines = _parse(rows, lambda r: _training(r, today), refused)
    people = await find_holders(User, {t.holder for t in lines.values()})
    known = None if classroom is None else await course_titles() | set(classroom)
    taken: dict[int, Taken] = {}
    for n, t in lines.items():
        try:
            person = one_holder(t.holder, people[t.holder], HolderKind.PERSON)
        except BadRow as exc:
            refused[n] = str(exc)
            continue
        if known is not None and t.course not in known:
            refused[n] = (f"课程 {show(t.course)} is neither a course of config/training/ nor "
                          "a classroom course of training.toml")
            continue
        taken[n] = Taken(person, t.course, t.hours, t.on, t.score, t.passed)
    _refuse_repeats({n: (t.person_id, t.course, t.on) for n, t in taken.items()},
                    lambda n: f"{taken[n].course} on {taken[n].on} for {taken[n].person_id}",
                    refused)
    good = [t for n, t in taken.items() if n not in refused]
    added = await add_training(good, SOURCE, SOURCE, now)
    return _report(len(good), added, 0, refused)


def _training(row: Row, today: date) -> _Training:
    holder = row.text(WHO)
    course = row.text("课程", limit(TrainingRecord, "course"))
    hours = row.amount("学时")
    if hours is None:
        raise BadRow("学时 is empty")
    if hours <= 0:
        raise BadRow(f"学时 {hours:g} is not a positive number")
    on = row.day("日期")
    if on is None:
        raise BadRow("日期 is empty")
    if on > today:
        raise BadRow(f"日期 {on} is after today")
    score = row.amount("成绩")
    if score is not None and not 0 <= score <= 100:
        raise BadRow(f"成绩 {score:g} is not between 0 and 100")
    mark = row.cells["是否合格"]
    if mark is None:
        passed = score is None or score >= PASS_MARK
    elif str(mark) in PASSED:
        passed = PASSED[str(mark)]
    else:
        raise BadRow(f"是否合格 {show(str(mark))} must be 是 or 否 (or empty)")
    return _Training(holder, course, hours, on, score, passed)


# ---------------------------------------------------------------------------------------------
# What both share


def _parse(rows: Iterable[Row], parse: Callable[[Row], T], refused: dict[int, str]
           ) -> dict[int, T]:
    """Each row parsed, by its number; a row that fails goes to `refused` with its reason."""
    parsed: dict[int, T] = {}
    for row in rows:
        try:
            parsed[row.number] = parse(row)
        except BadRow as exc:
            refused[row.number] = str(exc)
    return parsed


def _refuse_repeats(keys: Mapping[int, Hashable], name: Callable[[int], str],
                    refused: dict[int, str]) -> None:
    """Rows that say the same thing twice are all refused: which of them is right is for
    whoever typed them to say, and one imported by guess could not be taken back."""
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for n, key in keys.items():
        rows[key].append(n)
    for same in rows.values():
        if len(same) > 1:
            where = f"rows {', '.join(map(str, same[:-1]))} and {same[-1]}"
            for n in same:
                refused.setdefault(n, f"{name(n)} appears {len(same)} times ({where})"
                                   if len(same) > 2 else f"{name(n)} appears twice ({where})")


async def find_holders(model: type[User] | type[Contractor], words: Collection[str]
                       ) -> dict[str, list[str]]:
    """The ids of the active people (or contractors) each word names: its own id, else every
    one of that exact name."""
    if not words:
        return {}
    rows = await model.filter(Q(id__in=list(words)) | Q(name__in=list(words)), active=True
                              ).order_by("id").values_list("id", "name")
    named: dict[str, list[str]] = defaultdict(list)
    for ident, name in rows:
        named[name].append(ident)
    ids = {ident for ident, _ in rows}
    return {w: [w] if w in ids else named.get(w, []) for w in words}


def one_holder(word: str, ids: Sequence[str], kind: HolderKind) -> str:
    """The one id of `find_holders`'s answer for `word`, or why there is not one."""
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise BadRow(f"{word} is not in the roster" if kind is HolderKind.PERSON
                     else f"{word} is not a contractor in the roster")
    raise BadRow(f"{word} is the name of {len(ids)} people ({', '.join(ids)}): give the id")


def _report(rows: int, added: int, updated: int, refused: Mapping[int, str]) -> ImportReport:
    return ImportReport(rows, added, updated,
                        tuple(f"row {n}: {why}" for n, why in sorted(refused.items())))
