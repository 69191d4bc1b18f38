"""The qualification module's numbers for the safety managers' reports: who is not qualified
for their post's work today (the daily digest), and the month's checks, certificates and
contractor decisions (the monthly report)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from models.org import User
from models.people.certificates import IDS_PER_QUERY
from models.people.checks import QualificationCheck, judge
from models.people.profiles import Profile
from models.people.records import PersonRecord, RecordKind
from models.people.rules import QualificationRules, WorkType

TOP_REASONS = 3
CREW = 1000             # people judged at a time: bounded queries and memory on a large plant


@dataclass(frozen=True)
class Unqualified:
    person_id: str
    name: str
    post: str
    reason: str             # the first reason why not


async def unqualified_for_posts(rules: QualificationRules, today: date) -> list[Unqualified]:
    """Active people not qualified today for all their post's work types, by id. One `judge`
    per post (and CREW people) against what its work types need together: the same people
    fail as work type by work type, each loaded once."""
    needs = {name: _all_of(name, [rules.work_types[w] for w in post.work_types])
             for name, post in rules.posts.items() if post.work_types}
    if not needs:
        return []
    post_of = dict(await Profile.filter(post__in=list(needs)).values_list("person_id", "post"))
    ids = sorted(post_of)
    staff: dict[str, list[User]] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        for person in await User.filter(id__in=ids[start:start + IDS_PER_QUERY], active=True
                                        ).order_by("id"):
            staff.setdefault(post_of[person.id], []).append(person)
    found = []
    for post, people in staff.items():
        for start in range(0, len(people), CREW):
            found += [Unqualified(v.person_id, v.name, post, v.reasons[0]) for v in await judge(
                people[start:start + CREW], needs[post], rules, today) if not v.ok]
    return sorted(found, key=lambda u: u.person_id)


def _all_of(post: str, works: Sequence[WorkType]) -> WorkType:
    """A post's work types as one: every certificate and training any of them needs."""
    return WorkType(post, certificates=tuple(dict.fromkeys(
        r for w in works for r in w.certificates)), trainings=tuple(dict.fromkeys(
        t for w in works for t in w.trainings)))


@dataclass(frozen=True)
class QualificationMonth:
    checks: int                 # pre-work checks asked
    named: int                  # people named in them (人次)
    refused: int                # of whom refused (人次)
    refused_people: int         # different people refused
    reasons: tuple[tuple[str, int], ...]    # the refusals' commonest reasons, most first
    registered: int             # certificates and documents first registered
    renewed: int
    reviewed: int
    lapsed: int
    admitted: int               # contractor workers
    not_admitted: int
    blacklisted_people: int
    blacklisted_companies: int

    @property
    def empty(self) -> bool:
        return not (self.checks or self.registered or self.renewed or self.reviewed
                    or self.lapsed or self.admitted or self.not_admitted
                    or self.blacklisted_people or self.blacklisted_companies)


async def month_figures(start: datetime, end: datetime) -> QualificationMonth:
    """The month [start, end): the checks from their own table, everything else from the
    people's records (each certificate change, lapse, admission and listing is one)."""
    named = refused = 0
    refused_people: set[str] = set()
    reasons: Counter[str] = Counter()
    checks = await QualificationCheck.filter(at__gte=start, at__lt=end).values_list(
        "verdicts", flat=True)
    for verdicts in checks:
        for v in verdicts:
            named += 1
            if v["reasons"]:
                refused += 1
                refused_people.add(v["person_id"])
                for kind in dict.fromkeys(reason_kind(r) for r in v["reasons"]):
                    reasons[kind] += 1
    events: Counter[tuple[str, str, str]] = Counter()      # (kind, event, person|company)
    for kind, holder, data in await PersonRecord.filter(
            at__gte=start, at__lt=end, kind__in=(RecordKind.CERTIFICATE, RecordKind.LAPSED,
                                                 RecordKind.ADMISSION, RecordKind.BLACKLIST)
            ).values_list("kind", "holder", "data"):
        who = "company" if holder.startswith("contractor:") else "person"
        events[(str(kind), str(data.get("event", "")), who)] += 1

    def counted(kind: RecordKind, event: str = "", *who: str) -> int:
        return sum(events[(kind.value, event, w)] for w in who or ("person", "company"))

    return QualificationMonth(
        checks=len(checks), named=named, refused=refused, refused_people=len(refused_people),
        reasons=tuple(reasons.most_common(TOP_REASONS)),
        registered=counted(RecordKind.CERTIFICATE, "registered"),
        renewed=counted(RecordKind.CERTIFICATE, "renewed"),
        reviewed=counted(RecordKind.CERTIFICATE, "reviewed"), lapsed=counted(RecordKind.LAPSED),
        admitted=counted(RecordKind.ADMISSION, "admitted"),
        not_admitted=counted(RecordKind.ADMISSION, "refused"),
        blacklisted_people=counted(RecordKind.BLACKLIST, "listed", "person"),
        blacklisted_companies=counted(RecordKind.BLACKLIST, "listed", "company"))


# The details `judge` writes into a reason (dates, hours, a manager's words), left out so that
# the same reason counts as one: "低压电工作业证已于2026-11-30到期" is "低压电工作业证已到期".
_DETAILS = ((re.compile(r"（[^）]*）"), ""), (re.compile(r"已于\d{4}-\d{2}-\d{2}"), "已"),
            (re.compile(r"[\d.]+学时，不足[\d.]+学时"), "学时不足"))


def reason_kind(reason: str) -> str:
    for pattern, repl in _DETAILS:
        reason = pattern.sub(repl, reason)
    return reason
