"""The check before work starts (开工前资格校验): for each person named, whether they may do this
work today, and why not. Every answer is kept (the check row, and a record in each person's
chain); a refusal for a missing special-operations certificate proposes a 重大 ticket, which a
safety manager confirms or dismisses once."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models import atomic
from models.calendar import WorkCalendar
from models.catalog import Category, DefectType, Grade
from models.hazard import Ticket, assignment, file_ticket, new_draft, save_draft
from models.org import User
from models.people.certificates import certificates_of_people
from models.people.profiles import (
    Admission,
    AdmissionStatus,
    Contractor,
    admissions_of,
    contractors_by_id,
    profiles_of,
)
from models.people.records import NewRecord, RecordKind, append_many
from models.people.rules import QualificationRules, WorkType
from models.training.records import hours_within, passed_courses, training_of


class Proposal(StrEnum):
    NONE = ""
    PROPOSED = "proposed"        # waiting for a safety manager's card
    CONFIRMED = "confirmed"      # filed as a 重大 ticket
    DISMISSED = "dismissed"


@dataclass(frozen=True)
class Verdict:
    person_id: str
    name: str
    reasons: tuple[str, ...]            # why not; empty: may start
    unlicensed: tuple[str, ...] = ()    # the special-operations certificates lacking

    @property
    def ok(self) -> bool:
        return not self.reasons


class QualificationCheck(Model):
    id = fields.BigIntField(primary_key=True)
    asked_by = fields.CharField(max_length=64)
    work_type = fields.CharField(max_length=32)
    permit = fields.CharField(max_length=32, default="")
    area_id = fields.CharField(max_length=32, null=True)
    at = fields.DatetimeField()
    verdicts: list[dict[str, Any]] = fields.JSONField(default=list)  # type: ignore[assignment]
    allowed = fields.IntField()
    refused = fields.IntField()
    proposal = fields.CharEnumField(Proposal, max_length=10, default=Proposal.NONE)
    decided_by = fields.CharField(max_length=64, default="")
    ticket_id = fields.BigIntField(null=True)
    notified = fields.BooleanField(default=False)     # 通知安全员 pressed
    token = fields.CharField(max_length=16)

    class Meta:
        table = "qualification_check"
        indexes = (("at",), ("asked_by", "at"))

    @property
    def label(self) -> str:
        return f"KG-{self.id:06d}"

    @property
    def results(self) -> list[Verdict]:
        return [Verdict(v["person_id"], v["name"], tuple(v["reasons"]),
                        tuple(v.get("unlicensed", ()))) for v in self.verdicts]


async def judge(people: Sequence[User], work: WorkType, rules: QualificationRules,
                today: date, *, admission: bool = True) -> list[Verdict]:
    """Who may do `work` today: five queries for the whole crew, whatever its size. Without
    `admission`, a contractor's admission is not asked for (the admission itself asks)."""
    ids = [p.id for p in people]
    profiles = await profiles_of(ids)
    held = await certificates_of_people(ids)
    trained = await training_of(ids)
    hired = [p for p in ids if profiles[p].contractor_id]
    admissions = await admissions_of(hired) if hired else {}
    contractors = await contractors_by_id(
        [c for c in {profiles[p].contractor_id for p in hired} if c])
    verdicts = []
    for person in people:
        profile = profiles[person.id]
        reasons: list[str] = []
        unlicensed: list[str] = []
        if profile.blacklisted:
            reasons.append(f"已列入黑名单（{profile.blacklisted}）")
        if profile.suspended:
            reasons.append(f"停岗中（{profile.suspended}）")
        company = contractors.get(profile.contractor_id or "")
        if profile.contractor_id:
            if company is not None and company.blacklisted:
                reasons.append(f"所属承包商{company.name}已列入黑名单（{company.blacklisted}）")
            if admission:
                reasons.extend(_admission(admissions.get(person.id), company, today))
        for requirement in work.certificates:
            types = [rules.certificates[code] for code in requirement]
            own = [c for c in held[person.id] if c.type_code in requirement]
            if any(c.valid(today) for c in own):
                continue
            names = "或".join(t.name for t in types)
            reasons.append(f"{names}证{own[0].problem(today)}" if own else f"无{names}证")
            if any(t.special for t in types):
                unlicensed.append(names)
        passed = passed_courses(trained[person.id])
        reasons.extend(f"未通过培训考核：{c}" for c in work.trainings if c not in passed)
        if not profile.contractor_id:
            reasons.extend(_hours(rules, profile.post, person.roles, profile.hired_on,
                                  trained[person.id], today))
        verdicts.append(Verdict(person.id, person.name, tuple(reasons), tuple(unlicensed)))
    return verdicts


def _admission(admission: Admission | None, company: Contractor | None, today: date
               ) -> list[str]:
    if admission is None:
        return ["承包商人员未办理准入"]
    if admission.valid(today, company):
        return []
    if admission.status is AdmissionStatus.ADMITTED:
        return [f"准入已于{admission.ends(company):%Y-%m-%d}到期（合同期满）"]
    if admission.status is AdmissionStatus.ASKED:
        return ["承包商准入待安全管理员审批"]
    return [f"承包商准入未获批准（{admission.reason}）"]


