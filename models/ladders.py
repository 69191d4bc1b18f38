"""The ladders of open tickets as the scheduler's ticks find them: the tickets whose ladder is to
be written, the steps that are due, and the steps that are late. Each reads a ticket together
with its ladder's rows, so this module stands above both models/hazard.py (whose transitions
void a ladder) and models/escalation.py (the rows and the arithmetic of one ladder).

All of it reads only indexed columns (`ticket.status, armed`; `alarm.state, due_at`), so a tick
costs what is due, not what is stored. On PostgreSQL the rows are locked with SKIP LOCKED, so
two instances ticking at once share the work instead of doubling it; on SQLite (one instance)
the compare-and-set on `state` decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import fields
from tortoise.expressions import Q

from models import transaction
from models.catalog import Grade
from models.escalation import (
    Alarm,
    AlarmKind,
    AlarmState,
    Ladder,
    managers,
    spread_offset,
    steps,
)
from models.hazard import Status, Ticket, TicketKind

# Columns that arrive from the database as their Python values (enum columns are CharFields
# too, so they are told apart by type, not by isinstance on CharField).
_PLAIN = (fields.IntField, fields.BigIntField, fields.SmallIntField, fields.TextField)


async def write_ladders(ladder: Ladder, now: datetime, limit: int) -> int:
    """Write the ladder of every ticket that opened or changed deadline or owner since the last
    tick, `limit` tickets at most (the rest at the next tick); returns how many. Recipients are
    frozen here: the chain stored on the ticket when it opened, and the managers of today.
    Tickets another instance is arming are skipped (PostgreSQL)."""
    async with transaction():
        tickets = await Ticket.filter(status=Status.OPEN, armed=False).order_by("id").limit(
            limit).select_for_update(skip_locked=True)
        if not tickets:
            return 0
        top = await managers()
        for ticket in tickets:
            await _arm(ticket, ladder, top, now)
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
class DueStep:
    id: int
    kind: AlarmKind
    level: int
    due_at: datetime
    recipients: list[str]
    ticket_id: int


@dataclass(frozen=True)
class DueTicket:
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
    kind: TicketKind


@dataclass(frozen=True)
class Due:
    alarm: DueStep
    ticket: DueTicket


STEP_COLUMNS = ("id", "kind", "level", "due_at", "recipients", "ticket_id")
TICKET_COLUMNS = ("number", "status", "area_id", "category", "owner_id", "deadline", "grade",
                  "extension", "accepted_at", "kind")
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


async def claim_due_steps(now: datetime, major_only: bool, limit: int) -> list[Due]:
    """The due steps of open tickets (of 重大 ones only with `major_only`), the earliest `limit`,
    locked on PostgreSQL (SKIP LOCKED: another instance takes other rows). Call it in the
    transaction that queues their messages and marks them sent (`escalation.mark_sent`)."""
    db = Alarm._meta.db
    postgres = db.capabilities.dialect == "postgres"
    mark = "$" if postgres else "?"
    sql = _DUE_SQL.format(
        steps=", ".join(f"a.{c}" for c in STEP_COLUMNS),
        tickets=", ".join(f't.{c} AS "t_{c}"' for c in TICKET_COLUMNS),
        now=f"{mark}1", major=f" AND t.grade = {mark}2" if major_only else "",
        limit=limit, lock=" FOR UPDATE OF a SKIP LOCKED" if postgres else "")
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
        due.append(Due(DueStep(**step, ticket_id=int(row["ticket_id"])),
                       DueTicket(id=int(row["ticket_id"]), **ticket)))
    return due


@dataclass(frozen=True)
class Late:
    count: int                  # late steps and tickets whose ladder was never written
    tickets: tuple[str, ...]    # some of their tickets' numbers, for a warning to name


async def late_steps(cutoff: datetime, opened: datetime | None, spread: timedelta,
                     named: int) -> Late:
    """Steps of open tickets still pending though due before `cutoff`, and open tickets whose
    ladder was not written since before `cutoff`, with up to `named` of their numbers.
    `opened` is when today's working time began (None in quiet time): routine steps held over
    quiet time are late only once their release (`opened` plus the `spread`) is past too."""
    late = Alarm.filter(state=AlarmState.PENDING, due_at__lt=cutoff, ticket__status=Status.OPEN)
    if opened is None:
        late = late.filter(ticket__grade=Grade.MAJOR)
    elif opened + spread >= cutoff:
        late = late.filter(Q(ticket__grade=Grade.MAJOR) | Q(due_at__gte=opened))
    # Pending steps are nearly all in the future, but the planner takes state and due_at to be
    # independent and expects most of them late: asked for a count, it hashes every open ticket
    # and compiles the plan with JIT (~200 ms at 100,000 open tickets, every tick). Walking the
    # (state, due_at) index from the oldest pending step tells in a row or two whether anything
    # is late at all; only then is it counted (benchmarks/README.md, Tick benchmark).
    count = await late.count() if await late.order_by("due_at").limit(1).values_list("id") else 0
    unarmed = Ticket.filter(status=Status.OPEN, armed=False, updated_at__lt=cutoff)
    count += await unarmed.count()
    if not count:
        return Late(0, ())
    numbers = sorted(set(await late.limit(named).values_list("ticket__number", flat=True))
                     | set(await unarmed.limit(named).values_list("number", flat=True)))
    return Late(count, tuple(str(n) for n in numbers[:named]))
