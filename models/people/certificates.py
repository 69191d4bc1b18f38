"""Certificates (证书) and a contractor's documents (资质): what a person or a company holds,
with its number, its validity and its review date, and the reminders before either comes.

A certificate is one row per (type, number), kept current (a review moves its review date, a
renewal its expiry); every change is also a record in the holder's chain
(models/people/records.py), which is the history. Validity is read by date, so a certificate
stops counting on the day after its expiry (有效期至 is the last valid day) or its review date,
whatever the scheduler has done; the scheduler's part is to remind before and to record and
announce the lapse after.

`remind_on` is the next day something is due on the row (a reminder, or the lapse): the daily
job reads only the rows whose day has come, through an index, however many certificates there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model

from models import atomic
from models.calendar import reminder_window
from models.org import User
from models.people.profiles import Contractor
from models.people.records import NewRecord, RecordKind, append_many, contractor_holder
from models.people.rules import CertificateType


class HolderKind(StrEnum):
    PERSON = "person"
    CONTRACTOR = "contractor"


class CertificateStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"        # withdrawn by a safety manager


class Certificate(Model):
    id = fields.BigIntField(primary_key=True)
    holder_kind = fields.CharEnumField(HolderKind, max_length=10, default=HolderKind.PERSON)
    holder_id = fields.CharField(max_length=64)        # a person's id or a contractor's
    type_code = fields.CharField(max_length=32)
    number = fields.CharField(max_length=64)
    issued_on = fields.DateField(null=True)
    expires_on = fields.DateField()                   # the last day it is valid
    review_on = fields.DateField(null=True)           # 复审 due by this day; None: no review
    photo = fields.CharField(max_length=64, null=True)  # the scan, by content hash
    status = fields.CharEnumField(CertificateStatus, max_length=8,
                                  default=CertificateStatus.ACTIVE)
    source = fields.CharField(max_length=10)          # roster / import / chat
    remind_on = fields.DateField(null=True)           # the next reminder or the lapse
    reminded: list[int] = fields.JSONField(default=list)  # type: ignore[assignment]
    notify: list[str] = fields.JSONField(default=list)    # type: ignore[assignment]
    lapsed_on = fields.DateField(null=True)           # recorded as lapsed on this day
    added_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "certificate"
        unique_together = (("type_code", "number"),)
        indexes = (("holder_id", "status"), ("remind_on",))

    @property
    def due_on(self) -> date:
        """The next day it must be reviewed or renewed by."""
        return due_day(self.expires_on, self.review_on)

    @property
    def due_is_review(self) -> bool:
        return self.review_on is not None and self.review_on < self.expires_on

    def valid(self, today: date) -> bool:
        return self.status is CertificateStatus.ACTIVE and today <= self.due_on

    def problem(self, today: date) -> str:
        """Why it does not count today ("" when it does)."""
        if self.status is not CertificateStatus.ACTIVE:
            return "已注销"
        if today > self.expires_on:
            return f"已于{self.expires_on:%Y-%m-%d}到期"
        if self.review_on and today > self.review_on:
            return f"未按期复审（应于{self.review_on:%Y-%m-%d}前复审）"
        return ""

    @property
    def holder(self) -> str:
        """Its holder's chain of records."""
        return (self.holder_id if self.holder_kind is HolderKind.PERSON
                else contractor_holder(self.holder_id))

    def facts(self) -> dict[str, Any]:
        """What a record of it keeps."""
        return {"type": self.type_code, "number": self.number, "issued_on": self.issued_on,
                "expires_on": self.expires_on, "review_on": self.review_on,
                "photo": self.photo, "source": self.source}


def _to_come(reminded: Sequence[int], days: Sequence[int]) -> list[int]:
    """The reminders still to come, farthest first: those nearer the due day than the nearest
    one sent. One passed unsent (a holiday, a certificate registered late) never comes back,
    so the next reminder's day is never in the past once a later one has gone."""
    nearest = min(reminded, default=None)
    return sorted((d for d in days if nearest is None or d < nearest), reverse=True)


def due_day(expires_on: date, review_on: date | None) -> date:
    """A certificate's next day to be reviewed or renewed by: its review's, if sooner."""
    return min(expires_on, review_on) if review_on else expires_on


def next_reminder(due: date, reminded: Sequence[int], days: Sequence[int]) -> date:
    """The day of the next reminder still to come before `due`, or the lapse (the day after)."""
    waiting = _to_come(reminded, days)
    return due - timedelta(days=waiting[0]) if waiting else due + timedelta(days=1)


