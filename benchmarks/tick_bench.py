"""Tick benchmark: the time of one scheduler tick with a million tickets on PostgreSQL.

Issue 4: *with 1,000,000 tickets (100,000 open, 1,000 due) one `Jobs.tick(now)` takes under
200 ms, and grows with the number due, not the total.* This script builds that database (a
generated plant loaded with `load_org`, tickets and their alarm rows bulk-loaded with COPY),
then runs the service's own `Jobs.tick` in this process at a fixed instant, a Tuesday 10:00 in
Asia/Shanghai (working time, so no routine step is held by quiet hours), for every total and
number due asked for, each several rounds that do the same work.

With `--monthly`, at the largest total it also times the monthly report on the month before
(issue 20), with a share of the month's tickets marked as recurrences and closed drills of the
shipped plans: the tick on the 1st that claims it, the time until its three messages are queued
(closure queries, chart, ledger, outbox rows), and the minute ticks (with `--monthly-due` steps
due) run every `--monthly-tick-every` seconds while it is built. `--database sqlite` runs that
part alone on a SQLite file.

    .venv/bin/python benchmarks/tick_bench.py [--totals 100000,1000000] [--due 0,1000,5000]
                                              [--rounds 7] [--open-share 0.1] [--no-daily]
                                              [--monthly [--monthly-month 2026-10,2026-11]
                                               [--monthly-rounds 5] [--recur-share 0.05]
                                               [--drills 6] [--monthly-due 1000]
                                               [--monthly-tick-every 1]]
                                              [--database postgres|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import inspect
import io
import json
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_bench import (  # noqa: E402
    BenchError,
    code_version,
    fresh_database,
    machine_info,
    run_bench,
)
from bot.db import migrate, open_database  # noqa: E402
from bot.media.folder import FolderStore  # noqa: E402
from bot.plans import parse_plans  # noqa: E402
from bot.roster import load_org  # noqa: E402
from bot.scheduling import load_drill_rules, load_policy  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from models import closure as closure_module  # noqa: E402
from models.catalog import DefectType, Grade, load_catalog  # noqa: E402
from models.closure import MonthlyClosure, month_window, previous_month  # noqa: E402
from models.emergency import Activation, ActivationStatus, Plan  # noqa: E402
from models.escalation import AlarmKind, AlarmState, Ladder, spread_offset, steps  # noqa: E402
from models.hazard import Status, Ticket  # noqa: E402
from scheduler import jobs as jobs_module  # noqa: E402
from scheduler import monthly as monthly_module  # noqa: E402
from scheduler.escalation import BATCH  # noqa: E402
from scheduler.jobs import Jobs, TickReport  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 8, 10, 0, tzinfo=TZ).astimezone(UTC)   # a Tuesday, a working day
TARGET_MS = 200.0
DUE_WINDOW = 240          # seconds before `now` in which the due steps fall
MAJOR_SHARE = 0.02        # 重大 tickets (their messages go out as urgent)
COPY_CHUNK = 50_000
# The job functions `Jobs.tick` calls, by the name it reports them under: wrapped from outside
# to time each part of one real tick (the instance's daily jobs are its bound methods).
MODULE_JOBS = {"dialogs": "expire_dialogs", "ladders": "arm_ladders", "alarms": "fire_due",
               "emergency": "run_emergency", "auditor": "audit_alarms"}
INSTANCE_JOBS = {"risk": "_risk", "digest": "_digest", "monthly": "_monthly"}
JOB_ORDER = ("dialogs", "ladders", "alarms", "risk", "digest", "monthly", "emergency", "auditor")
# --monthly: the tick on the 1st at this local hour (after the 08:20 digest time), the parts of
# `send_monthly` timed (`models.closure`'s helpers by the names below), and the comparison.
MONTHLY_HOUR = 10
LAST_MONTH = f"{NOW.astimezone(TZ).replace(day=1) - timedelta(days=1):%Y-%m}"   # 2026-11
REPEAT_SHARE = 100          # of 10,000 tickets filed in the month: reported 2–4 times
MONTHLY_RECIPIENTS = 4      # `managers()`: the three safety managers and the principal
DAILY_FIRST_TICK_MS = 1258.8   # run C in benchmarks/README.md: risk status and digest run
CLOSURE_PARTS = {"_month": "months", "_repeated": "repeated", "_recurrences": "recurrences"}
MONTHLY_ORDER = ("drills", "closure", "months", "repeated", "recurrences", "draw", "markdown",
                 "media", "outbox")
MONTHLY_LABELS = {"claim": "claim tick ms", "report": "report queued ms",
                  "closure": "closure_for", "months": "└ _month ×2", "repeated": "└ _repeated",
                  "recurrences": "└ _recurrences",
                  "draw": "chart + xlsx (child, ledger pages streamed)",
                  "drills": "drills (plan_dates)", "media": "media.put ×2",
                  "outbox": "enqueue ×3", "ticks": "minute ticks during",
                  "tick p50": "their p50 ms", "tick max": "their max ms",
                  "stall": "longest loop stall ms"}
STALL_PROBE = 0.01          # seconds between the event-loop probe's wake-ups


# ---------------------------------------------------------------------------------------------
# The plant: a roster with supervisor chains


class Plant:
    """A principal and three safety managers at the top; 10 department heads, 30 supervisors,
    one owner per area (150), 10 reviewers and 200 workers. An owner's chain is supervisor,
    head, principal, so the ladder's escalations climb it and its last level reaches the four
    managers."""

    def __init__(self, areas: int) -> None:
        self.principal = "zfz"
        self.managers = ["aq01", "aq02", "aq03"]
        self.heads = [f"bz{i:02d}" for i in range(1, 11)]
        self.supervisors = [f"zg{i:03d}" for i in range(1, 31)]
        self.owners = [f"zrr{i:03d}" for i in range(1, areas + 1)]
        self.reviewers = [f"fcr{i:02d}" for i in range(1, 11)]
        self.workers = [f"yg{i:04d}" for i in range(1, 201)]
        self.areas = [f"A{i:03d}" for i in range(1, areas + 1)]

    def supervisor_of(self, user: str) -> str | None:
        if user in self.owners:
            return self.supervisors[self.owners.index(user) % len(self.supervisors)]
        if user in self.supervisors:
            return self.heads[self.supervisors.index(user) % len(self.heads)]
        if user in self.workers:
            return self.supervisors[self.workers.index(user) % len(self.supervisors)]
        if user in self.reviewers:
            return self.managers[self.reviewers.index(user) % len(self.managers)]
        return None if user == self.principal else self.principal

    def chain(self, owner: str) -> list[str]:
        out, current = [], self.supervisor_of(owner)
        while current is not None:
            out.append(current)
            current = self.supervisor_of(current)
        return out

    @property
    def top(self) -> list[str]:
        """`managers()` of the service: safety managers and principals, by id."""
        return sorted([*self.managers, self.principal])

    def write_roster(self, path: Path) -> None:
        parts = ['[[departments]]\nid = "plant"\nname = "压测厂"\n']
        people = ([(self.principal, "厂长", "principal")]
                  + [(u, f"安全员{i}", "safety_manager") for i, u in enumerate(self.managers, 1)]
                  + [(u, f"部长{i}", "owner") for i, u in enumerate(self.heads, 1)]
                  + [(u, f"主管{i}", "owner") for i, u in enumerate(self.supervisors, 1)]
                  + [(u, f"责任人{i}", "owner") for i, u in enumerate(self.owners, 1)]
                  + [(u, f"复查人{i}", "reviewer") for i, u in enumerate(self.reviewers, 1)]
                  + [(u, f"员工{i}", "worker") for i, u in enumerate(self.workers, 1)])
        for uid, name, role in people:
            above = self.supervisor_of(uid)
            parts.append(f'[[users]]\nid = "{uid}"\nname = "{name}"\ndepartment = "plant"\n'
                         f'roles = ["{role}"]\n' + (f'supervisor = "{above}"\n' if above else ""))
        for i, code in enumerate(self.areas):
            parts.append(f'[[areas]]\ncode = "{code}"\nname = "{code}区"\n'
                         f'owner = "{self.owners[i]}"\n'
                         f'reviewer = "{self.reviewers[i % len(self.reviewers)]}"\n')
        path.write_text("\n".join(parts), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Tickets and alarms, generated and COPYed


TICKET_COLUMNS = (
    "id", "number", "status", "version", "category", "description", "photos", "grade",
    "grade_reason", "defect_type", "defect_reason", "deadline", "checklist", "plan",
    "extension", "evidence", "evidence_note", "first_approval", "reports", "accepted_at",
    "created_at", "updated_at", "opened_at", "submitted_at", "closed_at", "area_id",
    "owner_id", "reporter_id", "reviewer_id", "armed", "chain",
)
ALARM_COLUMNS = ("ticket_id", "kind", "level", "due_at", "recipients", "state", "fired_at")


@dataclass(frozen=True)
class Open:
    """An open ticket's row and its ladder, as `arm_ladders` would have written it."""

    ticket: tuple[Any, ...]
    alarms: list[tuple[Any, ...]]


