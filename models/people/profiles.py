"""What the person's file adds to the roster's person: post (岗位), hire date, the day the current
post began, the contractor they work for, and whether they are suspended (停岗) or blacklisted;
contractor companies (承包商) and their workers' admission (准入).

Profiles and contractors come from the roster; suspensions, the blacklist and admissions are
decided in chat by safety managers, each decision a record in the holder's chain."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models import atomic
from models.org import User
from models.people.records import NewRecord, RecordKind, append_many, contractor_holder


class Profile(Model):
    person_id = fields.CharField(max_length=64, primary_key=True)
    post = fields.CharField(max_length=32, default="")
    hired_on = fields.DateField(null=True)
    post_since = fields.DateField(null=True)
    contractor_id = fields.CharField(max_length=32, null=True)
    suspended = fields.CharField(max_length=200, default="")     # the reason; "" = not
    blacklisted = fields.CharField(max_length=200, default="")   # the reason; "" = not

    class Meta:
        table = "person_profile"
        indexes = (("contractor_id",),)


class Contractor(Model):
    id = fields.CharField(max_length=32, primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    responsible = fields.CharField(max_length=64, default="")   # 负责人, a name
    phone = fields.CharField(max_length=32, default="")
    contract_end = fields.DateField(null=True)                  # admissions end with it
    blacklisted = fields.CharField(max_length=200, default="")
    active = fields.BooleanField(default=True)

    class Meta:
        table = "contractor"


class AdmissionStatus(StrEnum):
    ASKED = "asked"           # waiting for the safety manager's card
    ADMITTED = "admitted"
    REFUSED = "refused"

    @property
    def label(self) -> str:
        return {"asked": "待审批", "admitted": "已准入", "refused": "不准入"}[self.value]


class Admission(Model):
    id = fields.BigIntField(primary_key=True)
    person_id = fields.CharField(max_length=64)
    contractor_id = fields.CharField(max_length=32)
    status = fields.CharEnumField(AdmissionStatus, max_length=8, default=AdmissionStatus.ASKED)
    work_types: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    until = fields.DateField(null=True)
    asked_by = fields.CharField(max_length=64)
    asked_at = fields.DatetimeField()
    decided_by = fields.CharField(max_length=64, default="")
    decided_at = fields.DatetimeField(null=True)
    reason = fields.CharField(max_length=200, default="")
    token = fields.CharField(max_length=16)       # the card's key, so a forged click fails

    class Meta:
        table = "contractor_admission"
        indexes = (("person_id", "status"),)

    def ends(self, contractor: Contractor | None) -> date | None:
        """The last day it admits: the contract's end as it stands now (a contract extended
        extends its workers' admission, one cut short cuts it), else the end it was given."""
        return contractor.contract_end if contractor is not None else self.until

    def valid(self, today: date, contractor: Contractor | None) -> bool:
        end = self.ends(contractor)
        return self.status is AdmissionStatus.ADMITTED and (end is None or today <= end)


async def profile_of(person_id: str) -> Profile:
    """The person's profile; an empty one for a person the roster gave none."""
    return await Profile.get_or_none(person_id=person_id) or Profile(person_id=person_id)


async def profiles_of(people: Sequence[str]) -> dict[str, Profile]:
    found = {p.person_id: p for p in await Profile.filter(person_id__in=list(people))}
    return {p: found.get(p) or Profile(person_id=p) for p in people}


async def contractors_by_id(ids: Sequence[str]) -> dict[str, Contractor]:
    return {c.id: c for c in await Contractor.filter(id__in=list(ids))}


async def contractor_named(text: str) -> Contractor | None:
    return await Contractor.filter(active=True).filter(name=text).first() or (
        await Contractor.get_or_none(id=text, active=True))


async def admissions_of(people: Sequence[str]) -> dict[str, Admission]:
    """Each person's latest admission decided or asked."""
    latest: dict[str, Admission] = {}
    for row in await Admission.filter(person_id__in=list(people)).order_by("id"):
        latest[row.person_id] = row
    return latest


