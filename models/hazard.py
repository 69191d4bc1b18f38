"""Hazard tickets (隐患) and the rules that move them.

Every transition checks who may do it and from which state, bumps `version` with a
compare-and-set update (so two workers or a stale card cannot both win, on SQLite too), and writes
an audit event. A refusal is also recorded. Handlers turn the results into messages; nothing here
knows a platform.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import connections, fields
from tortoise.expressions import F, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from models import side
from models.audit import record
from models.calendar import WorkCalendar
from models.catalog import Category, DefectType, Grade
from models.escalation import void_alarms
from models.org import Area, Role, User, every_area, supervisor_chain
from models.similarity import ALIKE, likeness


class Status(StrEnum):
    DRAFT = "draft"            # the report dialog is in progress
    PLAN = "plan"              # 重大: waiting for its 治理方案
    OPEN = "open"              # assigned, deadline running
    SUBMITTED = "submitted"    # evidence in, awaiting review
    CLOSED = "closed"
    CANCELLED = "cancelled"
    LINKED = "linked"          # a draft that turned out to repeat an open ticket


class TicketKind(StrEnum):
    """What a ticket tracks. Every kind has an owner, a deadline and the same ladder of
    reminders and escalations; only hazards are counted as hazards (digest, risk status,
    monthly report)."""

    HAZARD = "hazard"        # 隐患: reported, rectified, reviewed
    ACTION = "action"        # 改进措施 from an emergency review: done with evidence, reviewed
    REVIEW = "review"        # 应急评估: the commander's review, due 48 h after the close

    @property
    def noun(self) -> str:
        return {"hazard": "隐患", "action": "改进措施", "review": "应急评估"}[self.value]


LABELS = {Status.DRAFT: "草稿", Status.PLAN: "待制定治理方案", Status.OPEN: "整改中",
          Status.SUBMITTED: "待复查", Status.CLOSED: "已闭环", Status.CANCELLED: "已取消",
          Status.LINKED: "已合并"}
ACTIVE = (Status.PLAN, Status.OPEN, Status.SUBMITTED)

# How a ticket's record names what happened, for the chat and the dashboard.
ACTION_WORDS = {
    "filed": "登记", "linked": "合并为重复上报", "reported_again": "再次被上报",
    "plan_approved": "治理方案确定", "accepted": "接收", "transferred": "转派",
    "extension_requested": "申请延期", "extension_approved": "同意延期",
    "extension_refused": "不同意延期", "submitted": "提交整改", "reviewed": "复查通过",
    "closed": "复查通过，闭环", "rejected": "驳回", "cancelled": "取消", "refused": "操作被拒绝",
    "recurred": "标记为复发", "recurrence_cause": "说明复发原因",
    "patrol_found": "巡检发现", "patrol_found_again": "巡检再次发现",
    "reviewed_response": "完成应急评估",
}

# The six required parts of a 治理方案 (安全生产事故隐患排查治理暂行规定 第十五条).
PLAN_FIELDS = (("goal", "治理的目标和任务"), ("method", "采取的方法和措施"),
               ("funds", "经费和物资的落实"), ("people", "负责治理的机构和人员"),
               ("deadline", "治理的时限和要求"), ("safety", "安全措施和应急预案"))


class Ticket(Model):
    id = fields.BigIntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True, null=True)  # given on 提交
    status = fields.CharEnumField(Status, max_length=10, default=Status.DRAFT)
    version = fields.IntField(default=0)
    reporter: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="reported", on_delete=fields.RESTRICT)
    area: fields.ForeignKeyNullableRelation[Area] = fields.ForeignKeyField(
        "models.Area", related_name="tickets", null=True, on_delete=fields.RESTRICT)
    category = fields.CharField(max_length=16, default="")
    description = fields.TextField(default="")
    location: dict[str, Any] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    photos: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    grade = fields.CharEnumField(Grade, max_length=2, default=Grade.GENERAL)
    grade_reason = fields.TextField(default="")
    defect_type = fields.CharEnumField(DefectType, max_length=4, default=DefectType.THING)
    defect_reason = fields.TextField(default="")
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="owned", null=True, on_delete=fields.RESTRICT)
    reviewer: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="reviewing", null=True, on_delete=fields.RESTRICT)
    deadline = fields.DatetimeField(null=True)
    checklist: dict[str, str] = fields.JSONField(default=dict)  # type: ignore[assignment]
    plan: dict[str, str] = fields.JSONField(default=dict)  # type: ignore[assignment]
    extension: dict[str, Any] = fields.JSONField(default=dict)  # type: ignore[assignment]
    evidence: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    evidence_note = fields.TextField(default="")
    reporter_id: str                 # the foreign keys' columns, for the type checker
    area_id: str | None
    owner_id: str | None
    reviewer_id: str | None
    first_approval = fields.CharField(max_length=64, default="")  # 重大: the reviewer's 通过
    reports = fields.IntField(default=1)       # times reported, the repeats included
    duplicate_of: fields.ForeignKeyNullableRelation[Ticket] = fields.ForeignKeyField(
        "models.Ticket", related_name="repeats", null=True, on_delete=fields.SET_NULL)
    accepted_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    opened_at = fields.DatetimeField(null=True)
    submitted_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    # The escalation ladder (models/escalation.py): the owner's supervisors, frozen when the
    # ticket opens or changes hands; whether the ladder's rows match the deadline and owner.
    # The level reached is read from the ladder's sent rows, not kept here as well.
    chain: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    armed = fields.BooleanField(default=False)
    # 复发: the numbers of the earlier, closed tickets this one is like (models/similarity.py);
    # null (not []) so that the column is added to a plant's existing tickets as it is.
    recurs: list[str] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    # The reviewer's word on why it came back, asked before 通过: 管理缺陷 or 非管理缺陷.
    recurrence_cause = fields.CharField(max_length=8, null=True)
    kind = fields.CharEnumField(TicketKind, max_length=8, default=TicketKind.HAZARD,
                                db_default=TicketKind.HAZARD.value)
    activation_id = fields.BigIntField(null=True)    # the response a review or action is of

    class Meta:
        table = "ticket"
        indexes = (("status", "area_id", "category"), ("owner_id", "status"),
                   ("reviewer_id", "status"), ("reporter_id", "status"), ("status", "armed"),
                   ("created_at",), ("closed_at",), ("grade", "closed_at"))

    @property
    def label(self) -> str:
        return self.number or f"草稿{self.id}"

    @property
    def needs_principal(self) -> bool:
        return self.grade is Grade.MAJOR


def hazards() -> QuerySet[Ticket]:
    """Tickets that are hazards: what the digest, the risk status, 统计 and the monthly report
    count (an emergency review and its improvement actions are tickets too)."""
    return Ticket.filter(kind=TicketKind.HAZARD)


class TicketCounter(Model):
    """The last number given on a day, so numbers are dense and never repeat."""

    day = fields.CharField(max_length=8, primary_key=True)
    issued = fields.IntField(default=0)

    class Meta:
        table = "ticket_counter"


class TicketNumber(Model):
    """The number drawn for a draft's 提交, kept so that a 提交 tried again takes the same one.

    Numbers are drawn in a transaction of their own (see `draw_number`), which commits even
    when the 提交 that asked fails; without this row its retry would draw the next number and
    leave a gap. No foreign key: the draft may be locked by the 提交 waiting for the draw."""

    ticket_id = fields.BigIntField(primary_key=True, generated=False)
    number = fields.CharField(max_length=32, unique=True)

    class Meta:
        table = "ticket_number"


class CardPurpose(StrEnum):
    SUMMARY = "sum"      # the reporter's 提交 / 修改 / 取消
    ASSIGN = "own"       # the owner's 接收 / 转派 / 申请延期
    EXTENSION = "ext"    # the reviewer's answer to a 申请延期
    REVIEW = "rev"       # 通过 / 驳回
    PLAN = "plan"        # the principal is asked for the 治理方案


class TicketCard(Model):
    """A card sent about a ticket. Its random task id is the opaque, server-side part of every
    button key, so a forged or replayed key finds nothing or a decided card."""

    task_id = fields.CharField(max_length=64, primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "models.Ticket", related_name="cards", on_delete=fields.CASCADE)
    purpose = fields.CharField(max_length=8)
    version = fields.IntField()                # the ticket's version it was sent for
    recipients: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    decided_by = fields.CharField(max_length=64, null=True)
    decision = fields.CharField(max_length=16, default="")
    decided_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    ticket_id: int

    class Meta:
        table = "ticket_card"


async def new_card(ticket: Ticket, purpose: CardPurpose, recipients: list[str],
                   now: datetime) -> TicketCard:
    task_id = f"{purpose.value}-{ticket.id}-{secrets.token_hex(8)}"
    return await TicketCard.create(task_id=task_id, ticket=ticket, purpose=purpose.value,
                                   version=ticket.version, recipients=recipients,
                                   created_at=now)


async def clicked_card(task_id: str, purpose: CardPurpose) -> TicketCard | None:
    """The card a button key names, with its ticket read in the same query; None for a key
    nobody issued (forged, replayed from another purpose, or from another system)."""
    return await TicketCard.filter(task_id=task_id, purpose=purpose.value) \
        .select_related("ticket").first()


async def card_as_stored(task_id: str) -> TicketCard:
    """The card as it is now: after a lost `decide_card`, who decided first."""
    return await TicketCard.get(task_id=task_id)


async def decide_card(card: TicketCard, actor: str, decision: str, now: datetime) -> bool:
    """Mark a card decided; False when someone decided first (the click came too late)."""
    won = await TicketCard.filter(task_id=card.task_id, decided_by__isnull=True).update(
        decided_by=actor, decision=decision, decided_at=now)
    return bool(won)


# ---------------------------------------------------------------------------------------------
# Transitions


class Refused(Exception):
    """The actor may not do this; `reason` is shown to them."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stale(Exception):
    """The ticket moved on since the card or question was made: nothing is changed."""


