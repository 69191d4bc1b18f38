"""Course packs (培训包): what each person is to take because of their post and their dates —
the post's required courses for the year, a new hire's pre-job pack, and the 车间级 and 班组级
courses again for someone who took a new post or came back after a year away (生产经营单位安全
培训规定 第十七条: the roster's `post_since` is the day they took, or came back to, the post).
Packs are given to the people whose post, dates or courses changed since their last pack."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from models.org import User
from models.people.profiles import Profile
from models.training.courses import CourseSpec
from models.training.enrolments import (
    NewEnrolment,
    Reason,
    chains_of,
    enrol,
    pack_signatures,
    set_pack_signatures,
)
from models.training.records import TrainingRecord
from models.training.rules import TrainingRules

BATCH = 500                 # people given their packs at a time
# A year's pack is due at the year's end, and given late in the year (a new post, the module
# switched on in December) at least this long after.
YEARLY_LEAD = timedelta(days=30)
RETRAIN_STAGES = ("车间级", "班组级")


@dataclass(frozen=True)
class Person:
    id: str
    post: str
    hired_on: date | None
    post_since: date | None


@dataclass(frozen=True)
class Given:
    """The courses a person was given today and must hear of (a pre-job or new-post pack; a
    year's pack is quiet: `我的培训` shows it and the reminders come before its deadline)."""

    person_id: str
    reason: Reason
    titles: tuple[str, ...]
    due_on: date


def wants(person: Person, courses: Sequence[CourseSpec], rules: TrainingRules, today: date,
          passed: set[str]) -> list[NewEnrolment]:
    """The enrolments `person` should have today (`passed`: the titles they passed since the
    day that matters)."""
    mine = [c for c in courses if c.for_post(person.post) and not c.catchup_only]
    year_end = max(date(today.year, 12, 31), today + YEARLY_LEAD)
    found = [NewEnrolment(person.id, c.code, Reason.YEARLY, f"year:{person.id}:{c.code}:"
                          f"{today.year}", year_end)
             for c in mine if c.required and not c.prejob and not c.stage]
    hired = person.hired_on
    if hired is not None and hired <= today < hired + timedelta(days=365):
        due = max(hired, today) + timedelta(days=rules.prejob_days)
        found += [NewEnrolment(person.id, c.code, Reason.PREJOB, f"prejob:{person.id}:{c.code}",
                               due) for c in mine if c.prejob and c.title not in passed]
    since = person.post_since
    if (since is not None and hired is not None and since > hired
            and since <= today < since + timedelta(days=365)):
        due = max(since, today) + timedelta(days=rules.retrain_days)
        found += [NewEnrolment(person.id, c.code, Reason.POST, f"post:{person.id}:{c.code}:"
                               f"{since}", due)
                  for c in mine if c.stage in RETRAIN_STAGES and c.title not in passed]
    return found


def signature(person: Person, courses: Sequence[CourseSpec], year: int) -> str:
    """What the person's packs depend on; the same signature, the same packs."""
    codes = ",".join(f"{c.code}{int(c.required)}{int(c.prejob)}{c.stage}"
                     for c in courses if c.for_post(person.post))
    key = f"{year}|{person.post}|{person.hired_on}|{person.post_since}|{codes}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


async def give_packs(courses: Sequence[CourseSpec], rules: TrainingRules, today: date,
                     now: datetime) -> list[Given]:
    """Every active person whose packs' signature changed gets the enrolments they lack;
    what was given that they must hear of."""
    profiles = {p: (post, hired, since) for p, post, hired, since in await Profile.all(
        ).values_list("person_id", "post", "hired_on", "post_since")}
    people = [Person(str(u), *profiles.get(u, ("", None, None)))
              for u in await User.filter(active=True).order_by("id").values_list("id", flat=True)]
    known = await pack_signatures()
    changed = [(p, s) for p in people
               if known.get(p.id) != (s := signature(p, courses, today.year))]
    titles = {c.code: c.title for c in courses}
    told: list[Given] = []
    for start in range(0, len(changed), BATCH):
        batch = changed[start:start + BATCH]
        passed = await _passed_since(batch)
        chains = await chains_of([p.id for p, _ in batch])
        new = [NewEnrolment(n.person_id, n.course, n.reason, n.key, n.due_on,
                            chains[n.person_id])
               for p, _ in batch
               for n in wants(p, courses, rules, today, passed.get(p.id, set()))]
        ids = set(await enrol(new, now, rules.remind_days, rules.escalate_days))
        for person, _ in batch:
            for reason in (Reason.PREJOB, Reason.POST):
                mine = [n for n in new if n.person_id == person.id and n.reason is reason
                        and n.key in ids]
                if mine:
                    told.append(Given(person.id, reason, tuple(titles[n.course] for n in mine),
                                      max(n.due_on for n in mine if n.due_on)))
        await set_pack_signatures({p.id: s for p, s in batch})
    return told


async def _passed_since(batch: Sequence[tuple[Person, str]]) -> dict[str, set[str]]:
    """The titles each person passed since they were hired or took their post."""
    found: dict[str, set[str]] = {}
    rows = await TrainingRecord.filter(person_id__in=[p.id for p, _ in batch], passed=True
                                       ).values_list("person_id", "course", "on")
    since = {p.id: max(d for d in (p.hired_on, p.post_since, date.min) if d)
             for p, _ in batch}
    for person, course, on in rows:
        if on >= since[person]:
            found.setdefault(person, set()).add(course)
    return found