async def ask_admission(person_id: str, contractor: Contractor, work_types: list[str],
                        asked_by: str, now: datetime) -> Admission:
    """A new admission waiting for the safety manager's card (any one still waiting is
    replaced: only the latest card decides)."""
    async with atomic():
        await Admission.filter(person_id=person_id, status=AdmissionStatus.ASKED).update(
            status=AdmissionStatus.REFUSED, reason="已重新申请", decided_at=now)
        row = await Admission.create(person_id=person_id, contractor_id=contractor.id,
                                     work_types=work_types, until=contractor.contract_end,
                                     asked_by=asked_by, asked_at=now,
                                     token=secrets.token_hex(6))
        await append_many([NewRecord(person_id, RecordKind.ADMISSION, {
            "event": "asked", "contractor": contractor.id, "work_types": work_types})],
            asked_by, now)
    return row


async def decide_admission(admission: Admission, admit: bool, by: str, reason: str,
                           now: datetime) -> bool:
    """准入 or 不准入, once: False when the card was decided already (by another manager, or a
    second click)."""
    status = AdmissionStatus.ADMITTED if admit else AdmissionStatus.REFUSED
    async with atomic():
        won = await Admission.filter(id=admission.id, status=AdmissionStatus.ASKED).update(
            status=status, decided_by=by, decided_at=now, reason=reason)
        if not won:
            return False
        admission.status, admission.decided_by, admission.reason = status, by, reason
        await append_many([NewRecord(admission.person_id, RecordKind.ADMISSION, {
            "event": status.value, "contractor": admission.contractor_id,
            "until": admission.until, "reason": reason})], by, now)
    return True


async def set_suspended(person_id: str, reason: str, by: str, now: datetime) -> None:
    """停岗 with a reason, or 复岗 with ""."""
    async with atomic():
        profile = await profile_of(person_id)
        profile.suspended = reason
        await profile.save()
        await append_many([NewRecord(person_id, RecordKind.SUSPENSION, {
            "event": "suspended" if reason else "resumed", "reason": reason})], by, now)


async def set_blacklisted(person_id: str | None, contractor: Contractor | None, reason: str,
                          by: str, now: datetime) -> None:
    """A person or a company onto the blacklist with a reason, or off it with ""."""
    event = {"event": "listed" if reason else "removed", "reason": reason}
    async with atomic():
        if contractor is not None:
            await Contractor.filter(id=contractor.id).update(blacklisted=reason)
            contractor.blacklisted = reason
            await append_many([NewRecord(contractor_holder(contractor.id),
                                         RecordKind.BLACKLIST, event)], by, now)
        if person_id is not None:
            profile = await profile_of(person_id)
            profile.blacklisted = reason
            await profile.save()
            await append_many([NewRecord(person_id, RecordKind.BLACKLIST, event)], by, now)


async def record_violation(person_id: str, what: str, by: str, now: datetime) -> None:
    await append_many([NewRecord(person_id, RecordKind.VIOLATION, {"what": what})], by, now)


CHAT = "chat"      # the source of a contractor's worker added in chat: no roster deactivates them


async def add_contractor(name: str, responsible: str, phone: str, contract_end: date | None,
                         by: str, now: datetime) -> Contractor:
    async with atomic():
        company = await Contractor.create(id=f"c-{secrets.token_hex(4)}", name=name,
                                          responsible=responsible, phone=phone,
                                          contract_end=contract_end)
        await append_many([NewRecord(contractor_holder(company.id), RecordKind.PROFILE, {
            "event": "added", "name": name, "responsible": responsible, "phone": phone,
            "contract_end": contract_end})], by, now)
    return company


async def add_contractor_worker(name: str, contractor: Contractor, post: str, supervisor: str,
                                by: str, now: datetime) -> User:
    """A contractor's worker without a chat account, kept by chat (not by the roster file):
    the team lead who adds them is their supervisor and names them in 开工."""
    async with atomic():
        person = await User.create(id=f"{contractor.id}-{secrets.token_hex(3)}", name=name,
                                   roles=["worker"], supervisor_id=supervisor, source=CHAT)
        await Profile.create(person_id=person.id, post=post, contractor_id=contractor.id)
        await append_many([NewRecord(person.id, RecordKind.PROFILE, {
            "post": post, "contractor_id": contractor.id, "added_by": by})], by, now)
    return person


async def admission_by_id(admission_id: int | None) -> Admission | None:
    return await Admission.get_or_none(id=admission_id) if admission_id else None