@dataclass(frozen=True)
class Assignment:
    owner: User
    reviewer: User


async def refuse(ticket: Ticket, actor: User, action: str, reason: str, now: datetime) -> None:
    """Record a refused action, then raise it for the handler to answer."""
    await _audit(ticket, actor.id, "refused", now, note=f"{action}: {reason}")
    raise Refused(reason)


async def _audit(ticket: Ticket, actor: str, action: str, now: datetime, *,
                 to_state: str = "", note: str = "", **data: Any) -> None:
    await record(at=now, actor=actor, action=action, subject_type="ticket",
                 subject_id=str(ticket.id), from_state=ticket.status.value,
                 to_state=to_state or ticket.status.value, note=note, data=data)


async def _move(ticket: Ticket, actor: str, action: str, now: datetime, *,
                status: Status | None = None, note: str = "", **changes: Any) -> None:
    """Apply a transition if nobody changed the ticket meanwhile; audit it. The won update is
    applied to `ticket` too, so the caller goes on with the ticket as stored."""
    new_status = status or ticket.status
    applied = {"status": new_status, "updated_at": now, **changes,
               **await _ladder_changes(ticket, new_status, changes)}
    won = await Ticket.filter(id=ticket.id, version=ticket.version).update(
        version=F("version") + 1, **applied)
    if not won:
        raise Stale(ticket.label)
    if ticket.status is Status.OPEN and new_status is not Status.OPEN:
        # Submitted for review, closed or cancelled: the owner's ladder stops. A 驳回 reopens
        # the ticket and the scheduler writes the ladder again.
        await void_alarms(ticket.id)
    await _audit(ticket, actor, action, now, to_state=new_status.value, note=note,
                 changes={k: _plain(v) for k, v in changes.items()})
    ticket.update_from_dict({**applied, "version": ticket.version + 1})


