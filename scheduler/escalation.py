"""Reminders and escalations: write each opened ticket's ladder, then fire the steps that are due.

The ladders' queries are in models/ladders.py: they read only indexed columns, so a tick costs
what is due, not what is stored, and on PostgreSQL two instances ticking at once share the work.
A step fires in the transaction that queues its message and marks it sent. The sent row is the
step's record, with no audit event or ticket update beside it, so a tick writes little more
than its messages.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from models import transaction
from models.catalog import Catalog, Grade
from models.escalation import AlarmKind, mark_sent, skip_steps, spread_offset
from models.hazard import TicketKind
from models.ladders import Due, DueTicket, claim_due_steps, write_ladders
from models.org import area_names, user_names
from models.outbox import Queued, enqueue_many
from models.outgoing import (
    COMMON,
    Button,
    Card,
    Limits,
    Markdown,
    Outgoing,
    Priority,
    Selection,
    Text,
)
from scheduler.policy import Policy

BATCH = 2000           # tickets armed and steps fired per tick at most; the rest go at the next


class LostRace(Exception):
    """Another instance fired some of these steps first: roll back, the next tick retries."""


async def arm_ladders(policy: Policy, now: datetime) -> int:
    """Write the ladders of the tickets that opened or changed deadline or owner since the last
    tick, with the configured ladder (`models.ladders.write_ladders`)."""
    return await write_ladders(policy.ladder, now, BATCH)


async def fire_due(policy: Policy, catalog: Catalog, now: datetime, platform: str,
                   limits: Limits = COMMON) -> int:
    """Queue the due steps, one message per person and kind, within the `limits` of the
    `platform` they go to; returns the steps fired."""
    opened = policy.calendar.opened_at(now)
    async with transaction():
        # In quiet time only 重大 tickets' steps go out.
        claimed = await claim_due_steps(now, major_only=opened is None, limit=BATCH)
        if not claimed:
            return 0
        # A reminder that comes after its deadline (the ticket went back and forth with the
        # reviewer) would only confuse: the escalation speaks for it.
        late = [d.alarm.id for d in claimed if d.alarm.kind is AlarmKind.REMIND
                and (d.ticket.deadline or now) <= now]
        await skip_steps(late)
        due = [d for d in claimed if d.alarm.id not in late
               and _released(d, opened, now, policy.ladder.spread)]
        if not due:
            return 0
        await _send(due, catalog, policy, now, platform, limits)
        ids = [d.alarm.id for d in due]
        fired = await mark_sent(ids, now)
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
                platform: str, limits: Limits) -> None:
    """One message per person and kind, however many tickets it covers: WeCom drops a
    member's messages beyond 30 a minute."""
    areas = await area_names({d.ticket.area_id for d in due if d.ticket.area_id})
    names = await user_names(d.ticket.owner_id for d in due if d.ticket.owner_id)
    grouped: dict[tuple[AlarmKind, str, bool], list[Due]] = defaultdict(list)
    for d in due:
        for person in d.alarm.recipients:
            grouped[(d.alarm.kind, person, d.ticket.grade is Grade.MAJOR)].append(d)
    by_priority: dict[Priority, list[Queued]] = defaultdict(list)
    for (kind, person, major), items in grouped.items():
        items.sort(key=lambda d: d.ticket.deadline or now)
        view = [_Row(d.ticket, areas.get(d.ticket.area_id or "", "未填区域"),
                     catalog.name_of(d.ticket.category) if d.ticket.kind is TicketKind.HAZARD
                     else d.ticket.kind.noun, names.get(d.ticket.owner_id or "", ""))
                for d in items]
        message = (_reminder(view, now, policy) if kind is AlarmKind.REMIND
                   else _escalation(view, now, limits))
        key = f"alarm:{kind.value}:{person}:{min(d.alarm.id for d in items)}:{len(items)}"
        by_priority[Priority.URGENT if major else Priority.ROUTINE].append(
            Queued(key, message, to_users=[person]))
    for priority, queued in by_priority.items():
        await enqueue_many(queued, now=now, platform=platform, priority=priority)


@dataclass(frozen=True)
class _Row:
    ticket: DueTicket
    area: str
    category: str
    owner: str

    @property
    def title(self) -> str:
        return f"{self.ticket.kind.noun}{self.ticket.number}（{self.area} {self.category}）"

    @property
    def waiting_on(self) -> str:
        """Who has not acted, and on what."""
        t = self.ticket
        if t.kind is TicketKind.REVIEW:
            return f"{self.owner}尚未完成评估"
        if t.extension:
            return f"{self.owner}的延期申请待复查人审批"
        if t.accepted_at is None:
            return f"{self.owner}尚未接收"
        return f"{self.owner}尚未提交整改"

    @property
    def what_next(self) -> str:
        if self.ticket.kind is TicketKind.REVIEW:
            return "请发送“应急评估”开始，逐项说明做得好的方面、存在的问题和改进措施。"
        return "完成后请发送整改后照片并回复“已整改”；如需延期，请回复“申请延期”。"


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
        return Text(f"{_heading(rows)}：{rows[0].title}{due(rows[0])}。{rows[0].what_next}")
    lines = [f"**{_heading(rows)}：{len(rows)}项{_noun(rows)}即将到期**"]
    lines += [f"> {row.title}{due(row)}" for row in rows]
    lines += list(dict.fromkeys(row.what_next for row in rows))
    return Markdown("\n".join(lines))


def _noun(rows: list[_Row]) -> str:
    """隐患 when every row is one (or 改进措施 …); 事项 for a mix."""
    nouns = {row.ticket.kind.noun for row in rows}
    return nouns.pop() if len(nouns) == 1 else "事项"


def _heading(rows: list[_Row]) -> str:
    return "评估提醒" if all(r.ticket.kind is TicketKind.REVIEW for r in rows) else "整改提醒"


def _escalation(rows: list[_Row], now: datetime, limits: Limits) -> Outgoing:
    """A card with the overdue tickets, who has not acted, and a button to open each: as many
    rows and drop-down options as the platform's card holds, the rest counted."""
    def late(row: _Row) -> str:
        return f"超期{_span(now - (row.ticket.deadline or now))}"

    nonce = secrets.token_hex(6)
    first = rows[0].ticket.number or ""
    shown = rows[:limits.card_rows]
    body = f"共{len(rows)}项，最长{late(rows[0])}。请督促整改责任人处理。"
    if len(rows) > limits.card_rows:
        body += f"另有{len(rows) - limits.card_rows}项，可在下拉框中选择查看。"
    selection = None
    if len(rows) > 1:
        selection = Selection(key="ticket", title="选择隐患", options=tuple(
            (row.ticket.number or "",
             f"{(row.ticket.number or '')[-9:]} {row.area}"[:limits.option_chars])
            for row in rows[:limits.card_options]))
    return Card(
        task_id=f"esc-{nonce}",
        title=f"{_noun(rows)}超期督办" + (f"（{len(rows)}项）" if len(rows) > 1 else ""),
        description=rows[0].title if len(rows) == 1 else f"以下{_noun(rows)}已超过期限",
        fields=tuple((row.ticket.number or "", f"{row.area} {late(row)}，{row.waiting_on}")
                     for row in shown),
        body=body, selection=selection,
        buttons=(Button("查看详情", f"view:{first}:{nonce}"),),
    )

