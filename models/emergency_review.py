"""The review (评估) after an activation closes, drill or real, and the improvement actions
(改进措施) it decides.

The review is a task for the commander, due 48 hours after the close, and each action a task for
its owner with its own deadline. Both are tickets of their own kind (`TicketKind`), so they climb
the same ladder of reminders and escalations as a hazard, and an action is done with evidence and
复查 as a hazard is, with no second copy of any of it. What the commander said is kept on the
activation (`Activation.review`); the scheduler builds the 评估报告 from it
(scheduler/review_report.py).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from models.audit import history
from models.emergency import (
    ANSWERS,
    Activation,
    Plan,
    Responder,
    headline,
    plan_of,
    undeliverable,
)
from models.hazard import (
    Status,
    Ticket,
    TicketKind,
    complete_review,
    file_task,
)
from models.org import ROLE_LABELS, Area, User, user_names

# How the report's timeline names what happened to an activation.
EVENT_WORDS = {"alarm_raised": "一键报警", "alarm_confirmed": "值班长确认报警",
               "alarm_dismissed": "报警解除", "requested": "提出启动预案",
               "activated": "启动响应", "joined": "并入已启动的响应", "reported": "事故上报",
               "closed": "结束响应", "withdrawn": "撤回启动", "lapsed": "报警超时"}


def review_number(activation_id: int) -> str:
    """PG-0012: the review of 应急12."""
    return f"PG-{activation_id:04d}"


def action_number(activation_id: int, n: int) -> str:
    """GJ-0012-02: the second improvement action of 应急12's review."""
    return f"GJ-{activation_id:04d}-{n:02d}"


@dataclass(frozen=True)
class ActionPlan:
    """An improvement action as the commander gave it."""

    what: str
    owner: str                 # user id
    deadline: datetime


async def open_review(activation: Activation, plan: Plan, actor: str, now: datetime,
                      within: timedelta) -> Ticket:
    """At the close: the commander's review task, due `within` (48 h) from now."""
    owner = activation.commander or actor
    return await file_task(
        TicketKind.REVIEW, review_number(activation.id), reporter=actor, owner=owner,
        reviewer=owner, deadline=now + within,
        description=f"{headline(activation, plan)}的应急评估", now=now,
        area_id=activation.area_id, activation_id=activation.id, accepted=True)


async def reviews_waiting(owner_id: str) -> list[Ticket]:
    """The person's reviews still to hold, the nearest deadline first."""
    return list(await Ticket.filter(owner_id=owner_id, kind=TicketKind.REVIEW,
                                    status=Status.OPEN).order_by("deadline", "id"))


async def review_of(activation: Activation) -> Ticket | None:
    return await Ticket.get_or_none(kind=TicketKind.REVIEW, activation_id=activation.id)


async def activation_of(review: Ticket) -> Activation:
    return await Activation.get(id=review.activation_id)


async def keep_draft(review: Ticket, answers: dict[str, Any]) -> None:
    """The answers so far, kept on the activation: a review left half-way resumes there."""
    kept = {k: v for k, v in answers.items() if k in ("good", "problems", "listed")}
    await Activation.filter(id=review.activation_id, reviewed_at__isnull=True).update(
        review=kept)


async def record_review(review: Ticket, actor: User, good: str, problems: str,
                        actions: list[ActionPlan], now: datetime) -> list[Ticket]:
    """The review held: it closes, each action opens as a task for its owner (复查 by the one
    who held the review), and what was said is kept for the 评估报告."""
    await complete_review(review, actor, f"做得好：{good}；问题：{problems}；"
                                         f"改进措施{len(actions)}项", now)
    activation = await activation_of(review)
    filed = [await file_task(
        TicketKind.ACTION, action_number(activation.id, n), reporter=actor.id, owner=a.owner,
        reviewer=actor.id, deadline=a.deadline, description=a.what, now=now,
        area_id=activation.area_id, activation_id=activation.id)
        for n, a in enumerate(actions, 1)]
    await Activation.filter(id=activation.id).update(
        reviewed_at=now, review={"good": good, "problems": problems,
                                 "by": actor.id, "actions": [t.number for t in filed]})
    return filed


async def reviewed(number: str) -> Activation | None:
    """The activation whose review is `number` (PG-0012), once the review is held."""
    found = re.fullmatch(r"PG-(\d+)", number.strip())
    if found is None:
        return None
    return await Activation.get_or_none(id=int(found.group(1)), reviewed_at__isnull=False)