async def _ladder_changes(ticket: Ticket, new_status: Status, changes: dict[str, Any]
                          ) -> dict[str, Any]:
    """An opening, a new deadline or a new owner asks the scheduler to rewrite the ladder; the
    supervisor chain is frozen when the ticket opens and when it changes hands."""
    if new_status is not Status.OPEN:
        return {}
    reopened = ticket.status is not Status.OPEN
    if not reopened and not {"deadline", "owner_id"} & changes.keys():
        return {}
    out: dict[str, Any] = {"armed": False}
    owner = changes.get("owner_id", ticket.owner_id)
    if owner and ("owner_id" in changes or not ticket.chain):
        out["chain"] = await supervisor_chain(owner)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Model):
        return value.pk
    return value


def is_manager(user: User) -> bool:
    return user.has_role(Role.SAFETY_MANAGER) or user.has_role(Role.PRINCIPAL)


async def principals() -> list[User]:
    return [u for u in await User.filter(active=True).order_by("id") if u.has_role(Role.PRINCIPAL)]


async def draw_number(ticket_id: int, day: str) -> str:
    """The ticket's number: the one drawn for it before, or the day's next.

    Drawn on the side connection (`models.SIDE`): the day's counter row is then locked for one
    short statement, not for a whole 提交, whose cards and messages come after the draw (under
    a burst of 200 提交 they queued for each other, 200 ms a draw)."""
    conn = connections.get(side())
    prefix = f"HZ-{day}-"
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict(_DRAW, [ticket_id, day, prefix, NUMBER_DIGITS])
        return str(rows[0]["number"])
    async with in_transaction(side()) as conn:
        drawn = await TicketNumber.filter(ticket_id=ticket_id).using_db(conn).first()
        if drawn is not None:
            return drawn.number
        rows = await conn.execute_query_dict(
            "INSERT INTO ticket_counter (day, issued) VALUES (?, 1) ON CONFLICT (day) "
            "DO UPDATE SET issued = ticket_counter.issued + 1 RETURNING issued", [day])
        number = f"{prefix}{rows[0]['issued']:0{NUMBER_DIGITS}d}"
        await TicketNumber.create(ticket_id=ticket_id, number=number, using_db=conn)
    return number


