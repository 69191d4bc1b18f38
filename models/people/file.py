"""The person's file (一人一档) put together for reading: in chat (`我的档案`, `档案 张三`), in the
xlsx export, and on the dashboard once it exists. Who may read it is decided here too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from models.hazard import hazards, is_manager
from models.org import User, supervisor_chain
from models.people.certificates import Certificate, certificates_of
from models.people.profiles import Admission, Contractor, Profile, admissions_of, profile_of
from models.people.records import PersonRecord, RecordKind, records_of
from models.training.records import TrainingRecord, hours_within, training_of


@dataclass(frozen=True)
class PersonFile:
    person: User
    department: str
    profile: Profile
    contractor: Contractor | None
    admission: Admission | None
    certificates: list[Certificate]
    training: list[TrainingRecord]
    hours_12_months: float
    checks: list[PersonRecord]          # the pre-work checks this person was named in
    violations: list[PersonRecord]
    events: list[PersonRecord]          # suspensions, blacklist, lapses, admissions
    hazards_reported: int
    hazards_closed: int


async def person_file(person: User, today: date) -> PersonFile:
    profile = await profile_of(person.id)
    contractor = (await Contractor.get_or_none(id=profile.contractor_id)
                  if profile.contractor_id else None)
    admission = (await admissions_of([person.id])).get(person.id) if contractor else None
    training = (await training_of([person.id]))[person.id]
    records = await records_of(person.id)
    reported = hazards().filter(reporter_id=person.id).exclude(status__in=("draft", "linked",
                                                                            "cancelled"))
    department = await person.department if person.department_id else None  # type: ignore[misc]
    return PersonFile(
        person=person, department=department.name if department else "", profile=profile,
        contractor=contractor, admission=admission,
        certificates=await certificates_of(person.id), training=training,
        hours_12_months=hours_within(training, today),
        checks=[r for r in records if r.kind is RecordKind.CHECK],
        violations=[r for r in records if r.kind is RecordKind.VIOLATION],
        events=[r for r in records if r.kind in (RecordKind.SUSPENSION, RecordKind.BLACKLIST,
                                                 RecordKind.LAPSED, RecordKind.ADMISSION)],
        hazards_reported=await reported.count(),
        hazards_closed=await reported.filter(status="closed").count())


async def may_read_file(reader: User, person: User) -> bool:
    """Oneself, the people up their supervisor chain, safety managers and principals."""
    return (reader.id == person.id or is_manager(reader)
            or reader.id in await supervisor_chain(person.id))


async def people_of_department(department: str | None) -> Sequence[User]:
    """Active people, of one department (by id) or all, by id."""
    query = User.filter(active=True)
    if department:
        query = query.filter(department_id=department)
    return list(await query.order_by("id"))
