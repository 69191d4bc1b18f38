"""Reminders and escalations: write each opened ticket's ladder, then fire the steps that are due.

Both read only indexed columns (`ticket.status, armed`; `alarm.state, due_at`), so a tick costs
what is due, not what is stored. A step fires in the transaction that queues its message and
marks it sent. The sent row is the step's record, with no audit event or ticket update beside
it, so a tick writes little more than its messages. On PostgreSQL the due rows are locked with
SKIP LOCKED, so two instances ticking at once share the work instead of doubling it; on SQLite
(one instance) the compare-and-set on `state` decides.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import fields

from models import transaction
from models.catalog import Catalog, Grade
from models.escalation import (
    Alarm,
    AlarmKind,
    AlarmState,
    Ladder,
    managers,
    spread_offset,
    steps,
)
from models.hazard import Status, Ticket
from models.org import Area, User
from models.outbox import Queued, enqueue_many
from models.outgoing import Button, Card, Markdown, Outgoing, Priority, Selection, Text
from scheduler.policy import Policy

# Columns that arrive from the database as their Python values (enum columns are CharFields
# too, so they are told apart by type, not by isinstance on CharField).
_PLAIN = (fields.IntField, fields.BigIntField, fields.SmallIntField, fields.TextField)
BATCH = 2000           # steps fired per tick at most; the rest go at the next tick
CARD_ROWS = 6          # a WeCom card shows six rows and ten drop-down options
CARD_OPTIONS = 10


class LostRace(Exception):
    """Another instance fired some of these steps first: roll back, the next tick retries."""


async def arm_ladders(policy: Policy, now: datetime) -> int:
    """Write the ladder of every ticket that opened or changed deadline or owner since the last
    tick. Recipients are frozen here: the chain stored on the ticket when it opened, and the
    managers of today. Tickets another instance is arming are skipped (PostgreSQL)."""
    async with transaction():
        tickets = await Ticket.filter(status=Status.OPEN, armed=False).order_by("id").limit(
            BATCH).select_for_update(skip_locked=True)
        if not tickets:
            return 0
        top = await managers()
        for ticket in tickets:
            await _arm(ticket, policy.ladder, top, now)
    return len(tickets)


async def _arm(ticket: Ticket, ladder: Ladder, top: list[str], now: datetime) -> None:
    existing = {(a.kind, a.level): a for a in await Alarm.filter(ticket_id=ticket.id)}
    planned = [] if ticket.deadline is None or not ticket.owner_id else steps(
        ladder, deadline=ticket.deadline, owner=ticket.owner_id, chain=ticket.chain, top=top,
        offset=spread_offset(ticket.id, ladder.spread))
    new = []
    for step in planned:
        # A reminder already past when the ladder is written (a short deadline) is not sent
        # late; an escalation already past is sent at once: the ticket is overdue.
        state = (AlarmState.SKIPPED if step.kind is AlarmKind.REMIND and step.due_at <= now
                 else AlarmState.PENDING)
        alarm = existing.get((step.kind, step.level))
        if alarm is None:
            new.append(Alarm(ticket_id=ticket.id, kind=step.kind, level=step.level,
                             due_at=step.due_at, recipients=step.recipients, state=state))
        elif alarm.state in (AlarmState.PENDING, AlarmState.SKIPPED, AlarmState.VOID):
            await Alarm.filter(id=alarm.id, state=alarm.state).update(
                due_at=step.due_at, recipients=step.recipients, state=state)
    await Alarm.bulk_create(new, ignore_conflicts=True)
    # A transition meanwhile (a new deadline, another owner) asks for the ladder again.
    await Ticket.filter(id=ticket.id, version=ticket.version).update(armed=True)


@dataclass(frozen=True)
class _Step:
    id: int
    kind: AlarmKind
    level: int
    due_at: datetime
    recipients: list[str]
    ticket_id: int


@dataclass(frozen=True)
class _Ticket:
    """The ticket fields the messages and the audit trail show."""

    id: int
    number: str
    status: Status
    area_id: str | None
    category: str
    owner_id: str | None
    deadline: datetime | None
    grade: Grade
    extension: dict[str, Any]
    accepted_at: datetime | None


@dataclass(frozen=True)
class Due:
    alarm: _Step
    ticket: _Ticket


STEP_COLUMNS = ("id", "kind", "level", "due_at", "recipients", "ticket_id")
TICKET_COLUMNS = ("number", "status", "area_id", "category", "owner_id", "deadline", "grade",
                  "extension", "accepted_at")
# One statement, plain rows: 1,000 due steps as ORM objects cost more than the query.
_DUE_SQL = """
    SELECT {steps}, {tickets} FROM alarm a JOIN ticket t ON t.id = a.ticket_id
    WHERE a.state = 'pending' AND a.due_at <= {now} AND t.status = 'open'{major}
    ORDER BY a.due_at, a.id LIMIT {limit}{lock}"""


def _reader(field: Any, postgres: bool) -> Callable[[Any], Any]:
    """A column's value as Python: asyncpg already gives aware datetimes, and enums and JSON
    need no more than their constructor (the field's own conversion costs ~60 µs a row)."""
    if isinstance(field, fields.data.CharEnumFieldInstance):
        enum = field.enum_type
        return lambda value: None if value is None else enum(value)
    if isinstance(field, fields.JSONField):
        return lambda value: json.loads(value) if isinstance(value, str | bytes) else value
    if postgres and isinstance(field, fields.DatetimeField):
        return lambda value: value
    converted: Callable[[Any], Any] = field.to_python_value
    return converted


async def _claim(now: datetime, major_only: bool) -> list[Due]:
    """The due steps of open tickets, locked on PostgreSQL (SKIP LOCKED: another instance takes
    other rows)."""
    db = Alarm._meta.db
    postgres = db.capabilities.dialect == "postgres"
    mark = "$" if postgres else "?"
    sql = _DUE_SQL.format(
        steps=", ".join(f"a.{c}" for c in STEP_COLUMNS),
        tickets=", ".join(f't.{c} AS "t_{c}"' for c in TICKET_COLUMNS),
        now=f"{mark}1", major=f" AND t.grade = {mark}2" if major_only else "",
        limit=BATCH, lock=" FOR UPDATE OF a SKIP LOCKED" if postgres else "")
    step_fields, ticket_fields = Alarm._meta.fields_map, Ticket._meta.fields_map
    params: list[Any] = [step_fields["due_at"].to_db_value(now, Alarm)]
    if major_only:
        params.append(Grade.MAJOR.value)
    # Only JSON, enum and (on SQLite) time columns need converting; the rest arrive as they are.
    steps_at = [(c, _reader(step_fields[c], postgres)) for c in STEP_COLUMNS
                if c != "ticket_id" and not isinstance(step_fields[c], _PLAIN)]
    tickets_at = [(c, _reader(ticket_fields[c], postgres)) for c in TICKET_COLUMNS
                  if not isinstance(ticket_fields[c], _PLAIN)]
    due = []
    for row in await db.execute_query_dict(sql, params):
        step = {c: row[c] for c in STEP_COLUMNS if c != "ticket_id"}
        step.update((c, convert(row[c])) for c, convert in steps_at)
        ticket = {c: row[f"t_{c}"] for c in TICKET_COLUMNS}
        ticket.update((c, convert(row[f"t_{c}"])) for c, convert in tickets_at)
        due.append(Due(_Step(**step, ticket_id=int(row["ticket_id"])),
                       _Ticket(id=int(row["ticket_id"]), **ticket)))
    return due


async def fire_due(policy: Policy, catalog: Catalog, now: datetime, platform: str) -> int:
    """Queue the due steps, one message per person and kind; returns the steps fired."""
    opened = policy.calendar.opened_at(now)
    async with transaction():
        claimed = await _claim(now, major_only=opened is None)   # quiet time: 重大 only
        if not claimed:
            return 0
        # A reminder that comes after its deadline (the ticket went back and forth with the
        # reviewer) would only confuse: the escalation speaks for it.
        late = [d.alarm.id for d in claimed if d.alarm.kind is AlarmKind.REMIND
                and (d.ticket.deadline or now) <= now]
        await Alarm.filter(id__in=late, state=AlarmState.PENDING).update(
            state=AlarmState.SKIPPED)
        due = [d for d in claimed if d.alarm.id not in late
               and _released(d, opened, now, policy.ladder.spread)]
        if not due:
            return 0
        await _send(due, catalog, policy, now, platform)
        ids = [d.alarm.id for d in due]
        fired = await Alarm.filter(id__in=ids, state=AlarmState.PENDING).update(
            state=AlarmState.SENT, fired_at=now)
        if fired != len(ids):
            raise LostRace(f"{len(ids) - fired} of {len(ids)} steps fired elsewhere")
    return len(due)


def _released(due: Due, opened: datetime | None, now: datetime, spread: timedelta) -> bool:
    """A routine step held over quiet time goes out at the start of working time plus its
    ticket's share of the spread, so the morning's backlog does not all leave at 07:00 sharp."""
    if due.ticket.grade is Grade.MAJOR or opened is None or due.alarm.due_at >= opened:
        return True
    return now >= opened + spread_offset(due.ticket.id, spread)


async def _send(due: list[Due], catalog: Catalog, policy: Policy, now: datetime,
                platform: str) -> None:
    """One message per person and kind, however many tickets it covers: WeCom drops a
    member's messages beyond 30 a minute."""
    areas = {a.code: a.name for a in await Area.filter(
        code__in={d.ticket.area_id for d in due if d.ticket.area_id})}
    names = dict(await User.filter(id__in={d.ticket.owner_id for d in due if d.ticket.owner_id}
                                   ).values_list("id", "name"))
    grouped: dict[tuple[AlarmKind, str, bool], list[Due]] = defaultdict(list)
    for d in due:
        for person in d.alarm.recipients:
            grouped[(d.alarm.kind, person, d.ticket.grade is Grade.MAJOR)].append(d)
    by_priority: dict[Priority, list[Queued]] = defaultdict(list)
    for (kind, person, major), items in grouped.items():
        items.sort(key=lambda d: d.ticket.deadline or now)
        view = [_Row(d.ticket, areas.get(d.ticket.area_id or "", "未填区域"),
                     catalog.name_of(d.ticket.category), names.get(d.ticket.owner_id or "", ""))
                for d in items]
        message = (_reminder(view, now, policy) if kind is AlarmKind.REMIND
                   else _escalation(view, now))
        key = f"alarm:{kind.value}:{person}:{min(d.alarm.id for d in items)}:{len(items)}"
        by_priority[Priority.URGENT if major else Priority.ROUTINE].append(
            Queued(key, message, to_users=[person]))
    for priority, queued in by_priority.items():
        await enqueue_many(queued, now=now, platform=platform, priority=priority)


@dataclass(frozen=True)
class _Row:
    ticket: _Ticket
    area: str
    category: str
    owner: str

    @property
    def title(self) -> str:
        return f"{self.ticket.number}（{self.area} {self.category}）"

    @property
    def waiting_on(self) -> str:
        """Who has not acted, and on what."""
        t = self.ticket
        if t.extension:
            return f"{self.owner}的延期申请待复查人审批"
        if t.accepted_at is None:
            return f"{self.owner}尚未接收"
        return f"{self.owner}尚未提交整改"


def _span(delta: timedelta) -> str:
    """约3天5小时 / 约2小时 / 不到1小时."""
    hours = int(delta.total_seconds() // 3600)
    if hours < 1:
        return "不到1小时"
    days, hours = divmod(hours, 24)
    return "约" + (f"{days}天" if days else "") + (f"{hours}小时" if hours else "")


def _reminder(rows: list[_Row], now: datetime, policy: Policy) -> Outgoing:
    def due(row: _Row) -> str:
        deadline = row.ticket.deadline or now
        local = deadline.astimezone(policy.tz)
        return f"将于{local:%m月%d日 %H:%M}到期（还有{_span(deadline - now)}）"

    if len(rows) == 1:
        return Text(f"整改提醒：隐患{rows[0].title}{due(rows[0])}。整改完成后请发送整改后照片"
                    "并回复“已整改”；如需延期，请回复“申请延期”。")
    lines = [f"**整改提醒：{len(rows)}项隐患即将到期**"]
    lines += [f"> {row.title}{due(row)}" for row in rows]
    lines.append("整改完成后请发送整改后照片并回复“已整改”。")
    return Markdown("\n".join(lines))


def _escalation(rows: list[_Row], now: datetime) -> Outgoing:
    """A card with the overdue tickets, who has not acted, and a button to open each."""
    def late(row: _Row) -> str:
        return f"超期{_span(now - (row.ticket.deadline or now))}"

    nonce = secrets.token_hex(6)
    first = rows[0].ticket.number or ""
    shown = rows[:CARD_ROWS]
    body = f"共{len(rows)}项，最长{late(rows[0])}。请督促整改责任人处理。"
    if len(rows) > CARD_ROWS:
        body += f"另有{len(rows) - CARD_ROWS}项，可在下拉框中选择查看。"
    selection = None
    if len(rows) > 1:
        selection = Selection(key="ticket", title="选择隐患", options=tuple(
            (row.ticket.number or "", f"{(row.ticket.number or '')[-9:]} {row.area}"[:16])
            for row in rows[:CARD_OPTIONS]))
    return Card(
        task_id=f"esc-{nonce}",
        title="隐患超期督办" + (f"（{len(rows)}项）" if len(rows) > 1 else ""),
        description=rows[0].title if len(rows) == 1 else "以下隐患已超过整改期限",
        fields=tuple((row.ticket.number or "", f"{row.area} {late(row)}，{row.waiting_on}")
                     for row in shown),
        body=body, selection=selection,
        buttons=(Button("查看详情", f"view:{first}:{nonce}"),),
    )