NUMBER_DIGITS = 4   # HZ-20261129-0007; the 10,000th of a day is HZ-20261129-10000
# PostgreSQL: the kept number, or the day's next drawn and kept, in one statement (one round
# trip instead of five, and the counter row locked for no longer than the statement).
_DRAW = """
    WITH kept AS (SELECT number FROM ticket_number WHERE ticket_id = $1),
    drawn AS (
        INSERT INTO ticket_counter AS c (day, issued)
        SELECT $2, 1 WHERE NOT EXISTS (SELECT 1 FROM kept)
        ON CONFLICT (day) DO UPDATE SET issued = c.issued + 1
        RETURNING issued),
    made AS (
        INSERT INTO ticket_number (ticket_id, number)
        SELECT $1, $3 || lpad(issued::text, greatest($4, length(issued::text)), '0')
        FROM drawn
        RETURNING number)
    SELECT number FROM kept UNION ALL SELECT number FROM made"""


async def find_repeat(ticket: Ticket, since: datetime) -> Ticket | None:
    """An active ticket of the same area and category reported since `since`."""
    return await hazards().filter(
        status__in=ACTIVE, area_id=ticket.area_id, category=ticket.category,
        created_at__gte=since,
    ).exclude(id=ticket.id).order_by("id").first()


async def earlier_alike(ticket: Ticket, since: datetime, shown: int = 3) -> list[Ticket]:
    """Closed tickets of the same area and category, closed since `since`, whose description is
    like this one's: the hazard came back. The most alike first."""
    closed = await hazards().filter(status=Status.CLOSED, area_id=ticket.area_id,
                                 category=ticket.category, closed_at__gte=since
                                 ).exclude(id=ticket.id)
    scored = [(likeness(ticket.description, t.description), t) for t in closed]
    return [t for score, t in sorted(scored, key=lambda st: (-st[0], -st[1].id))
            if score >= ALIKE][:shown]