def _hours(rules: QualificationRules, post: str, roles: Sequence[str], hired_on: date | None,
           records: Sequence[Any], today: date) -> list[str]:
    """A new hire (in their first year) needs the pre-job hours in all; everyone else the
    yearly hours in the last twelve months."""
    need = rules.hours_for(post, roles)
    if hired_on is not None and (today - hired_on).days < 365:
        total = sum(r.hours for r in records)
        return ([f"岗前培训{total:g}学时，不足{need.prejob:g}学时"]
                if total < need.prejob else [])
    done = hours_within(records, today)
    return ([f"近12个月培训{done:g}学时，不足{need.yearly:g}学时"]
            if done < need.yearly else [])


async def admission_gaps(person: User, contractor: Contractor, work_types: Sequence[WorkType],
                         rules: QualificationRules, today: date) -> list[str]:
    """What stands between a contractor's worker and admission: the entry training passed,
    the contract running, the company and the person off the blacklist, and the certificates
    and trainings of the work they will do."""
    gaps = []
    if contractor.contract_end is not None and contractor.contract_end < today:
        gaps.append(f"{contractor.name}的合同已于{contractor.contract_end:%Y-%m-%d}到期")
    if rules.contractor_course and rules.contractor_course not in passed_courses(
            (await training_of([person.id]))[person.id]):
        gaps.append(f"未通过入厂安全教育考核（{rules.contractor_course}）")
    for work in work_types or [WorkType("入厂")]:     # entry alone: the person's own state
        [verdict] = await judge([person], work, rules, today, admission=False)
        gaps.extend(f"{work.name}：{r}" if len(work_types) > 1 else r for r in verdict.reasons)
    return list(dict.fromkeys(gaps))


async def record_check(asked_by: str, work: WorkType, area_id: str | None,
                       verdicts: Sequence[Verdict], now: datetime) -> QualificationCheck:
    """Keep the answer: the check, and a record in each person's chain."""
    refused = [v for v in verdicts if not v.ok]
    async with atomic():
        check = await QualificationCheck.create(
            asked_by=asked_by, work_type=work.name, permit=work.permit, area_id=area_id, at=now,
            verdicts=[asdict(v) for v in verdicts], allowed=len(verdicts) - len(refused),
            refused=len(refused),
            proposal=Proposal.PROPOSED if any(v.unlicensed for v in refused) else Proposal.NONE,
            token=secrets.token_hex(6))
        await append_many([NewRecord(v.person_id, RecordKind.CHECK, {
            "check": check.label, "work_type": work.name, "area": area_id, "ok": v.ok,
            "reasons": list(v.reasons)}) for v in verdicts], asked_by, now)
    return check


async def check_by_id(check_id: int) -> QualificationCheck | None:
    return await QualificationCheck.get_or_none(id=check_id)


async def mark_notified(check: QualificationCheck) -> bool:
    """通知安全员, once."""
    return bool(await QualificationCheck.filter(id=check.id, notified=False).update(
        notified=True))


async def decide_proposal(check: QualificationCheck, confirm: bool, by: str) -> bool:
    """确认 or 不予立案 on the proposed 重大 ticket, once: False when decided already."""
    decision = Proposal.CONFIRMED if confirm else Proposal.DISMISSED
    won = await QualificationCheck.filter(id=check.id, proposal=Proposal.PROPOSED).update(
        proposal=decision, decided_by=by)
    if won:
        check.proposal, check.decided_by = decision, by
    return bool(won)


def unlicensed_description(check: QualificationCheck) -> str:
    """What the proposed ticket says: who lacked which special-operations certificate."""
    who = "；".join(f"{v.name}（{'、'.join(v.unlicensed)}证）" for v in check.results
                   if v.unlicensed)
    return (f"特种作业人员未持证上岗：{who}。开工前资格校验 {check.label}"
            f"（{check.work_type}）未通过，已拒绝其上岗。")


async def file_unlicensed(check: QualificationCheck, by: User, rules: QualificationRules,
                          category: Category, calendar: WorkCalendar, now: datetime,
                          day: str) -> Ticket | None:
    """The proposal confirmed: a 重大 ticket, reported by the safety manager who confirmed it,
    in the check's area, waiting for its 治理方案 as any 重大 ticket does. Raises Refused (from
    `assignment`) when the area has nobody to own it, before anything is written; None when
    the proposal was decided meanwhile (another manager's click)."""
    draft = Ticket(reporter_id=by.id, area_id=check.area_id, category=category.code,
                   grade=Grade.MAJOR, grade_reason=rules.major_basis or "特种作业人员未持证上岗",
                   defect_type=DefectType.MANAGEMENT, defect_reason="特种作业人员资格管理缺失",
                   description=unlicensed_description(check))
    who = await assignment(draft, category)
    if not await decide_proposal(check, True, by.id):
        return None
    ticket = await new_draft(by.id, [], now)
    ticket.update_from_dict({k: getattr(draft, k) for k in (
        "area_id", "category", "grade", "grade_reason", "defect_type", "defect_reason",
        "description")})
    await save_draft(ticket, now)
    await file_ticket(ticket, now, day, who, category, calendar)
    await QualificationCheck.filter(id=check.id).update(ticket_id=ticket.id)
    check.ticket_id = ticket.id
    return ticket