async def reviews_to_report(limit: int = 20) -> list[Activation]:
    """Activations reviewed whose 评估报告 is not sent yet."""
    return list(await Activation.filter(review_sent=False, reviewed_at__isnull=False
                                        ).order_by("id").limit(limit))


async def report_claimed(activation: Activation) -> bool:
    """The 评估报告 is this instance's to send, once: False when another claimed it."""
    return bool(await Activation.filter(id=activation.id, review_sent=False).update(
        review_sent=True))


# ---------------------------------------------------------------------------------------------
# What the 评估报告 (AQ/T 9009) is made of


@dataclass(frozen=True)
class Response:
    """One person called: when, what they answered, how long it took."""

    name: str
    roles: tuple[str, ...]          # as the report names them (应急指挥, 应急队员 …)
    deputy_for: str                 # the silent person's name they replaced, if any
    notified_at: datetime
    answer: str                     # 收到 / 无法到场 / "" (silent, or answered after the close)
    answered_at: datetime | None
    took: timedelta | None          # to 收到
    unreachable: bool


@dataclass(frozen=True)
class RoleTimes:
    role: str
    called: int
    acknowledged: int
    median: timedelta | None
    slowest: timedelta | None


@dataclass(frozen=True)
class ReviewFacts:
    activation: Activation
    plan: Plan
    area: str
    commander: str
    reviewer: str
    started: datetime
    ended: datetime
    timeline: list[tuple[datetime, str, str, str]]    # at, who, what, note
    responses: list[Response]
    roles: list[RoleTimes]
    good: str
    problems: str
    actions: list[tuple[Ticket, str]]                 # with the owner's name

    @property
    def silent(self) -> list[Response]:
        return [r for r in self.responses if not r.answer]


async def review_facts(activation: Activation) -> ReviewFacts:
    """Everything the 评估报告 shows, read once."""
    plan = await plan_of(activation)
    rows = await Responder.filter(activation_id=activation.id).order_by("notified_at", "id")
    review = activation.review or {}
    actions = list(await Ticket.filter(kind=TicketKind.ACTION, activation_id=activation.id
                                       ).order_by("number"))
    events = await history("activation", str(activation.id))
    people = {r.user_id for r in rows} | {r.deputy_for for r in rows if r.deputy_for}
    people |= {activation.commander, review.get("by", "")} | {e.actor for e in events}
    people |= {t.owner_id or "" for t in actions}
    users = {u.id: u for u in await User.filter(id__in=[p for p in people if p])}
    names = await user_names(users)
    lost = set(await undeliverable(activation))
    start = activation.activated_at or activation.created_at
    responses = []
    for r in rows:
        answered = r.answer if not r.late else ""
        user = users.get(r.user_id)
        responses.append(Response(
            name=names.get(r.user_id, r.user_id),
            roles=tuple(ROLE_LABELS[x] for x in (user.roles if user else []) if x in ROLE_LABELS),
            deputy_for=names.get(r.deputy_for, r.deputy_for), notified_at=r.notified_at,
            answer=answered, answered_at=r.answered_at if answered else None,
            took=(r.answered_at - start) if answered == ANSWERS["ok"] and r.answered_at
            else None,
            unreachable=r.user_id in lost))
    timeline = [(e.at, names.get(e.actor, e.actor) or "系统", EVENT_WORDS[e.action], e.note)
                for e in events if e.action in EVENT_WORDS]
    timeline += [(r.answered_at, r.name, f"回复“{r.answer}”", "") for r in responses
                 if r.answered_at is not None]
    area = await Area.get_or_none(code=activation.area_id or "")
    return ReviewFacts(
        activation=activation, plan=plan, area=area.name if area else "全厂",
        commander=names.get(activation.commander, activation.commander),
        reviewer=names.get(review.get("by", ""), ""), started=start,
        ended=activation.closed_at or start,
        timeline=sorted(timeline, key=lambda entry: entry[0]), responses=responses,
        roles=_by_role(responses), good=review.get("good", ""),
        problems=review.get("problems", ""),
        actions=[(t, names.get(t.owner_id or "", "")) for t in actions])


def _by_role(responses: list[Response]) -> list[RoleTimes]:
    """Response times per role; a person with two roles counts in both."""
    grouped: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        for role in r.roles or ("未设角色",):
            grouped[role].append(r)
    out = []
    for role, people in sorted(grouped.items()):
        times = [r.took for r in people if r.took is not None]
        median = timedelta(seconds=statistics.median(t.total_seconds() for t in times)
                           ) if times else None
        out.append(RoleTimes(role, len(people), len(times), median, max(times, default=None)))
    return out