async def recurrences_since(ticket: Ticket, since: datetime) -> list[Ticket]:
    """The 复发 tickets of this one's area and category filed since `since`, oldest first."""
    return await hazards().filter(area_id=ticket.area_id, category=ticket.category,
                                  recurs__isnull=False, created_at__gte=since
                                  ).exclude(status=Status.CANCELLED).order_by("created_at", "id")


async def mark_recurrence(ticket: Ticket, earlier: list[Ticket], now: datetime) -> None:
    """A transition like any other (versioned, audited), by the system: no actor."""
    numbers = [t.number or t.label for t in earlier]
    await _move(ticket, "", "recurred", now, note="、".join(numbers), recurs=numbers)


async def link_repeat(draft: Ticket, original: Ticket, now: datetime) -> None:
    await _move(draft, draft.reporter_id, "linked", now, status=Status.LINKED,
                duplicate_of_id=original.id, note=original.label)
    await Ticket.filter(id=original.id).update(reports=F("reports") + 1, updated_at=now)
    await _audit(original, draft.reporter_id, "reported_again", now,
                 note=f"重复上报（草稿{draft.id}）", photos=draft.photos)
    await original.refresh_from_db()


async def assignment(ticket: Ticket, category: Category) -> Assignment:
    """Owner and reviewer from the category when it names them, else from the area."""
    area = await Area.get(code=ticket.area_id)
    owner_id = category.owner or area.owner_id
    reviewer_id = category.reviewer or area.reviewer_id
    named = {u.id: u for u in await User.filter(
        id__in=[i for i in (owner_id, reviewer_id) if i], active=True)}
    owner, reviewer = named.get(owner_id or ""), named.get(reviewer_id or "")
    if owner is None or reviewer is None:
        raise Refused(f"{area.name}尚未指定整改责任人或复查人，请联系安全管理员。")
    if ticket.grade is Grade.MAJOR and not await principals():
        raise Refused("名册中没有主要负责人，重大隐患无法制定治理方案，请联系安全管理员。")
    return Assignment(owner, reviewer)


async def file_ticket(draft: Ticket, now: datetime, day: str, who: Assignment,
                      category: Category, calendar: WorkCalendar) -> None:
    """Give the draft its number and owner: a 一般 ticket opens at once, due at the end of the
    working day `deadline_days` working days on; a 重大 one waits for its 治理方案."""
    changes: dict[str, Any] = {
        "number": await draw_number(draft.id, day), "owner_id": who.owner.id,
        "reviewer_id": who.reviewer.id,
        "checklist": {"责任": who.owner.name},
    }
    if draft.grade is Grade.MAJOR:
        await _move(draft, draft.reporter_id, "filed", now, status=Status.PLAN, **changes)
        return
    deadline = calendar.deadline_after(now, category.deadline_days)
    changes["checklist"]["时限"] = deadline.isoformat()
    await _move(draft, draft.reporter_id, "filed", now, status=Status.OPEN, deadline=deadline,
                opened_at=now, **changes)


async def file_task(kind: TicketKind, number: str, *, reporter: str, owner: str,
                    reviewer: str, deadline: datetime, description: str, now: datetime,
                    area_id: str | None, activation_id: int, accepted: bool = False) -> Ticket:
    """An emergency review or one of its improvement actions, open at once with its owner and
    deadline: the scheduler writes its ladder as it does a hazard's."""
    task = await Ticket.create(kind=kind, reporter_id=reporter, area_id=area_id,
                               description=description, activation_id=activation_id,
                               created_at=now, updated_at=now)
    await _move(task, reporter, "filed", now, status=Status.OPEN, number=number,
                owner_id=owner, reviewer_id=reviewer, deadline=deadline, opened_at=now,
                accepted_at=now if accepted else None)
    return task


async def check_review_holder(review: Ticket, actor: User, now: datetime) -> None:
    """A review is held by its commander or a safety manager; anyone else is refused, on
    record. Asked when the review starts and again when it is completed."""
    if actor.id != review.owner_id and not is_manager(actor):
        await refuse(review, actor, "应急评估", f"{review.label} 由应急指挥或安全管理员完成。",
                     now)
    if review.kind is not TicketKind.REVIEW or review.status is not Status.OPEN:
        raise Stale(review.label)