def reminder_due(due: date, today: date, reminded: Sequence[int], days: Sequence[int]
                 ) -> int | None:
    """The reminder to send today: the nearest of `days` before `due` that has begun and is
    still to come (the ones before it, missed on holidays, are not sent late)."""
    return reminder_window(due, today, _to_come(reminded, days))


class CertificateError(Exception):
    """A certificate that cannot be registered; the message says why, in Chinese."""


@dataclass(frozen=True)
class NewCertificate:
    holder_kind: HolderKind
    holder_id: str
    type: CertificateType
    number: str
    issued_on: date | None
    expires_on: date
    review_on: date | None
    photo: str | None = None


def default_dates(kind: CertificateType, issued_on: date) -> tuple[date, date | None]:
    """(expiry, first review) from the type's rule, for a certificate given only its issue date."""
    return (_years_after(issued_on, kind.valid_years) - timedelta(days=1),
            _years_after(issued_on, kind.review_years) - timedelta(days=1)
            if kind.review_years else None)


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:                  # 29 February
        return day.replace(year=day.year + years, day=28)


async def taken_numbers(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Who holds each (type, number) already, for an import to refuse another holder's."""
    if not pairs:
        return {}
    rows = await Certificate.filter(number__in={n for _, n in pairs}).values_list(
        "type_code", "number", "holder_id")
    wanted = set(pairs)
    return {(t, n): h for t, n, h in rows if (t, n) in wanted}


async def register(certificates: Sequence[NewCertificate], source: str, actor: str,
                   now: datetime, days: Sequence[int]) -> tuple[int, int]:
    """Add certificates, or bring ones with the same type and number up to date (a review or a
    renewal): (added, changed). One of another holder's is refused before anything is written.
    Each write is a record in its holder's chain."""
    added = changed = 0
    async with atomic():
        taken = await taken_numbers([(c.type.code, c.number) for c in certificates])
        for c in certificates:
            other = taken.get((c.type.code, c.number))
            if other is not None and other != c.holder_id:
                raise CertificateError(f"证书编号 {c.number}（{c.type.name}）已登记在他人名下")
        existing = {(r.type_code, r.number): r for r in await Certificate.filter(
            number__in={c.number for c in certificates})}
        records = []
        for c in certificates:
            row = existing.get((c.type.code, c.number))
            values: dict[str, Any] = {
                "issued_on": c.issued_on, "expires_on": c.expires_on, "review_on": c.review_on,
                "status": CertificateStatus.ACTIVE}
            if c.photo:
                values["photo"] = c.photo
            if row is None:
                row = Certificate(holder_kind=c.holder_kind, holder_id=c.holder_id,
                                  type_code=c.type.code, number=c.number, source=source,
                                  added_at=now, updated_at=now, **values)
                event = "registered"
                added += 1
            elif any(getattr(row, k) != v for k, v in values.items()):
                event = "renewed" if c.expires_on != row.expires_on else "reviewed"
                row.update_from_dict({**values, "source": source, "updated_at": now})
                changed += 1
            else:
                continue
            row.reminded, row.notify, row.lapsed_on = [], [], None
            row.remind_on = next_reminder(row.due_on, [], days)
            await row.save()
            records.append(NewRecord(row.holder, RecordKind.CERTIFICATE,
                                     {"event": event, **row.facts()}))
        await append_many(records, actor, now)
    return added, changed


async def certificates_of(holder_id: str, holder_kind: HolderKind = HolderKind.PERSON
                          ) -> list[Certificate]:
    return list(await Certificate.filter(holder_id=holder_id, holder_kind=holder_kind,
                                         status=CertificateStatus.ACTIVE)
                .order_by("type_code", "number"))


async def certificates_of_people(people: Sequence[str]) -> dict[str, list[Certificate]]:
    found: dict[str, list[Certificate]] = {p: [] for p in people}
    for row in await Certificate.filter(holder_id__in=list(people),
                                        holder_kind=HolderKind.PERSON,
                                        status=CertificateStatus.ACTIVE):
        found[row.holder_id].append(row)
    return found


# ---------------------------------------------------------------------------------------------
# For the scheduler


async def due_today(today: date, limit: int = 1000) -> list[Certificate]:
    """Active certificates whose next reminder or lapse has come, oldest first, locked until
    the caller's transaction ends (PostgreSQL): a renewal saved meanwhile waits, then writes
    its dates and fresh reminders over the job's marks (SQLite has one writer at a time)."""
    return list(await Certificate.filter(remind_on__lte=today, status=CertificateStatus.ACTIVE)
                .order_by("remind_on", "id").limit(limit).select_for_update())


async def mark_reminded(sent: Sequence[tuple[Certificate, int, list[str]]],
                        unsent: Sequence[Certificate], days: Sequence[int]) -> None:
    """The reminders queued, each with its days before and the recipients frozen, and the rows
    with nothing to send today (a reminder missed, the rules' days changed): each row's next
    day, in one statement for all."""
    for row, days_before, notify in sent:
        row.reminded, row.notify = [*row.reminded, days_before], notify
    rows = [row for row, _, _ in sent] + list(unsent)
    for row in rows:
        row.remind_on = next_reminder(row.due_on, row.reminded, days)
    if rows:
        await Certificate.bulk_update(rows, ["reminded", "notify", "remind_on"])


async def mark_lapsed(rows: Sequence[Certificate], today: date, now: datetime) -> None:
    """They no longer count: each recorded in its holder's chain, nothing more due on them."""
    if not rows:
        return
    async with atomic():
        await Certificate.filter(id__in=[r.id for r in rows]).update(lapsed_on=today,
                                                                     remind_on=None)
        for row in rows:
            row.lapsed_on, row.remind_on = today, None
        await append_many([NewRecord(row.holder, RecordKind.LAPSED, {
            "type": row.type_code, "number": row.number, "reason": row.problem(today),
            "due_on": row.due_on}) for row in rows], "scheduler", now)


# Ids in one IN list: a digest of a million certificates asks about tens of thousands of
# holders, and PostgreSQL's protocol takes at most 32,767 parameters a statement.
IDS_PER_QUERY = 10_000


@dataclass(frozen=True)
class Holder:
    name: str
    active: bool
    supervisor: str | None = None       # a person's supervisor, when active


async def holders_of(rows: Sequence[Certificate]) -> dict[str, Holder]:
    """Who holds these certificates, by `Certificate.holder`: a query per IDS_PER_QUERY
    people and one for the companies. A holder the roster does not know is left out."""
    people = sorted({r.holder_id for r in rows if r.holder_kind is HolderKind.PERSON})
    companies = {r.holder_id for r in rows if r.holder_kind is HolderKind.CONTRACTOR}
    found = {}
    for start in range(0, len(people), IDS_PER_QUERY):
        for u in await User.filter(id__in=people[start:start + IDS_PER_QUERY]).values(
                "id", "name", "active", "supervisor_id", "supervisor__active"):
            found[u["id"]] = Holder(u["name"], u["active"],
                                    u["supervisor_id"] if u["supervisor__active"] else None)
    if companies:
        for c in await Contractor.filter(id__in=companies).values("id", "name", "active"):
            found[contractor_holder(c["id"])] = Holder(c["name"], c["active"])
    return found


async def superseded(rows: Sequence[Certificate]) -> set[int]:
    """Those of `rows` whose holder has another active certificate of the same type due later:
    a renewal under a new number (a contractor's permit, a certificate reissued), after which
    the old one is not worth a reminder."""
    holders = sorted({r.holder_id for r in rows})
    codes = {r.type_code for r in rows}
    latest: dict[tuple[str, str, str], date] = {}
    for start in range(0, len(holders), IDS_PER_QUERY):
        for kind, holder, code, expires, review in await Certificate.filter(
                holder_id__in=holders[start:start + IDS_PER_QUERY], type_code__in=codes,
                status=CertificateStatus.ACTIVE).values_list(
                "holder_kind", "holder_id", "type_code", "expires_on", "review_on"):
            due = due_day(expires, review)
            key = (str(kind), holder, code)
            latest[key] = max(due, latest.get(key, due))
    return {r.id for r in rows
            if latest.get((r.holder_kind.value, r.holder_id, r.type_code), r.due_on) > r.due_on}


async def expiring(today: date, within_days: int) -> list[Certificate]:
    """Active certificates due (review or expiry) within the next `within_days`, or past due
    and not renewed, by their due day."""
    horizon = today + timedelta(days=within_days)
    rows = await Certificate.filter(Q(expires_on__lte=horizon) | Q(review_on__lte=horizon),
                                    status=CertificateStatus.ACTIVE)
    return sorted(rows, key=lambda r: (r.due_on, r.id))
