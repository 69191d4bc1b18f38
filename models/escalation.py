"""Reminders and the escalation ladder of an open ticket, as rows that say when each step is due.

A ticket's ladder is written when it opens (and rewritten when its deadline or owner changes):
one `Alarm` per step, unique by (ticket, kind, level), with its recipients frozen at that moment,
so a later roster change does not move an escalation that is already on its way. A step fires at
most once: the scheduler moves it from `pending` to `sent` in the same transaction that queues its
message. A sent row is the record of that reminder or escalation: the ticket's history shows
it, and its highest escalation level is the level the ticket reached. Ticket transitions only
mark a ladder stale (`Ticket.armed = False`) or void it; the scheduler, which knows the
configured ladder, arms it (`models.ladders.write_ladders`, called by scheduler/escalation.py).

The ticket module imports this one (a transition voids the ladder), so nothing here names the
`Ticket` class: what needs a ticket and its ladder together lives in models/ladders.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.org import Role, people_with


class AlarmKind(StrEnum):
    REMIND = "remind"        # to the owner, before the deadline
    ESCALATE = "escalate"    # up the chain, after it


class AlarmState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"      # already past when the ladder was written (a short deadline)
    VOID = "void"            # the ticket left the owner's hands first (review, close, cancel)


class Alarm(Model):
    id = fields.BigIntField(primary_key=True)
    # Typed as any model: the ticket is named by its string only (see the module's docstring);
    # the code reads `ticket_id`.
    ticket: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        "models.Ticket", related_name="alarms", on_delete=fields.CASCADE)
    kind = fields.CharEnumField(AlarmKind, max_length=8)
    level = fields.SmallIntField()                     # 1 = the first step of its kind
    due_at = fields.DatetimeField()
    recipients: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    state = fields.CharEnumField(AlarmState, max_length=8, default=AlarmState.PENDING)
    fired_at = fields.DatetimeField(null=True)
    ticket_id: int

    class Meta:
        table = "alarm"
        unique_together = (("ticket", "kind", "level"),)
        indexes = (("state", "due_at"), ("fired_at",))

    @property
    def label(self) -> str:
        """How the ticket's history names the step."""
        if self.kind is AlarmKind.REMIND:
            return f"整改提醒（第{self.level}次）"
        return f"第{self.level}级超期督办"


async def fired(ticket_id: int) -> list[Alarm]:
    """The reminders and escalations that went out for a ticket, in order."""
    return await Alarm.filter(ticket_id=ticket_id, state=AlarmState.SENT).order_by(
        "fired_at", "id")


@dataclass(frozen=True)
class Ladder:
    """When the steps come, from configuration: reminders before the deadline, escalations
    after it. The last escalation goes to the safety managers and principals; the ones before
    it climb the owner's supervisor chain, one level each."""

    remind_before: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
    escalate_after: tuple[timedelta, ...] = (timedelta(0), timedelta(hours=24),
                                             timedelta(hours=48))
    spread: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class Step:
    kind: AlarmKind
    level: int
    due_at: datetime
    recipients: list[str]


async def managers() -> list[str]:
    """Safety managers and principals: the top of every ladder."""
    return await people_with(Role.SAFETY_MANAGER, Role.PRINCIPAL)


def steps(ladder: Ladder, *, deadline: datetime, owner: str, chain: list[str],
          top: list[str], offset: timedelta) -> list[Step]:
    """The ladder of one ticket. `offset` (less than `ladder.spread`, fixed per ticket) moves
    every step a little, so tickets opened at the same minute do not all fire at once."""
    out = [Step(AlarmKind.REMIND, n, deadline - before + offset - ladder.spread, [owner])
           for n, before in enumerate(ladder.remind_before, 1)]
    last = len(ladder.escalate_after)
    for n, after in enumerate(ladder.escalate_after, 1):
        above = chain[n - 1] if n < last and n - 1 < len(chain) else ""
        out.append(Step(AlarmKind.ESCALATE, n, deadline + after + offset,
                        [above] if above else top))
    return out


def spread_offset(ticket_id: int, spread: timedelta) -> timedelta:
    """A fixed, well-mixed share of `spread` for one ticket."""
    seconds = int(spread.total_seconds())
    return timedelta(seconds=(ticket_id * 2654435761) % seconds) if seconds > 0 else timedelta(0)


async def void_alarms(ticket_id: int) -> None:
    """The ticket is with the reviewer, closed or cancelled: nothing left may fire."""
    await Alarm.filter(ticket_id=ticket_id, state=AlarmState.PENDING).update(
        state=AlarmState.VOID)


async def skip_steps(ids: list[int]) -> None:
    """Pending steps that will not be sent (the caller says why)."""
    await Alarm.filter(id__in=ids, state=AlarmState.PENDING).update(state=AlarmState.SKIPPED)


async def mark_sent(ids: list[int], now: datetime) -> int:
    """Mark steps sent, in the transaction that queued their messages; returns how many were
    still pending (fewer when another instance fired some first: the caller rolls back)."""
    return await Alarm.filter(id__in=ids, state=AlarmState.PENDING).update(
        state=AlarmState.SENT, fired_at=now)