async def complete_review(review: Ticket, actor: User, note: str, now: datetime) -> None:
    """The commander held the review: the task closes, and its ladder with it."""
    await check_review_holder(review, actor, now)
    await _move(review, actor.id, "reviewed_response", now, status=Status.CLOSED,
                closed_at=now, submitted_at=now, evidence_note=note, note=note)


async def check_planner(ticket: Ticket, actor: User, now: datetime) -> None:
    if not actor.has_role(Role.PRINCIPAL):
        await refuse(ticket, actor, "治理方案", "治理方案由主要负责人组织制定。", now)
    if ticket.status is not Status.PLAN:
        raise Stale(ticket.label)


async def set_plan(ticket: Ticket, actor: User, plan: dict[str, str], deadline: datetime,
                   now: datetime) -> None:
    await check_planner(ticket, actor, now)
    checklist = {**ticket.checklist, "措施": plan["method"], "资金": plan["funds"],
                 "时限": deadline.isoformat(), "预案": plan["safety"]}
    await _move(ticket, actor.id, "plan_approved", now, status=Status.OPEN, plan=plan,
                deadline=deadline, opened_at=now, checklist=checklist)


async def check_reader(ticket: Ticket, actor: User, now: datetime) -> None:
    """A ticket's details are for its reporter, owner and reviewer, the people up their
    supervisor chains (and up the chain its escalations climb), safety managers and
    principals; anyone else is refused, on record."""
    if is_manager(actor):
        return
    parties = {p for p in (ticket.reporter_id, ticket.owner_id, ticket.reviewer_id) if p}
    if actor.id in parties or actor.id in ticket.chain:
        return
    for party in parties:
        if actor.id in await supervisor_chain(party):
            return
    await refuse(ticket, actor, "查看详情",
                 f"您无权查看 {ticket.label} 的详情：仅对上报人、整改责任人、复查人及其上级和"
                 "安全管理员开放。发送“我的隐患”可查看与您有关的隐患。", now)


async def check_owner(ticket: Ticket, actor: User, action: str, now: datetime) -> None:
    """Only the ticket's owner acts on it; anyone else is refused, on record."""
    if actor.id != ticket.owner_id:
        await refuse(ticket, actor, action, f"只有整改责任人可以{action}。", now)


async def check_transferer(ticket: Ticket, actor: User, now: datetime) -> None:
    if actor.id != ticket.owner_id and not is_manager(actor):
        await refuse(ticket, actor, "转派", "只有整改责任人、安全管理员或主要负责人可以转派。",
                     now)


async def accept(ticket: Ticket, actor: User, now: datetime) -> None:
    await check_owner(ticket, actor, "接收", now)
    if ticket.status is not Status.OPEN or ticket.accepted_at is not None:
        raise Stale(ticket.label)
    await _move(ticket, actor.id, "accepted", now, accepted_at=now)


async def transfer(ticket: Ticket, actor: User, to: User, now: datetime) -> None:
    await check_transferer(ticket, actor, now)
    if ticket.status is not Status.OPEN:
        raise Stale(ticket.label)
    if to.id == ticket.owner_id:
        raise Refused(f"{to.name}已经是整改责任人。")
    checklist = {**ticket.checklist, "责任": to.name}
    await _move(ticket, actor.id, "transferred", now, owner_id=to.id, accepted_at=None,
                checklist=checklist, note=f"转派给{to.name}")


async def request_extension(ticket: Ticket, actor: User, reason: str, until: datetime,
                            now: datetime) -> None:
    await check_owner(ticket, actor, "申请延期", now)
    if ticket.status is not Status.OPEN:
        raise Stale(ticket.label)
    if ticket.deadline and until <= ticket.deadline:
        raise Refused("新的期限需要晚于当前期限。")
    await _move(ticket, actor.id, "extension_requested", now, note=reason,
                extension={"reason": reason, "until": until.isoformat(), "by": actor.id})


