"""The roster's part of the person's file (一人一档): each person's post, hire date, contractor
and certificates, and the contractor companies with their documents. Written in the roster's
transaction by `load_org` (bot/roster.py), after the people and before the commit, so a roster
with an unknown certificate type changes nothing.

Only what the file says is written: a profile or certificate that matches is left alone, and a
certificate missing from the file stays (it may have come from an import or from chat)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Protocol

from bot.loading import Entry, Journal, limit, show
from models.people.certificates import (
    Certificate,
    CertificateError,
    HolderKind,
    NewCertificate,
    default_dates,
    register,
)
from models.people.profiles import Contractor, Profile
from models.people.records import NewRecord, RecordKind, append_many
from models.people.rules import QualificationRules

SOURCE = "roster"


@dataclass(frozen=True)
class CertificateEntry:
    """A certificate in the roster (a person's) or a contractor's document."""

    type: str                      # a code of config/certificates.toml
    number: str
    issued_on: date | None = None
    expires_on: date | None = None     # the last valid day; from the type's rule if left out
    review_on: date | None = None


@dataclass(frozen=True)
class ContractorEntry:
    id: str
    name: str
    responsible: str = ""          # 负责人
    phone: str = ""
    contract_end: date | None = None   # its workers' admission ends with it
    documents: tuple[CertificateEntry, ...] = ()


class PersonFields(Protocol):
    """What a roster's person entry gives the file (bot.roster.UserEntry)."""

    @property
    def id(self) -> str: ...
    @property
    def post(self) -> str: ...
    @property
    def hired_on(self) -> date | None: ...
    @property
    def post_since(self) -> date | None: ...
    @property
    def contractor(self) -> str | None: ...
    @property
    def certificates(self) -> tuple[CertificateEntry, ...]: ...


def contractor_entry(t: Entry) -> ContractorEntry:
    return ContractorEntry(
        id=t.required("id", limit(Contractor, "id")),
        name=t.required("name", limit(Contractor, "name")),
        responsible=t.optional("responsible", limit(Contractor, "responsible")) or "",
        phone=t.optional("phone", limit(Contractor, "phone")) or "",
        contract_end=t.day("contract_end"),
        documents=certificate_entries(t, "documents"),
    )


def certificate_entries(t: Entry, key: str) -> tuple[CertificateEntry, ...]:
    """`certificates = [{ type = "T-EL-LV", number = "…", issued_on = 2024-03-01 }]`."""
    raw = t.raw.get(key, [])
    if not isinstance(raw, list):
        t.fail(f"{key} must be a list of {{ type, number, issued_on, expires_on }} tables")
    found = []
    for n, item in enumerate(raw):
        c = Entry(f"{t.where} {key}[{n}]", item, [f.name for f in fields(CertificateEntry)],
                  error=t.error, shape="{ type, number, … }")
        entry = CertificateEntry(type=c.required("type", limit(Certificate, "type_code")),
                                 number=c.required("number", limit(Certificate, "number")),
                                 issued_on=c.day("issued_on"), expires_on=c.day("expires_on"),
                                 review_on=c.day("review_on"))
        if entry.issued_on is None and entry.expires_on is None:
            c.fail("needs issued_on or expires_on")
        found.append(entry)
    return tuple(found)


async def load_people(users: Sequence[PersonFields], contractors: Sequence[ContractorEntry],
                      rules: QualificationRules, journal: Journal) -> None:
    """Raises CertificateError for a certificate the rules do not know or another holds."""
    certificates = [
        *(_certificate(c, HolderKind.PERSON, u.id, f"users[{i}]", rules)
          for i, u in enumerate(users) for c in u.certificates),
        *(_certificate(c, HolderKind.CONTRACTOR, k.id, f"contractors[{i}]", rules)
          for i, k in enumerate(contractors) for c in k.documents)]
    await _load_contractors(contractors, journal)
    await _load_profiles(users, journal)
    await register(certificates, SOURCE, journal.actor, journal.now, rules.reminder_days)


def _certificate(entry: CertificateEntry, kind: HolderKind, holder: str, where: str,
                 rules: QualificationRules) -> NewCertificate:
    known = rules.certificates.get(entry.type)
    if known is None or known.holder != kind.value:
        raise CertificateError(f"{where}: certificate type {show(entry.type)} is not a "
                               f"{kind.value}'s type in certificates.toml")
    expires_on, review_on = entry.expires_on, entry.review_on
    if entry.issued_on is not None:
        default_expiry, default_review = default_dates(known, entry.issued_on)
        expires_on = expires_on or default_expiry
        review_on = review_on or default_review
    assert expires_on is not None      # the roster's parser asks for one of the two dates
    return NewCertificate(kind, holder, known, entry.number, entry.issued_on, expires_on,
                          review_on)


async def _load_contractors(contractors: Sequence[ContractorEntry], journal: Journal
                            ) -> None:
    rows = {c.id: c for c in await Contractor.all()}
    for entry in contractors:
        wanted = {"name": entry.name, "responsible": entry.responsible, "phone": entry.phone,
                  "contract_end": entry.contract_end, "active": True}
        row = rows.get(entry.id)
        if row is None:
            await journal.create("contractor", Contractor, entry.id, wanted)
        else:
            await journal.update("contractor", row, entry.id, wanted)
    listed = {e.id for e in contractors}
    for row in rows.values():
        if row.id not in listed and row.active:
            await journal.deactivate("contractor", row, row.id, "not in the roster")


async def _load_profiles(users: Sequence[PersonFields], journal: Journal) -> None:
    """A profile for each person the file gives a post, a date or a contractor; a change of
    post is a record in the person's chain (the 第十七条 retraining rule reads it)."""
    rows = {p.person_id: p for p in await Profile.all()}
    changed: list[NewRecord] = []
    for entry in users:
        wanted: dict[str, Any] = {
            "post": entry.post, "hired_on": entry.hired_on, "post_since": entry.post_since,
            "contractor_id": entry.contractor}
        row = rows.get(entry.id)
        if row is None and not any(wanted.values()):
            continue
        if row is None:
            row = await Profile.create(person_id=entry.id, **wanted)
        elif all(getattr(row, k) == v for k, v in wanted.items()):
            continue
        else:
            row.update_from_dict(wanted)
            await row.save(update_fields=list(wanted))
        changed.append(NewRecord(entry.id, RecordKind.PROFILE, dict(wanted)))
    await append_many(changed, journal.actor, journal.now)