@dataclass
class Generator:
    """Deterministic tickets: id order is the order of generation, `open_share` of them open,
    drawn from the most recent ids of each batch.
    The first `pool` open tickets each have exactly one step due in the `DUE_WINDOW` seconds
    before `now`; every other step of every ticket is either in the future (pending) or past
    and already fired (sent), so nothing else is due."""

    plant: Plant
    ladder: Ladder
    categories: list[str]
    open_share: float
    pool: int
    rng: random.Random = field(default_factory=lambda: random.Random(4))
    next_id: int = 1
    pool_made: int = 0
    pool_ids: list[int] = field(default_factory=list)
    # The closed tickets: filed over this many days (two before now at the latest), due some
    # of `deadline_days` after, closed within `closes_within_days` (about one in eight late).
    closed_spread_days: int = 730
    deadline_days: tuple[int, ...] = (1, 2, 3, 5)
    closes_within_days: int = 7

    def batch(self, count: int) -> tuple[list[tuple[Any, ...]], list[Open]]:
        """`count` more tickets: the closed ones' rows, and the open ones with their ladders."""
        closed, opened = [], []
        # Open tickets are the recent ones, as in a plant: drawn from the batch's last ids.
        n_open = round(count * self.open_share)
        recent = range(count - min(count, n_open * 3 // 2), count)
        is_open = set(self.rng.sample(recent, n_open))
        for i in range(count):
            tid = self.next_id
            self.next_id += 1
            if i in is_open:
                opened.append(self._open(tid))
            else:
                closed.append(self._closed(tid))
        return closed, opened

    def _base(self, tid: int, created: datetime) -> dict[str, Any]:
        area = self.rng.randrange(len(self.plant.areas))
        owner = self.plant.owners[area]
        major = self.rng.random() < MAJOR_SHARE
        return {
            "id": tid, "number": f"HZ-{created.astimezone(TZ):%Y%m%d}-{tid:07d}",
            "version": 3, "category": self.rng.choice(self.categories),
            "description": "压测隐患", "photos": "[]",
            "grade": (Grade.MAJOR if major else Grade.GENERAL).value, "grade_reason": "",
            "defect_type": DefectType.THING.value, "defect_reason": "", "checklist": "{}",
            "plan": "{}", "extension": "{}", "evidence": "[]", "evidence_note": "",
            "first_approval": "", "reports": 1, "created_at": created,
            "area_id": self.plant.areas[area], "owner_id": owner,
            "reporter_id": self.rng.choice(self.plant.workers),
            "reviewer_id": self.plant.reviewers[area % len(self.plant.reviewers)],
            "armed": True, "chain": json.dumps(self.plant.chain(owner)),
            "submitted_at": None,
        }

    def _closed(self, tid: int) -> tuple[Any, ...]:
        created = NOW - timedelta(days=2, seconds=self.rng.randrange(
            self.closed_spread_days * 86400))
        deadline = created + timedelta(days=self.rng.choice(self.deadline_days))
        closed_at = min(created + timedelta(seconds=self.rng.randrange(
            1800, self.closes_within_days * 86400)), NOW - timedelta(hours=1))
        row = self._base(tid, created) | {
            "status": Status.CLOSED.value, "deadline": deadline, "accepted_at": created,
            "updated_at": closed_at, "opened_at": created, "submitted_at": closed_at,
            "closed_at": closed_at,
        }
        return tuple(row[c] for c in TICKET_COLUMNS)

    def _open(self, tid: int) -> Open:
        offset = spread_offset(tid, self.ladder.spread)
        chosen: tuple[AlarmKind, int] | None = None
        if self.pool_made < self.pool:
            # One step of this ticket falls due just before `now`; its deadline follows.
            kinds = [(AlarmKind.REMIND, n) for n in range(1, len(self.ladder.remind_before) + 1)]
            kinds += [(AlarmKind.ESCALATE, n)
                      for n in range(1, len(self.ladder.escalate_after) + 1)]
            chosen = kinds[self.pool_made % len(kinds)]
            due = NOW - timedelta(seconds=1 + self.rng.randrange(DUE_WINDOW))
            kind, level = chosen
            if kind is AlarmKind.REMIND:
                deadline = (due + self.ladder.remind_before[level - 1] - offset
                            + self.ladder.spread)
            else:
                deadline = due - self.ladder.escalate_after[level - 1] - offset
            self.pool_made += 1
            self.pool_ids.append(tid)
        else:
            # Deadlines over the coming four weeks; one in ten already overdue.
            days = (-self.rng.uniform(0, 10) if self.rng.random() < 0.1
                    else self.rng.uniform(0.05, 28))
            deadline = NOW + timedelta(days=days)
        created = min(NOW - timedelta(hours=1), deadline - timedelta(days=1)) - timedelta(
            seconds=self.rng.randrange(14 * 86400))
        base = self._base(tid, created)
        ladder = steps(self.ladder, deadline=deadline, owner=base["owner_id"],
                       chain=json.loads(base["chain"]), top=self.plant.top, offset=offset)
        alarms = []
        for step in ladder:
            pending = (step.kind, step.level) == chosen or step.due_at > NOW
            if chosen == (step.kind, step.level):
                assert NOW - timedelta(seconds=DUE_WINDOW + 1) <= step.due_at <= NOW, step
            alarms.append((tid, step.kind.value, step.level, step.due_at,
                           json.dumps(step.recipients),
                           (AlarmState.PENDING if pending else AlarmState.SENT).value,
                           None if pending else step.due_at))
        row = base | {
            "status": Status.OPEN.value, "deadline": deadline, "accepted_at": None,
            "updated_at": created, "opened_at": created, "closed_at": None,
        }
        return Open(tuple(row[c] for c in TICKET_COLUMNS), alarms)


# Closed tickets' ladders, written by the server from their rows: the steps due before the
# ticket closed were sent, the rest voided when it closed. (Their spread offset is left out.)
CLOSED_ALARMS = """
    INSERT INTO alarm (ticket_id, kind, level, due_at, recipients, state, fired_at)
    SELECT t.id, s.kind, s.level, t.deadline + s.shift,
           CASE WHEN s.kind = 'remind' THEN jsonb_build_array(t.owner_id)
                WHEN s.level < $3 THEN jsonb_build_array(t.chain ->> (s.level - 1))
                ELSE $4::jsonb END,
           CASE WHEN t.deadline + s.shift <= t.closed_at THEN 'sent' ELSE 'void' END,
           CASE WHEN t.deadline + s.shift <= t.closed_at THEN t.deadline + s.shift END
    FROM ticket t CROSS JOIN unnest($5::text[], $6::smallint[], $7::interval[])
                             AS s(kind, level, shift)
    WHERE t.status = 'closed' AND t.id BETWEEN $1 AND $2"""


def chunks(rows: Sequence[tuple[Any, ...]], size: int = COPY_CHUNK
           ) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


async def plain_indexes(conn: asyncpg.Connection, tables: Sequence[str]) -> dict[str, str]:
    """The tables' indexes that back no constraint (the migrations' `indexes`), by name."""
    rows = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def "
        "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid "
        "WHERE i.indrelid = ANY($1::regclass[]) AND c.oid IS NULL", list(tables))
    return {r["name"]: r["def"] for r in rows}


async def load_tickets(conn: asyncpg.Connection, gen: Generator, count: int) -> float:
    """`count` more tickets and their alarms; returns the seconds it took."""
    started = time.perf_counter()
    first = gen.next_id
    closed, opened = gen.batch(count)
    # The rows are consistent by construction: skip the per-row foreign-key triggers, and
    # build the plain indexes once at the end rather than row by row.
    await conn.execute("SET session_replication_role = replica")
    await conn.execute("SET maintenance_work_mem = '256MB'")
    indexes = await plain_indexes(conn, ("ticket", "alarm"))
    for name in indexes:
        await conn.execute(f"DROP INDEX {name}")
    try:
        for part in chunks(closed):
            await conn.copy_records_to_table("ticket", records=part, columns=TICKET_COLUMNS)
        for part in chunks([o.ticket for o in opened]):
            await conn.copy_records_to_table("ticket", records=part, columns=TICKET_COLUMNS)
        for part in chunks([a for o in opened for a in o.alarms]):
            await conn.copy_records_to_table("alarm", records=part, columns=ALARM_COLUMNS)
        ladder = gen.ladder
        shifts = ([("remind", n, -before - ladder.spread)
                   for n, before in enumerate(ladder.remind_before, 1)]
                  + [("escalate", n, after) for n, after in enumerate(ladder.escalate_after, 1)])
        kinds, levels, deltas = zip(*shifts, strict=True)
        await conn.execute(CLOSED_ALARMS, first, gen.next_id - 1, len(ladder.escalate_after),
                           json.dumps(gen.plant.top), list(kinds), list(levels), list(deltas))
    finally:
        await conn.execute("RESET session_replication_role")
        for definition in indexes.values():
            await conn.execute(definition)
        await conn.execute("RESET maintenance_work_mem")
    await conn.execute("SELECT setval('ticket_id_seq', $1)", gen.next_id - 1)
    await conn.execute("VACUUM ANALYZE ticket")
    await conn.execute("VACUUM ANALYZE alarm")
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# The due steps, and putting them back after a tick


@dataclass(frozen=True)
class DueStep:
    alarm_id: int
    ticket_id: int
    due_at: datetime


async def due_pool(conn: asyncpg.Connection, ticket_ids: Sequence[int]) -> list[DueStep]:
    rows = await conn.fetch(
        "SELECT a.id, a.ticket_id, a.due_at FROM alarm a "
        "WHERE a.ticket_id = ANY($1::bigint[]) AND a.due_at > $2 AND a.due_at <= $3 "
        "ORDER BY a.due_at, a.id", list(ticket_ids),
        NOW - timedelta(seconds=DUE_WINDOW + 1), NOW)
    if len(rows) != len(ticket_ids):
        raise BenchError(f"expected {len(ticket_ids)} steps in the due window, found {len(rows)}")
    return [DueStep(r["id"], r["ticket_id"], r["due_at"])
            for r in rows]


async def set_due(conn: asyncpg.Connection, pool: Sequence[DueStep], due: int) -> None:
    """The first `due` steps of the pool pending, the others fired at their time."""
    await conn.execute("UPDATE alarm SET state = 'sent', fired_at = due_at "
                       "WHERE id = ANY($1::bigint[])", [s.alarm_id for s in pool[due:]])
    await restore(conn, pool[:due], [])


async def restore(conn: asyncpg.Connection, due: Sequence[DueStep],
                  claimed: Sequence[str]) -> None:
    """Undo what a tick at `NOW` did: its steps pending again, its outbox rows and audit events
    gone, the daily jobs' claims given back."""
    async with conn.transaction():
        await conn.execute("UPDATE alarm SET state = 'pending', fired_at = NULL "
                           "WHERE id = ANY($1::bigint[])", [s.alarm_id for s in due])
        await conn.execute("DELETE FROM outbox_message WHERE created_at = $1", NOW)
        await conn.execute("DELETE FROM audit_event WHERE at = $1 AND actor = 'system'", NOW)
        await conn.execute("DELETE FROM job_run WHERE key = ANY($1::text[])", list(claimed))


def daily_periods(jobs: Jobs) -> list[str]:
    """The job_run keys a tick at `NOW` would claim: claimed beforehand, the measured tick is
    the steady minute tick; given back, it is the day's first tick after the digest time."""
    day = NOW.astimezone(jobs.policy.tz)
    month = (day.replace(day=1) - timedelta(days=1))
    return [f"risk:{day:%Y-%m-%d}", f"digest:{day:%Y-%m-%d}", f"monthly:{month:%Y-%m}",
            f"monthly:{month:%Y-%m}:done"]


async def claim(conn: asyncpg.Connection, keys: Sequence[str]) -> None:
    await conn.executemany("INSERT INTO job_run (key, ran_at) VALUES ($1, $2) "
                           "ON CONFLICT (key) DO NOTHING", [(k, NOW) for k in keys])


# ---------------------------------------------------------------------------------------------
# One measured tick


@contextlib.contextmanager
def timed_parts(jobs: Jobs, parts: dict[str, float]) -> Iterator[None]:
    """Time each job of a real `Jobs.tick` from outside: the job functions it calls are wrapped
    for the duration, nothing in the service changes."""

    def timed(name: str, job: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
        async def run(*args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            try:
                return await job(*args, **kwargs)
            finally:
                parts[name] = time.perf_counter() - started
        return run

    present = {name: attr for name, attr in MODULE_JOBS.items() if hasattr(jobs_module, attr)}
    originals = {attr: getattr(jobs_module, attr) for attr in present.values()}
    try:
        for name, attr in present.items():
            setattr(jobs_module, attr, timed(name, originals[attr]))
        for name, attr in INSTANCE_JOBS.items():
            setattr(jobs, attr, timed(name, getattr(jobs, attr)))
        yield
    finally:
        for attr, job in originals.items():
            setattr(jobs_module, attr, job)
        for attr in INSTANCE_JOBS.values():
            delattr(jobs, attr)


@dataclass
class Tick:
    seconds: float
    parts: dict[str, float]
    report: TickReport
    problems: list[str]


async def check(conn: asyncpg.Connection, pool: Sequence[DueStep], due: int,
                report: TickReport) -> list[str]:
    """Each due step fired once (the earliest `BATCH` of them when more are due), nothing else
    fired, and the outbox holds one message per recipient, kind and urgency group."""
    problems = [f"{job} failed: {error}" for job, error in report.failed.items()]
    expected = sorted(pool[:due], key=lambda s: (s.due_at, s.alarm_id))[:BATCH]
    fired = await conn.fetch(
        "SELECT a.id, a.kind, a.recipients, t.grade FROM alarm a JOIN ticket t "
        "ON t.id = a.ticket_id WHERE a.fired_at = $1 AND a.state = 'sent'", NOW)
    if sorted(r["id"] for r in fired) != sorted(s.alarm_id for s in expected):
        problems.append(f"{len(fired)} steps fired at now, expected {len(expected)}")
    if report.done.get("alarms", 0) != len(expected):
        problems.append(f"fire_due reported {report.done.get('alarms')}")
    left = await conn.fetchval("SELECT count(*) FROM alarm WHERE state = 'pending' "
                               "AND due_at <= $1", NOW)
    if left != due - len(expected):
        problems.append(f"{left} steps still due, expected {due - len(expected)}")
    groups: Counter[tuple[str, str, bool]] = Counter()
    for r in fired:
        for person in json.loads(r["recipients"]):
            groups[(r["kind"], person, r["grade"] == Grade.MAJOR.value)] += 1
    queued = await conn.fetch(
        "SELECT m.idempotency_key, m.priority, array_agg(d.recipient) AS recipients "
        "FROM outbox_message m JOIN outbox_delivery d ON d.message_id = m.id "
        "WHERE m.created_at = $1 AND m.idempotency_key LIKE 'alarm:%' GROUP BY m.id", NOW)
    got: Counter[tuple[str, str, bool]] = Counter()
    for q in queued:
        _, kind, person, _, covered = q["idempotency_key"].split(":")
        if list(q["recipients"]) != [person]:
            problems.append(f"message {q['idempotency_key']} goes to {q['recipients']}")
        got[(kind, person, q["priority"] > 0)] += int(covered)
    if got != groups:
        problems.append(f"outbox: {len(queued)} messages covering {sum(got.values())} "
                        f"steps; expected {len(groups)} covering {sum(groups.values())}")
    return problems


async def tick_once(jobs: Jobs, conn: asyncpg.Connection, pool: Sequence[DueStep], due: int,
                    claimed: Sequence[str]) -> Tick:
    await restore(conn, pool[:due], claimed)
    parts: dict[str, float] = {}
    with timed_parts(jobs, parts):
        started = time.perf_counter()
        report = await jobs.tick(NOW)
        seconds = time.perf_counter() - started
    return Tick(seconds, parts, report, await check(conn, pool, due, report))


# ---------------------------------------------------------------------------------------------
# The monthly report (`--monthly`): the tick on the 1st that claims it, the task that builds and
# sends it, and the minute ticks that run meanwhile


@dataclass(frozen=True)
class MonthlySetup:
    """The month reported, the instant of its tick, and what the loaded data holds for it."""

    month: str                 # YYYY-MM, the month before the tick's
    at: datetime               # the 1st of the next month, MONTHLY_HOUR local, in UTC
    filed: int                 # ledger rows expected: numbered, not linked, filed in the month
    recurrences: int           # of those, not cancelled, with `recurs` set
    repeated: int              # of those, reported more than once
    drills: int                # closed drill activations in the month's year
    plans: int


@dataclass
class MonthlyRound:
    claim: float               # seconds: the tick on the 1st that claims the report
    report: float              # seconds from that tick's start to the report queued
    parts: dict[str, float]    # the report's pieces, summed over their calls
    ticks: list[Tick]          # the minute ticks run while the report was being built
    problems: list[str]
    stall: float               # the longest the event loop went without running a ready task


@dataclass(frozen=True)
class Sql:
    """The monthly part's few statements on either database: PostgreSQL through the
    benchmark's asyncpg connection, SQLite through the ORM's (`$n` parameters become `?n`)."""

    pg: asyncpg.Connection | None

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        if self.pg is not None:
            return [dict(row) for row in await self.pg.fetch(sql, *args)]
        return list(await Ticket._meta.db.execute_query_dict(
            re.sub(r"\$(\d+)", r"?\1", sql), list(args)))

    async def execute(self, sql: str, *args: Any) -> None:
        await self.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        [row] = await self.fetch(sql, *args)
        return next(iter(row.values()))

    @property
    def json_array(self) -> str:
        return "jsonb_build_array" if self.pg is not None else "json_array"

    @property
    def analyze(self) -> str:
        return "VACUUM ANALYZE ticket" if self.pg is not None else "ANALYZE"


async def loop_stalls(stalls: list[float], every: float = STALL_PROBE) -> None:
    """How late each `every`-second sleep wakes: the service's web handlers, inbox worker and
    outbox dispatcher share the scheduler's event loop, so they wait as long as it is busy."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(every)
        stalls.append(loop.time() - started - every)


def nearest_rank(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class MonthlyRun:
    total: int
    setup: MonthlySetup
    due: int                            # steps due at each minute tick during the report
    first: MonthlyRound | None          # the unmeasured first round
    rounds: list[MonthlyRound]

    def ms(self, p: float, part: str) -> float:
        pick: dict[str, Callable[[MonthlyRound], float]] = {
            "claim": lambda r: r.claim, "report": lambda r: r.report,
            "stall": lambda r: r.stall, "ticks": lambda r: len(r.ticks) / 1000,
            "tick p50": lambda r: nearest_rank([t.seconds for t in r.ticks], 50),
            "tick max": lambda r: max((t.seconds for t in r.ticks), default=math.nan)}
        return nearest_rank([pick.get(part, lambda r: r.parts.get(part, math.nan))(r)
                             for r in self.rounds], p) * 1000

    def during(self, p: float) -> float:
        """The p-th percentile of every minute tick run during the measured reports, in ms."""
        return nearest_rank([t.seconds for r in self.rounds for t in r.ticks], p) * 1000


def monthly_instant(month: str, tz: ZoneInfo) -> datetime:
    """The first tick after the digest time on the 1st of the month after `month`."""
    year, number = (int(part) for part in month.split("-"))
    year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return datetime(year, number, 1, MONTHLY_HOUR, tzinfo=tz).astimezone(UTC)


# Recurrences: `--recur-share` of the tickets filed in the month (and the month before, whose
# headline the report compares with) get the one or two tickets of their area and category
# filed just before them, as `models.similarity` would have named earlier ones. A deterministic
# share by id (7919 is prime, so `id * 7919 % 10000` runs through every residue). A few more
# were reported two to four times, so the report's "most repeated" section has rows.
# $1 the look-back start (90 days before $2), $2 the month before's start, $3 the month's end.
PLANT_RECURRENCES = """
    WITH ranked AS (
        SELECT id, lag(number) OVER w AS prev1, lag(number, 2) OVER w AS prev2
        FROM ticket WHERE created_at >= $1 AND created_at < $3
        WINDOW w AS (PARTITION BY area_id, category ORDER BY created_at, id))
    UPDATE ticket
    SET recurs = CASE WHEN ticket.id % 3 = 0 AND r.prev2 IS NOT NULL
                      THEN {array}(r.prev1, r.prev2) ELSE {array}(r.prev1) END
    FROM ranked r
    WHERE r.id = ticket.id AND ticket.created_at >= $2 AND ticket.created_at < $3
      AND r.prev1 IS NOT NULL AND CAST(ticket.id AS BIGINT) * 7919 % 10000 < $4"""
PLANT_REPEATS = """
    UPDATE ticket SET reports = 2 + id % 3
    WHERE created_at >= $1 AND created_at < $2
      AND CAST(id AS BIGINT) * 7919 % 10000 >= 10000 - $3"""


async def plant_drills(plant: Plant, months: Sequence[str], tz: ZoneInfo, drills: int
                       ) -> int:
    """The shipped plans (config/plans) and `drills` closed drills of them, the plans in turn,
    spread over the reported months' year before the first of them; returns the plans."""
    entries = parse_plans(ROOT / "config" / "plans")
    for entry in entries:
        await Plan.create(code=entry.code, loaded_at=NOW - timedelta(days=400),
                          **entry.stored())
    first = month_window(min(months), tz).start
    year_start = datetime(first.astimezone(tz).year, 1, 1, 9, tzinfo=tz)
    span = (first - year_start) / max(1, drills)
    for i in range(drills):
        entry, started = entries[i % len(entries)], year_start + span * i
        await Activation.create(
            plan_id=entry.code, level=entry.levels[-1].name, area_id=plant.areas[i],
            drill=True, status=ActivationStatus.CLOSED, token=f"{i:016x}",
            raised_by=plant.managers[0], commander=plant.managers[0], note="压测演练",
            created_at=started, activated_at=started, closed_at=started + timedelta(hours=1),
            closed_by=plant.managers[0], review_sent=True)
    return len(entries)


async def plant_month(sql: Sql, month: str, tz: ZoneInfo, share: float, plans: int
                      ) -> MonthlySetup:
    """Recurrences and repeats in the month and the one before; what the report should show."""
    window = month_window(month, tz)
    before = month_window(previous_month(month), tz)
    await sql.execute(PLANT_RECURRENCES.format(array=sql.json_array),
                      before.start - timedelta(days=90), before.start, window.end,
                      round(share * 10000))
    await sql.execute(PLANT_REPEATS, before.start, window.end, REPEAT_SHARE)
    await sql.execute(sql.analyze)
    [counts] = await sql.fetch(
        "SELECT count(*) AS filed, count(*) FILTER (WHERE recurs IS NOT NULL "
        "  AND status <> 'cancelled') AS recurrences, "
        "count(*) FILTER (WHERE reports > 1) AS repeated FROM ticket "
        "WHERE number IS NOT NULL AND status <> 'linked' AND created_at >= $1 "
        "AND created_at < $2", window.start, window.end)
    year_start = datetime(window.start.astimezone(tz).year, 1, 1, tzinfo=tz)
    drills = await sql.fetchval(
        "SELECT count(*) FROM emergency_activation WHERE drill AND status = 'closed' "
        "AND activated_at >= $1 AND activated_at < $2", year_start, window.end)
    return MonthlySetup(month, monthly_instant(month, tz), counts["filed"],
                        counts["recurrences"], counts["repeated"], drills, plans)


def _accumulating(name: str, job: Callable[..., Any], parts: dict[str, float],
                  seen: dict[str, Any]) -> Callable[..., Any]:
    """`job` timed into `parts[name]` (summed over its calls), its last result kept in `seen`;
    sync functions stay sync."""
    if inspect.iscoroutinefunction(job):
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                seen[name] = await job(*args, **kwargs)
                return seen[name]
            finally:
                parts[name] = parts.get(name, 0.0) + time.perf_counter() - started
        return run_async

    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            seen[name] = job(*args, **kwargs)
            return seen[name]
        finally:
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - started
    return run


def _counting(pages: Callable[..., AsyncIterator[list[Any]]], seen: dict[str, Any]
              ) -> Callable[..., AsyncIterator[list[Any]]]:
    """`ledger_pages`, counting the rows it hands to the child into `seen["ledger rows"]`."""
    async def run(*args: Any, **kwargs: Any) -> AsyncIterator[list[Any]]:
        async for page in pages(*args, **kwargs):
            seen["ledger rows"] = seen.get("ledger rows", 0) + len(page)
            yield page
    return run


@contextlib.contextmanager
def monthly_parts(jobs: Jobs, parts: dict[str, float], seen: dict[str, Any]) -> Iterator[None]:
    """Time the pieces of the report from outside, as `timed_parts` does for the jobs."""
    targets: list[tuple[Any, str, str]] = [
        (jobs_module, "plan_dates", "drills"), (monthly_module, "closure_for", "closure"),
        *((closure_module, attr, name) for attr, name in CLOSURE_PARTS.items()),
        (monthly_module, "_draw", "draw"), (monthly_module, "render_markdown", "markdown"),
        (jobs.media, "put", "media"), (monthly_module, "enqueue", "outbox"),
    ]
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
    pages = monthly_module.ledger_pages
    try:
        for (owner, attr, name), (_, _, job) in zip(targets, originals, strict=True):
            setattr(owner, attr, _accumulating(name, job, parts, seen))
        monthly_module.ledger_pages = _counting(pages, seen)  # type: ignore[assignment]
        yield
    finally:
        monthly_module.ledger_pages = pages  # type: ignore[assignment]
        for owner, attr, job in originals:
            if owner is jobs.media:
                delattr(owner, attr)        # the bound method again
            else:
                setattr(owner, attr, job)


async def monthly_once(jobs: Jobs, sql: Sql, setup: MonthlySetup,
                       minute_tick: Callable[[Jobs], Awaitable[Tick]], every: float
                       ) -> MonthlyRound:
    """The tick at `setup.at` that claims the month's report, after undoing the last one; then,
    until the report is queued, a minute tick every `every` seconds (`minute_tick`) by the same
    scheduler, as in the service (at `NOW`, a week later: another instance would take the
    report over, its lease long past)."""
    await sql.execute("DELETE FROM outbox_message WHERE created_at = $1", setup.at)
    await sql.execute("DELETE FROM job_run WHERE key IN ($1, $2)", f"monthly:{setup.month}",
                      f"monthly:{setup.month}:done")
    parts: dict[str, float] = {}
    seen: dict[str, Any] = {}
    stalls: list[float] = []
    ticks: list[Tick] = []
    probe = asyncio.create_task(loop_stalls(stalls))
    await asyncio.sleep(0)
    try:
        with monthly_parts(jobs, parts, seen):
            started = time.perf_counter()
            report = await jobs.tick(setup.at)
            claim = time.perf_counter() - started
            built = asyncio.create_task(jobs.settle())
            while not built.done():
                await asyncio.wait([built], timeout=every)
                if not built.done():
                    ticks.append(await minute_tick(jobs))
            await built
            finished = time.perf_counter() - started
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
    problems = [f"claim tick: {p}" for p in await check_monthly(sql, jobs, setup, report, seen)]
    problems += [f"minute tick: {p}" for t in ticks for p in t.problems]
    return MonthlyRound(claim, finished, parts, ticks, problems, max(stalls, default=0.0))


async def check_monthly(sql: Sql, jobs: Jobs, setup: MonthlySetup, report: TickReport,
                        seen: dict[str, Any]) -> list[str]:
    """The report went out once, to the four managers, with every ticket of the month in its
    ledger (the rows of the xlsx sent), its recurrences counted and the drills line in its
    summary; the claim tick did nothing else."""
    problems = [f"{job} failed: {error}" for job, error in report.failed.items()]
    if report.acted() != {"monthly": 1}:
        problems.append(f"the claim tick did {report.acted()}, expected only monthly 1")
    closure: MonthlyClosure | None = seen.get("closure")
    if closure is None:
        problems.append("closure_for was not called")
    elif closure.recurrences.count != setup.recurrences:
        problems.append(f"{closure.recurrences.count} recurrences, expected {setup.recurrences}")
    if seen.get("ledger rows") != setup.filed:
        problems.append(f"{seen.get('ledger rows')} ledger rows read, expected {setup.filed}")
    markdown = str(seen.get("markdown", ""))
    year = setup.month[:4]
    for wanted in ([f"复发隐患**（本月{setup.recurrences}项）"] if setup.recurrences else []) \
            + ([f"应急演练（{year}年累计）"] if setup.plans else []):
        if wanted not in markdown:
            problems.append(f"summary lacks {wanted!r}")
    queued = await sql.fetch(
        "SELECT m.idempotency_key AS key, m.payload AS payload, count(d.id) AS deliveries "
        "FROM outbox_message m JOIN outbox_delivery d ON d.message_id = m.id "
        "WHERE m.created_at = $1 AND m.idempotency_key LIKE 'monthly:%' "
        "GROUP BY m.id, m.idempotency_key, m.payload ORDER BY 1", setup.at)
    keys = [f"monthly:{setup.month}:{part}" for part in ("chart", "ledger", "text")]
    if [q["key"] for q in queued] != keys or \
            any(q["deliveries"] != MONTHLY_RECIPIENTS for q in queued):
        problems.append(f"outbox: {[(q['key'], q['deliveries']) for q in queued]}")
    else:
        payload = queued[1]["payload"]
        media = (json.loads(payload) if isinstance(payload, str) else payload)["media"]
        assert isinstance(jobs.media, FolderStore)
        rows = await asyncio.to_thread(xlsx_rows, await jobs.media.get(media))
        if rows != setup.filed + 1:
            problems.append(f"the xlsx sent has {rows} rows, expected {setup.filed} and a header")
    return problems


def xlsx_rows(workbook: bytes) -> int:
    """The rows of the first sheet, counted in its XML (openpyxl would take seconds)."""
    with zipfile.ZipFile(io.BytesIO(workbook)) as book, \
            book.open("xl/worksheets/sheet1.xml") as sheet:
        rows, tail = 0, b""
        while chunk := sheet.read(1 << 20):
            rows += (tail + chunk).count(b"<row ") - tail.count(b"<row ")
            tail = chunk[-8:]
    return rows


async def measure_monthly(jobs: Jobs, sql: Sql, setup: MonthlySetup, args: argparse.Namespace,
                          total: int, due: int, minute_tick: Callable[[Jobs], Awaitable[Tick]]
                          ) -> MonthlyRun:
    """The day's other periods claimed, so the tick on the 1st runs the monthly job and the
    minute jobs (which find nothing due on the 1st: the loaded steps fall due around `NOW`)."""
    day = setup.at.astimezone(jobs.policy.tz)
    for job in ("risk", "digest", "plans"):
        await sql.execute("INSERT INTO job_run (key, ran_at) VALUES ($1, $2) "
                          "ON CONFLICT (key) DO NOTHING", f"{job}:{day:%Y-%m-%d}", NOW)
    first = None
    rounds = []
    for i in range(args.warmup + args.monthly_rounds):
        one = await monthly_once(jobs, sql, setup, minute_tick, args.monthly_tick_every)
        if i == 0:
            first = one
        if i >= args.warmup:
            rounds.append(one)
    return MonthlyRun(total, setup, due, first if args.warmup else None, rounds)


def report_monthly(args: argparse.Namespace, run: MonthlyRun, alone: float | None) -> bool:
    """`alone`: the p50 of the same minute tick without a report, from the rows above."""
    s = run.setup
    print(f"\n### Monthly report (`--monthly`), {run.total:,} tickets\n")
    print(f"- tick at {s.at.astimezone(TZ):%Y-%m-%d %H:%M} Asia/Shanghai claims the report on "
          f"{s.month}: {s.filed:,} tickets filed in it (ledger rows), {s.recurrences:,} of them "
          f"recurrences ({s.recurrences / max(1, s.filed):.1%}), {s.repeated:,} reported more "
          f"than once; {s.plans} plans, {s.drills} closed drills in {s.month[:4]}")
    print(f"- while the report is built, a minute tick at {NOW.astimezone(TZ):%Y-%m-%d %H:%M} "
          f"with {run.due:,} steps due every {args.monthly_tick_every:g} s")
    print(f"- {len(run.rounds)} measured rounds after {args.warmup} unmeasured; each round "
          "deletes the last one's outbox rows and its `monthly:` job_run rows first")
    if run.first is not None:
        print(f"- first, unmeasured round: claim tick {run.first.claim * 1000:,.0f} ms, report "
              f"queued after {run.first.report * 1000:,.0f} ms")
    print()
    parts = ["claim", "report", *(p for p in MONTHLY_ORDER if any(p in r.parts
                                                                  for r in run.rounds)),
             "ticks", "tick p50", "tick max", "stall"]
    print("| | " + " | ".join(MONTHLY_LABELS.get(p, p) for p in parts) + " |")
    print("|---|" + "---:|" * len(parts))
    for label, p in (("p50", 50), ("p90", 90)):
        print(f"| {label} | " + " | ".join(
            f"{run.ms(p, part):,.0f}" if part == "ticks" else f"{run.ms(p, part):,.1f}"
            for part in parts) + " |")
    problems = Counter(p for r in run.rounds for p in r.problems)
    print()
    if problems:
        print("- check: " + "; ".join(f"{n}× {p}" for p, n in problems.items()))
    else:
        print(f"- check: in all {len(run.rounds)} rounds the claim tick did nothing but claim; "
              f"the report queued the summary, the chart and the ledger once each to the "
              f"{MONTHLY_RECIPIENTS} managers; the xlsx had the {s.filed:,} tickets, "
              f"{s.recurrences:,} recurrences counted, the drills line in the summary; every "
              "minute tick during it passed its checks")
    during = [t.seconds for r in run.rounds for t in r.ticks]
    print(f"\nverdict (monthly): the tick on the 1st takes {run.ms(50, 'claim'):,.1f} ms "
          f"(median); the {len(during)} minute ticks ({run.due:,} due) run while reports were "
          f"built took p50 {run.during(50):,.1f} ms, p90 {run.during(90):,.1f} ms, max "
          f"{run.during(100):,.1f} ms"
          + (f" (alone, in the row above: p50 {alone:,.1f} ms)" if alone is not None else "")
          + f", against the {TARGET_MS:.0f} ms tick target: "
          f"{'within' if run.during(50) < TARGET_MS else 'OVER'}; the report was queued "
          f"{run.ms(50, 'report') / 1000:,.1f} s after the claim (median); the event loop "
          f"stood still for up to {run.ms(50, 'stall'):,.0f} ms at a time (median of the rounds)")
    return not problems


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class Scenario:
    total: int
    open: int
    due: int
    daily: bool
    ticks: list[Tick]
    alarms: int

    @property
    def fired(self) -> int:
        return min(self.due, BATCH)

    def ms(self, p: float, part: str | None = None) -> float:
        values = sorted((t.parts.get(part, math.nan) if part else t.seconds) * 1000
                        for t in self.ticks)
        return values[max(0, math.ceil(p / 100 * len(values)) - 1)] if values else math.nan


def report(args: argparse.Namespace, info: dict[str, str], scenarios: Sequence[Scenario],
           loads: dict[int, float]) -> bool:
    print("\n## Tick benchmark\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- now: {NOW.astimezone(TZ):%Y-%m-%d %H:%M} Asia/Shanghai ({NOW:%H:%M} UTC), "
          f"a working Tuesday; due steps in the {DUE_WINDOW} s before it; "
          f"{args.open_share:.0%} of tickets open")
    print("- load (COPY + alarms + VACUUM ANALYZE): "
          + ", ".join(f"{n:,} tickets {s:.0f} s" for n, s in loads.items()))
    print(f"- {args.rounds} measured rounds per row after {args.warmup} unmeasured; "
          "p90 is nearest-rank (with 7 rounds: the slowest)\n")
    parts = [j for j in JOB_ORDER if any(j in t.parts for s in scenarios for t in s.ticks)]
    print("| tickets | open | alarm rows | due | fired | daily jobs | tick p50 ms | p90 ms | "
          + " | ".join(f"{p} p50" for p in parts) + " | checks |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|" + "---:|" * len(parts) + "---|")
    ok = True
    for s in scenarios:
        problems = [p for t in s.ticks for p in t.problems]
        ok &= not problems
        print(f"| {s.total:,} | {s.open:,} | {s.alarms:,} | {s.due:,} | {s.fired:,} | "
              f"{'run' if s.daily else 'claimed'} | {s.ms(50):.1f} | {s.ms(90):.1f} | "
              + " | ".join(f"{s.ms(50, p):.1f}" for p in parts)
              + f" | {'ok' if not problems else 'FAILED'} |")
    print()
    for s in scenarios:
        counted = Counter(p for t in s.ticks for p in t.problems)
        label = f"{s.total:,} tickets, {s.due:,} due{', daily jobs run' if s.daily else ''}"
        if counted:
            print(f"- check {label}: " + "; ".join(f"{n}× {p}" for p, n in counted.items()))
        else:
            print(f"- check {label}: in all {len(s.ticks)} rounds the {s.fired:,} earliest due "
                  "steps were sent once each, nothing else fired, "
                  f"{s.due - s.fired:,} left due, one message per recipient, kind and "
                  "urgency")
    steady = [s for s in scenarios if not s.daily and s.due == args.target_due
              and s.total == max(args.totals)]
    if steady:
        s = steady[0]
        met = s.ms(50) < TARGET_MS
        print(f"\nverdict: {s.total:,} tickets, {s.due:,} due: median {s.ms(50):.1f} ms, "
              f"p90 {s.ms(90):.1f} ms, target < {TARGET_MS:.0f} ms: "
              f"{'met' if met else 'MISSED'}")
    return ok


# ---------------------------------------------------------------------------------------------
# Main


def int_list(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {text!r}"
                                         ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected numbers ≥ 0: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--totals", type=int_list, default=[100_000, 1_000_000],
                   help="ticket totals to measure at, grown in place (default 100000,1000000)")
    p.add_argument("--due", type=int_list, default=[0, 1000, 5000],
                   help="steps due at the measured instant (default 0,1000,5000)")
    p.add_argument("--open-share", type=float, default=0.1,
                   help="share of tickets that are open (default 0.1: 100,000 of 1,000,000)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1, help="unmeasured ticks per row")
    p.add_argument("--daily", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure, at the largest total, the tick that runs the day's "
                        "risk status and digest (default on)")
    p.add_argument("--areas", type=int, default=150)
    p.add_argument("--target-due", type=int, default=1000,
                   help="the row the verdict is about, at the largest total")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test",
                   help="a database to connect to for CREATE/DROP DATABASE")
    p.add_argument("--monthly", action="store_true",
                   help="also time, at the largest total, the tick on the 1st that sends the "
                        "monthly report (default off)")
    p.add_argument("--monthly-month", default=[LAST_MONTH], type=lambda text: text.split(","),
                   help="the months reported, comma-separated, each by its own tick on the 1st "
                        "after it (default: the month before the loaded data's now, 2026-11)")
    p.add_argument("--monthly-rounds", type=int, default=5,
                   help="measured monthly ticks, after --warmup unmeasured ones (default 5)")
    p.add_argument("--recur-share", type=float, default=0.05,
                   help="share of the month's filed tickets marked as recurrences (default 0.05)")
    p.add_argument("--monthly-due", type=int, default=1000,
                   help="steps due at each minute tick run while the report is built "
                        "(PostgreSQL; at most max(--due); default 1000)")
    p.add_argument("--monthly-tick-every", type=float, default=1.0,
                   help="seconds between the minute ticks run while the report is built "
                        "(default 1)")
    p.add_argument("--database", choices=("postgres", "sqlite"), default="postgres",
                   help="sqlite: a file of its own, the largest total, the monthly part only "
                        "(default postgres)")
    p.add_argument("--drills", type=int, default=6,
                   help="closed drills of the shipped plans in the month's year (default 6)")
    args = p.parse_args(argv)
    args.totals = sorted(set(args.totals))
    if args.rounds < 1 or args.warmup < 0:
        p.error("--rounds must be at least 1 and --warmup at least 0")
    if not 0 < args.open_share <= 1:
        p.error("--open-share must be in (0, 1]")
    if args.monthly:
        try:
            for month in args.monthly_month:
                month_window(month, TZ)
        except ValueError as exc:
            p.error(f"--monthly-month: {exc}")
        if args.monthly_rounds < 1 or not 0 <= args.recur_share <= 1 \
                or not 0 <= args.drills <= args.areas:
            p.error("--monthly-rounds must be at least 1, --recur-share in [0, 1], "
                    "--drills in [0, --areas]")
    if args.database == "sqlite":
        if not args.monthly:
            p.error("--database sqlite measures the monthly report only: give --monthly")
        args.due = [0]
    smallest_open = round(args.totals[0] * args.open_share)
    if max(args.due) > smallest_open:
        p.error(f"--due {max(args.due)} needs at least that many open tickets in the first "
                f"total ({smallest_open})")
    return args


def version() -> str:
    """The commit, marked when the scheduler or models differ from it (others edit as we run)."""
    base = code_version()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "scheduler", "models"],
                               cwd=ROOT, check=True, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        if dirty and "uncommitted" not in base:
            base += " + uncommitted changes in scheduler/models"
    return base


def make_jobs(media: Path) -> Jobs:
    """The service's scheduler with its default configuration, as tests/test_scheduler.py
    builds it."""
    settings = load_settings({})
    policy = load_policy(settings.schedule, settings.tz)
    if policy.calendar.opened_at(NOW) is None:
        raise BenchError(f"{NOW} is quiet time in config/calendar.toml; pick a working hour")
    return Jobs(policy, load_catalog(ROOT / "config" / "categories.toml"), FolderStore(media),
                "wecom")


def with_drill_rules(jobs: Jobs) -> Jobs:
    """The scheduler as the service builds it for the monthly report: with config/drills.toml
    (`bot.app.scheduled_jobs`), which `make_jobs` leaves out as the minute tick never reads it."""
    return dataclasses.replace(jobs, drills=load_drill_rules(load_settings({}).emergency))


async def measure(jobs: Jobs, conn: asyncpg.Connection, pool: Sequence[DueStep], due: int,
                  args: argparse.Namespace, daily: bool) -> list[Tick]:
    periods = daily_periods(jobs)
    claimed = periods[:2] if daily else []    # the day's risk status and digest run again
    ticks = []
    for i in range(args.warmup + args.rounds):
        tick = await tick_once(jobs, conn, pool, due, claimed)
        if i >= args.warmup:
            ticks.append(tick)
    await restore(conn, pool[:due], [])
    await claim(conn, periods)
    return ticks


async def bench(args: argparse.Namespace, code: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    plant = Plant(args.areas)
    with tempfile.TemporaryDirectory(prefix="safetybot-tickbench-") as tmp:
        jobs = make_jobs(Path(tmp) / "media")
        roster = Path(tmp) / "roster.toml"
        plant.write_roster(roster)
        catalog = load_catalog(ROOT / "config" / "categories.toml")
        gen = Generator(plant, jobs.policy.ladder, [c.code for c in catalog.categories],
                        args.open_share, max(args.due))
        if args.database == "sqlite":
            return await bench_sqlite(args, code, Path(tmp) / "bench.sqlite3", jobs, plant,
                                      roster, gen)
        scenarios: list[Scenario] = []
        loads: dict[int, float] = {}
        monthly: list[MonthlyRun] = []
        async with fresh_database(args.admin_dsn) as dsn:
            info = await machine_info(dsn) | {"service code": code}
            print("migrate, load-org …", file=sys.stderr)
            await migrate(dsn)
            ctx = await open_database(dsn)
            conn = await asyncpg.connect(dsn)
            try:
                with ctx:
                    await load_org(roster, NOW - timedelta(days=800),
                                   FolderStore(Path(tmp) / "media"))
                    await claim(conn, daily_periods(jobs))
                    loaded = 0
                    pool: list[DueStep] = []
                    for total in args.totals:
                        print(f"loading {total - loaded:,} tickets …", file=sys.stderr)
                        loads[total] = await load_tickets(conn, gen, total - loaded)
                        loaded = total
                        pool = await due_pool(conn, gen.pool_ids)
                        alarms = await conn.fetchval("SELECT count(*) FROM alarm")
                        n_open = await conn.fetchval(
                            "SELECT count(*) FROM ticket WHERE status = 'open'")
                        runs = [(due, False) for due in args.due]
                        if args.daily and total == args.totals[-1]:
                            runs.append((args.target_due, True))
                        for due, daily in runs:
                            print(f"{total:,} tickets, {due:,} due"
                                  f"{', daily jobs' if daily else ''} …", file=sys.stderr)
                            await set_due(conn, pool, due)
                            if daily:    # settle the areas' statuses: later days change few
                                await tick_once(jobs, conn, pool, due, daily_periods(jobs)[:2])
                            ticks = await measure(jobs, conn, pool, due, args, daily)
                            scenarios.append(Scenario(total, n_open, due, daily, ticks, alarms))
                    if args.monthly:
                        due = min(args.monthly_due, len(pool))
                        await set_due(conn, pool, due)
                        monthly = await monthly_runs(
                            args, jobs, Sql(conn), plant,
                            lambda scheduler: tick_once(scheduler, conn, pool, due, []), due)
                        await restore(conn, pool[:due], [])
            finally:
                await conn.close()
                await ctx.close_connections()
    ok = report(args, info, scenarios, loads)
    for run in monthly:
        alone = [s.ms(50) for s in scenarios if not s.daily and s.due == run.due
                 and s.total == run.total]
        ok &= report_monthly(args, run, alone[0] if alone else None)
    return 0 if ok else 2


async def monthly_runs(args: argparse.Namespace, jobs: Jobs, sql: Sql, plant: Plant,
                       minute_tick: Callable[[Jobs], Awaitable[Tick]], due: int
                       ) -> list[MonthlyRun]:
    plans = await plant_drills(plant, args.monthly_month, TZ, args.drills)
    jobs = with_drill_rules(jobs)
    runs = []
    for month in args.monthly_month:
        print(f"{args.totals[-1]:,} tickets, monthly report on {month} …", file=sys.stderr)
        setup = await plant_month(sql, month, TZ, args.recur_share, plans)
        runs.append(await measure_monthly(jobs, sql, setup, args, args.totals[-1], due,
                                          minute_tick))
    return runs


# ---------------------------------------------------------------------------------------------
# SQLite (`--database sqlite`): the monthly part only


def load_sqlite(path: Path, gen: Generator, count: int) -> float:
    """`count` tickets, and the ladders of the open ones, inserted by one sqlite3 connection of
    the benchmark's (in a thread); returns the seconds it took. Closed tickets' alarm rows are
    left out: the monthly report never reads them, and the minute ticks run with nothing due."""
    started = time.perf_counter()
    closed, opened = gen.batch(count)

    def insert(table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(columns))
        db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                       (tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row)
                        for row in rows))

    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous = OFF")
        with db:
            insert("ticket", TICKET_COLUMNS, iter(closed))
            insert("ticket", TICKET_COLUMNS, (o.ticket for o in opened))
            insert("alarm", ALARM_COLUMNS, (a for o in opened for a in o.alarms))
        db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - started


async def bench_sqlite(args: argparse.Namespace, code: str, path: Path, jobs: Jobs,
                       plant: Plant, roster: Path, gen: Generator) -> int:
    """The monthly report on a SQLite file: the tick on the 1st, the report's time, and a
    minute tick (nothing due) every `--monthly-tick-every` seconds while it is built."""
    url = f"sqlite://{path}"
    print("migrate, load-org …", file=sys.stderr)
    # A loop of its own, as `safetybot migrate` runs it (its connection closes with it).
    await asyncio.to_thread(asyncio.run, migrate(url))
    info = {"nproc": str(len(os.sched_getaffinity(0))),
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
            "load average": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "service code": code}
    total = args.totals[-1]
    print(f"loading {total:,} tickets …", file=sys.stderr)
    loaded = await asyncio.to_thread(load_sqlite, path, gen, total)
    ctx = await open_database(url)
    try:
        with ctx:
            await load_org(roster, NOW - timedelta(days=800))
            sql = Sql(None)
            for key in daily_periods(jobs):
                await sql.execute("INSERT INTO job_run (key, ran_at) VALUES ($1, $2)", key, NOW)

            async def minute_tick(jobs: Jobs) -> Tick:
                parts: dict[str, float] = {}
                with timed_parts(jobs, parts):
                    started = time.perf_counter()
                    report = await jobs.tick(NOW)
                    seconds = time.perf_counter() - started
                return Tick(seconds, parts, report, [f"{job} failed: {error}" for job, error
                                                     in report.failed.items()])

            print(f"{total:,} tickets, the minute tick alone …", file=sys.stderr)
            alone = [await minute_tick(jobs) for _ in range(args.warmup + args.rounds)]
            monthly = await monthly_runs(args, jobs, sql, plant, minute_tick, 0)
    finally:
        await ctx.close_connections()
    print("\n## Tick benchmark (SQLite, the monthly report only)\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- load (sqlite3 executemany, open tickets' alarms only): {total:,} tickets "
          f"{loaded:.0f} s")
    measured = [t.seconds for t in alone[args.warmup:]]
    print(f"- the minute tick alone (nothing due), {len(measured)} rounds after {args.warmup} "
          f"unmeasured: p50 {nearest_rank(measured, 50) * 1000:,.1f} ms, p90 "
          f"{nearest_rank(measured, 90) * 1000:,.1f} ms")
    ok = all(not t.problems for t in alone)
    for run in monthly:
        ok &= report_monthly(args, run, nearest_rank(measured, 50) * 1000)
    return 0 if ok else 2


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("tick_bench", bench(parse_args(argv), version()), "database dropped")


if __name__ == "__main__":
    sys.exit(main())