async def decide_extension(ticket: Ticket, actor: User, approve: bool, now: datetime) -> None:
    if actor.id != ticket.reviewer_id and not actor.has_role(Role.PRINCIPAL):
        await refuse(ticket, actor, "延期审批", "只有复查人或主要负责人可以审批延期。", now)
    if not ticket.extension:
        raise Stale(ticket.label)
    until = datetime.fromisoformat(ticket.extension["until"])
    if approve:
        checklist = {**ticket.checklist, "时限": until.isoformat()}
        await _move(ticket, actor.id, "extension_approved", now, deadline=until, extension={},
                    checklist=checklist)
    else:
        await _move(ticket, actor.id, "extension_refused", now, extension={})


async def submit_evidence(ticket: Ticket, actor: User, photos: list[str], note: str,
                          now: datetime) -> None:
    await check_owner(ticket, actor, "提交整改", now)
    if ticket.status is not Status.OPEN:
        raise Stale(ticket.label)
    checklist = {**ticket.checklist, **({"措施": note} if note else {})}
    await _move(ticket, actor.id, "submitted", now, status=Status.SUBMITTED, evidence=photos,
                evidence_note=note, submitted_at=now, first_approval="", checklist=checklist,
                note=note)


async def check_reviewer(ticket: Ticket, actor: User, action: str, now: datetime) -> None:
    """The reviewer decides first; a 重大 ticket then needs a principal (主要负责人) too."""
    allowed = actor.has_role(Role.PRINCIPAL) or (
        not ticket.first_approval and actor.id == ticket.reviewer_id)
    if not allowed:
        await refuse(ticket, actor, action, "您不是该隐患的复查人。", now)
    if ticket.status is not Status.SUBMITTED:
        raise Stale(ticket.label)


MANAGEMENT_CAUSE, OTHER_CAUSE = "管理缺陷", "非管理缺陷"


def needs_cause(ticket: Ticket) -> bool:
    """A 复发 ticket's reviewer says whether a 管理缺陷 let it come back, before 通过."""
    return bool(ticket.recurs) and not ticket.recurrence_cause


async def approve(ticket: Ticket, actor: User, now: datetime, cause: str = "",
                  note: str = "") -> None:
    """通过: closes the ticket, or for a 重大 one waits for the principal's approval. A 复发
    ticket needs the reviewer's `cause` (MANAGEMENT_CAUSE or OTHER_CAUSE) and its `note`."""
    await check_reviewer(ticket, actor, "通过", now)
    if cause:
        await _move(ticket, actor.id, "recurrence_cause", now,
                    note=f"{cause}：{note}".rstrip("："), recurrence_cause=cause)
    elif needs_cause(ticket):
        await refuse(ticket, actor, "通过", "复发隐患需先说明复发原因是否属于管理缺陷。", now)
    if ticket.needs_principal and not ticket.first_approval and not actor.has_role(
            Role.PRINCIPAL):
        await _move(ticket, actor.id, "reviewed", now, first_approval=actor.id)
        return
    await _move(ticket, actor.id, "closed", now, status=Status.CLOSED, closed_at=now)


async def reject(ticket: Ticket, actor: User, reason: str, now: datetime) -> None:
    await check_reviewer(ticket, actor, "驳回", now)
    await _move(ticket, actor.id, "rejected", now, status=Status.OPEN, first_approval="",
                note=reason)


async def cancel(ticket: Ticket, actor: User, reason: str, now: datetime) -> None:
    """A reporter cancels a draft; after filing only a safety manager can, with a reason.

    A draft whose 提交 drew a number and then failed keeps that number when cancelled: the day's
    numbers stay dense on the ledger, the gap shown as 已取消 instead of missing."""
    if ticket.status is Status.DRAFT and actor.id == ticket.reporter_id:
        kept = await TicketNumber.get_or_none(ticket_id=ticket.id)
        await _move(ticket, actor.id, "cancelled", now, status=Status.CANCELLED, note=reason,
                    **({"number": kept.number} if kept else {}))
        return
    if not actor.has_role(Role.SAFETY_MANAGER):
        await refuse(ticket, actor, "取消", "只有上报人（草稿）或安全管理员可以取消隐患。", now)
    if ticket.status not in (Status.DRAFT, *ACTIVE):
        raise Stale(ticket.label)
    if not reason:
        raise Refused("取消已登记的隐患需要说明原因。")
    await _move(ticket, actor.id, "cancelled", now, status=Status.CANCELLED, note=reason)


async def transfer_candidates(ticket: Ticket, limit: int) -> list[User]:
    """People a ticket is usually passed to: the owner's colleagues, then other areas' owners.
    Small queries, whatever the size of the roster: colleagues by the (department, id) index,
    area owners by key from the list of areas."""
    owner = ticket.owner_id or ""
    colleagues = await User.filter(
        active=True, department_id=Subquery(User.filter(id=owner).values("department_id")),
    ).exclude(id=owner).order_by("id").limit(limit)
    area_owners = {a.owner_id for a in await every_area()} - {None, ticket.owner_id}
    others = await User.filter(active=True, id__in=sorted(area_owners)).order_by("id").limit(
        limit) if area_owners else []
    picked = {u.id: u for u in [*colleagues, *others]}
    return list(picked.values())[:limit]


async def new_draft(reporter_id: str, photos: Sequence[str], now: datetime) -> Ticket:
    return await Ticket.create(reporter_id=reporter_id, photos=list(photos), created_at=now,
                               updated_at=now)


async def save_draft(draft: Ticket, now: datetime) -> None:
    """Keep the report dialog's answers on the draft. Saved whole, with no version check: only
    its reporter's events change a draft's answers, and they are handled one at a time."""
    draft.updated_at = now
    await draft.save()


async def draft_by_id(ticket_id: int | None) -> Ticket | None:
    """The draft a report dialog fills; None once it was filed, cancelled or linked."""
    return await Ticket.get_or_none(id=ticket_id, status=Status.DRAFT) if ticket_id else None


async def ticket_by_id(ticket_id: int | None) -> Ticket | None:
    """The ticket a question is about, in whatever state; None for a question about none."""
    return await Ticket.get_or_none(id=ticket_id) if ticket_id else None


async def tickets_by_id(ids: Sequence[int]) -> list[Ticket]:
    """These tickets in one query, in the order given (the choices of a 已整改 with several
    tickets open)."""
    found = {t.id: t for t in await Ticket.filter(id__in=list(ids))}
    return [found[i] for i in ids if i in found]


async def ticket_numbered(number: str) -> Ticket | None:
    """The ticket with this number (HZ-20261129-0007), as people type it."""
    return await Ticket.get_or_none(number=number)


async def last_draft(reporter_id: str) -> Ticket | None:
    """The reporter's newest unfinished report."""
    return await Ticket.filter(reporter_id=reporter_id, status=Status.DRAFT).order_by(
        "-id").first()


def _rectifying(owner_id: str) -> QuerySet[Ticket]:
    """The owner's tickets done with evidence (hazards and improvement actions): a review is
    done in its own dialog."""
    return Ticket.filter(owner_id=owner_id, status=Status.OPEN).exclude(kind=TicketKind.REVIEW)


async def has_open_tickets(owner_id: str) -> bool:
    return await _rectifying(owner_id).exists()


async def open_tickets_of(owner_id: str) -> list[Ticket]:
    """The owner's tickets in rectification, the nearest deadline first."""
    return list(await _rectifying(owner_id).order_by("deadline"))


async def photo_references() -> list[tuple[str, Status, list[str], list[str]]]:
    """Every ticket with photos: its label, status, photos before and after (整改前, 整改后)."""
    rows = await Ticket.all().order_by("id").values_list(
        "id", "number", "status", "photos", "evidence")
    return [(number or f"草稿{ticket_id}", Status(status), list(photos or []),
             list(evidence or []))
            for ticket_id, number, status, photos, evidence in rows if photos or evidence]
