"""Qualification benchmark: the daily certificate job and the pre-work check on PostgreSQL.

(a) **The daily job** (`Jobs._certificates`, what the day's first tick after the digest time
runs): a table of `--totals` certificates held by `--people` people, their due dates spread
over the next three years, each row in the state the job would have left it in had it run
every day until yesterday (reminders sent, recipients frozen, 2% lapsed long ago), and `--due`
rows whose day is today: a quarter each at their 60-, 30- and 7-day reminder and at their lapse
(the mix a uniform spread of due dates gives). Timed: the job's run, `--rounds` times per
row of the table, each round from the same state (the rows, messages and records it wrote
are put back, the table vacuumed). Target: under 1 s with 300 due (0.3% of 100,000).

(b) **The pre-work check** (开工前资格校验): `pre_work_check`, the one measured call, fetches a
crew of `--crew` people named from the `--pool` people who have profiles (posts, hire dates,
10% contractor workers with their admission), certificates among the table's and training
records, then `judge` and `record_check` (the check row and a record in each person's chain).
Checks arrive on a fixed schedule (open loop: latency counts from the scheduled start, so a
queue cannot hide), ramping from a fifth of `--rate` a minute to `--rate` over `--ramp`
seconds, then steady for `--minutes`; then `--burst` checks at one instant. Target: p95 under
300 ms at 50 checks a minute.

With `--chat`, (b) as a team lead experiences it: the service as deployed (`--targets split`:
`serve --no-workers` + `work`; `single`: `serve`) on the first total's data, with one area
(3号车间), and the WeCom simulator in this process. Each check is the lead's
`开工 <work> 3号车间 <the crew's names>`, an encrypted text callback sent at the schedule's
time; its latency runs from then until the simulator accepted the answer's Markdown
(`开工前资格校验 KG-…`). Five warm-up checks and the scheduler's first tick come first. The
in-process call runs beside it on the same data and schedule (unless `--no-check`), for the
ratio; (a) and (c) are not run.

    PYTHONPATH=. .venv/bin/python benchmarks/qualification_bench.py [--totals 100000,1000000]
        [--due 300,3000] [--rounds 5] [--people 50000] [--pool 2000] [--crew 20] [--rate 50]
        [--ramp 60] [--minutes 3] [--burst 20] [--no-check] [--admin-dsn DSN]
        [--chat [--targets split,single] [--latency 0.05] [--worker-nice 10] [--py-spy PATH]]

PostgreSQL is the server at `--admin-dsn`; each total gets a fresh database of the run's own,
migrated, dropped at the end (also on failure, Ctrl-C or SIGTERM, after the service's
processes are stopped). The check runs on the first total's. Prints Markdown on stdout;
exits 2 when a target is missed, 1 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_bench import (  # noqa: E402
    BenchError,
    code_version,
    fresh_database,
    log_summary,
    machine_info,
    median,
    run_bench,
)
from benchmarks.emergency_bench import STEP_TIMEOUT, until, wait_idle  # noqa: E402
from benchmarks.report_bench import (  # noqa: E402
    BenchSimulator,
    Target,
    make_targets,
    process_cpu,
    start_target,
    text_of,
)
from benchmarks.tick_bench import nearest_rank  # noqa: E402
from bot.db import POSTGRES_POOL_SIZE, migrate, open_database  # noqa: E402
from bot.media.folder import FolderStore  # noqa: E402
from bot.qualification import load_rules  # noqa: E402
from bot.scheduling import load_policy  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from models.catalog import load_catalog  # noqa: E402
from models.closure import month_window  # noqa: E402
from models.org import RiskColor, User  # noqa: E402
from models.people.certificates import next_reminder  # noqa: E402
from models.people.checks import (  # noqa: E402
    Proposal,
    QualificationCheck,
    judge,
    record_check,
)
from models.people.records import digest_of  # noqa: E402
from models.people.rules import QualificationRules, WorkType  # noqa: E402
from scheduler.jobs import Jobs  # noqa: E402
from scheduler.qualification import digest_lines, month_lines  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 12, 8)                                 # a Tuesday, a working day
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=TZ).astimezone(UTC)   # after the 08:20 digest time
JOB_TARGET_MS = 1000.0      # with TARGET_DUE due: 0.3% of 100,000, on a table of any size
TARGET_DUE = 300
CHECK_TARGET_MS = 300.0
MANAGERS = ("sm01", "sm02", "sm03")
TEAM = 25                   # people per team lead, their supervisor
LAPSED_SHARE = 0.02         # rows lapsed long ago: no longer due, still in the table
CHUNK = 50_000              # rows generated and copied at a time
# Person certificates, the pool's posts and the certificate each post's people hold first.
TYPES = ("T-EL-LV", "T-EL-HV", "T-WELD", "T-HIGH", "T-SCAF", "T-COLD", "S-N1", "S-Q1", "S-Q2",
         "M-SAFETY")
POSTS = (("电工", "T-EL-LV"), ("焊工", "T-WELD"), ("叉车司机", "S-N1"), ("操作工", "T-HIGH"))
# The work checked, and the post (index in POSTS) a crew for it is mostly made of.
WORK = (("动火作业", 1), ("临时用电", 0), ("高处作业", 3), ("叉车作业", 2), ("受限空间作业", 3))
OUTSIDERS = 0.1             # of a crew, from other posts (a helper, a new hand)
CONTRACTORS = 10
CONTRACTOR_SHARE = 0.1


def person(i: int) -> str:
    return f"p{i:06d}"


def lead(i: int) -> str:
    return f"ld{i // TEAM:05d}"


# ---------------------------------------------------------------------------------------------
# The table of certificates


@dataclass(frozen=True, slots=True)
class State:
    """What the job reads and writes on a row."""

    expires_on: date
    review_on: date | None
    remind_on: date | None
    reminded: tuple[int, ...]
    notify: tuple[str, ...]
    lapsed_on: date | None


def told(holder: int) -> tuple[str, ...]:
    return (person(holder), lead(holder), *MANAGERS)


def dates(code: str, due: date) -> tuple[date, date | None]:
    """(expiry, review): a special-operations certificate is due at its review."""
    return (due + timedelta(days=3 * 365), due) if code.startswith("T-") else (due, None)


def settled(code: str, holder: int, due: date, days: Sequence[int]) -> State:
    """The row as the job leaves it when it has run every day until yesterday."""
    reminded = tuple(d for d in days if due - timedelta(days=d) < TODAY)
    expires, review = dates(code, due)
    if due < TODAY:
        return State(expires, review, None, reminded, told(holder), due + timedelta(days=1))
    return State(expires, review, next_reminder(due, reminded, days), reminded,
                 told(holder) if reminded else (), None)


def due_today(code: str, holder: int, kind: int, days: Sequence[int]) -> State:
    """Due today: `kind` 0, 1, 2 at the 60-, 30-, 7-day reminder, 3 at the lapse."""
    before = (*sorted(days, reverse=True), -1)[kind]
    due = TODAY + timedelta(days=before)
    reminded = tuple(sorted(days, reverse=True)[:kind])
    expires, review = dates(code, due)
    return State(expires, review, TODAY, reminded, told(holder) if reminded else (), None)


class Table:
    """The generated rows, by id (1…total): holder n // per, each holder's types distinct (a
    pool member's first the post's), due dates spread over three years. Only the `most_due`
    rows picked to be made due (outside the pool, so the checks' data stays put) are kept."""

    def __init__(self, total: int, people: int, pool: int, days: tuple[int, ...],
                 most_due: int, rng: random.Random) -> None:
        self.total, self.people, self.pool, self.days, self.rng = total, people, pool, days, rng
        self.per = -(-total // people)
        if self.per > len(TYPES):
            raise BenchError(f"{total:,} certificates for {people:,} people: at most "
                             f"{len(TYPES)} each")
        self.selected = rng.sample(range(pool * self.per + 1, total + 1), most_due)
        self.position = {cert_id: n for n, cert_id in enumerate(self.selected)}
        self.base: dict[int, State] = {}

    def holder(self, cert_id: int) -> int:
        return (cert_id - 1) // self.per

    def code(self, cert_id: int) -> str:
        h = self.holder(cert_id)
        first = [POSTS[h % len(POSTS)][1]] if h < self.pool else []
        rotated = TYPES[h % len(TYPES):] + TYPES[:h % len(TYPES)]
        return list(dict.fromkeys([*first, *rotated]))[(cert_id - 1) % self.per]

    def rows(self, start: int, end: int) -> Iterator[tuple[int, str, int, State]]:
        """(id, type, holder, state) of ids start…end - 1, as the job left them yesterday."""
        for cert_id in range(start, end):
            code, holder = self.code(cert_id), self.holder(cert_id)
            if cert_id not in self.position and self.rng.random() < LAPSED_SHARE:
                due = TODAY - timedelta(days=self.rng.randint(2, 365))
            else:
                due = TODAY + timedelta(days=self.rng.randint(1, 3 * 365))
                sent = [d for d in self.days if due - timedelta(days=d) < TODAY]
                if next_reminder(due, sent, self.days) == TODAY:
                    due += timedelta(days=1)
            state = settled(code, holder, due, self.days)
            if cert_id in self.position:
                self.base[cert_id] = state
            yield cert_id, code, holder, state

    def state(self, cert_id: int, due: int) -> State:
        """The row's state with the first `due` selected rows due today."""
        position = self.position[cert_id]
        if position < due:
            return due_today(self.code(cert_id), self.holder(cert_id), position % 4, self.days)
        return self.base[cert_id]


def state_row(cert_id: int, s: State) -> tuple[Any, ...]:
    return (cert_id, s.expires_on, s.review_on, s.remind_on, json.dumps(list(s.reminded)),
            json.dumps(list(s.notify)), s.lapsed_on)


STATE_COLUMNS = ("id", "expires_on", "review_on", "remind_on", "reminded", "notify", "lapsed_on")


async def set_states(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Put rows back into the states given, outside any timing."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS state_in (id bigint, expires_on date, "
                       "review_on date, remind_on date, reminded jsonb, notify jsonb, "
                       "lapsed_on date)")
    await conn.execute("TRUNCATE state_in")
    await conn.copy_records_to_table("state_in", records=rows, columns=STATE_COLUMNS)
    await conn.execute(
        "UPDATE certificate c SET expires_on = s.expires_on, review_on = s.review_on, "
        "remind_on = s.remind_on, reminded = s.reminded, notify = s.notify, "
        "lapsed_on = s.lapsed_on FROM state_in s WHERE c.id = s.id")


# ---------------------------------------------------------------------------------------------
# Loading


class Chains:
    """Each holder's chain of records, written as `append_many` would (real digests)."""

    def __init__(self) -> None:
        self.heads: dict[str, tuple[int, str]] = {}

    def record(self, holder: str, kind: str, at: datetime, actor: str, data: dict[str, Any]
               ) -> tuple[Any, ...]:
        seq, prev = self.heads.get(holder, (0, ""))
        content = json.loads(json.dumps(data, ensure_ascii=False, default=str))
        digest = digest_of(holder, seq + 1, kind, at, actor, content, prev)
        self.heads[holder] = (seq + 1, digest)
        return (holder, seq + 1, kind, at, actor, json.dumps(content, ensure_ascii=False),
                prev, digest)


RECORD_COLUMNS = ("holder", "seq", "kind", "at", "actor", "data", "prev", "digest")


async def load_people(conn: asyncpg.Connection, people: int) -> None:
    await conn.execute(
        "INSERT INTO org_user (id, name, roles, supervisor_id, mobile, active, platform, "
        "platform_id, source) SELECT id, id, '[\"safety_manager\"]', NULL, '', true, '', '', "
        "'roster' FROM unnest($1::text[]) AS id", list(MANAGERS))
    leads = sorted({lead(i) for i in range(people)})
    await conn.execute(
        "INSERT INTO org_user (id, name, roles, supervisor_id, mobile, active, platform, "
        "platform_id, source) SELECT id, '班长' || id, '[\"worker\", \"reviewer\"]', 'sm01', '', "
        "true, '', '', 'roster' FROM unnest($1::text[]) AS id", leads)
    await conn.execute(
        "INSERT INTO org_user (id, name, roles, supervisor_id, mobile, active, platform, "
        "platform_id, source) SELECT 'p' || lpad(i::text, 6, '0'), '员工' || i, '[\"worker\"]', "
        f"'ld' || lpad((i / {TEAM})::text, 5, '0'), '', true, '', '', 'roster' "
        "FROM generate_series(0, $1 - 1) AS i", people)


async def load_certificates(conn: asyncpg.Connection, table: Table, chains: Chains) -> None:
    at = NOW - timedelta(days=400)
    for start in range(1, table.total + 1, CHUNK):
        rows, records = [], []
        for cert_id, code, holder, s in table.rows(start, min(start + CHUNK, table.total + 1)):
            number = f"N{cert_id:08d}"
            rows.append((cert_id, "person", person(holder), code, number, None, s.expires_on,
                         s.review_on, None, "active", "import", s.remind_on,
                         json.dumps(list(s.reminded)), json.dumps(list(s.notify)),
                         s.lapsed_on, at, at))
            records.append(chains.record(person(holder), "certificate", at, "import", {
                "event": "registered", "type": code, "number": number, "issued_on": None,
                "expires_on": s.expires_on, "review_on": s.review_on, "photo": None,
                "source": "import"}))
        await conn.copy_records_to_table("certificate", records=rows, columns=(
            "id", "holder_kind", "holder_id", "type_code", "number", "issued_on", "expires_on",
            "review_on", "photo", "status", "source", "remind_on", "reminded", "notify",
            "lapsed_on", "added_at", "updated_at"))
        await conn.copy_records_to_table("person_record", records=records,
                                         columns=RECORD_COLUMNS)
    await conn.execute("SELECT setval(pg_get_serial_sequence('certificate', 'id'), $1)",
                       table.total)


def training_of(i: int, hired: date, rng: random.Random) -> Iterator[tuple[str, float, date]]:
    """A person's courses: the entry training, yearly refreshers, their post's work courses,
    a few others; ~12 each."""
    yield "三级安全教育", 24.0, hired
    day = hired + timedelta(days=365)
    while day <= TODAY:
        yield "年度安全再培训", 12.0, day
        day += timedelta(days=180)
    if POSTS[i % len(POSTS)][0] == "焊工" or rng.random() < 0.3:
        yield "动火作业安全", 4.0, TODAY - timedelta(days=rng.randint(30, 600))
    if rng.random() < 0.5:
        yield "有限空间作业安全", 4.0, TODAY - timedelta(days=rng.randint(30, 600))
    for k in range(rng.randint(2, 5)):
        yield f"班组安全活动{k}", 2.0, TODAY - timedelta(days=rng.randint(1, 700))


async def load_pool(conn: asyncpg.Connection, pool: int, chains: Chains,
                    rng: random.Random) -> None:
    """The people whom crews are made of: profiles, training, contractors and admissions."""
    at = NOW - timedelta(days=30)
    until = TODAY + timedelta(days=365)
    await conn.executemany(
        "INSERT INTO contractor (id, name, responsible, phone, contract_end, blacklisted, "
        "active) VALUES ($1, $2, '', '', $3, '', true)",
        [(f"c{k:02d}", f"承包商{k:02d}", until) for k in range(CONTRACTORS)])
    profiles, training, admissions, records = [], [], [], []
    for i in range(pool):
        pid = person(i)
        hired = TODAY - timedelta(days=rng.randint(200, 3000))
        company = f"c{i % CONTRACTORS:02d}" if rng.random() < CONTRACTOR_SHARE else None
        profiles.append((pid, POSTS[i % len(POSTS)][0], hired, hired, company, "", ""))
        if company:
            admissions.append((pid, company, "admitted", '["动火作业"]', until, "sm01", at,
                               "sm01", at, "", f"t{i:06d}"))
        for course, hours, on in training_of(i, hired, rng):
            key = f"{pid}:{course}:{on}"
            training.append((pid, course, hours, on, 90.0, True, "import", key, at))
            records.append(chains.record(pid, "training", at, "import", {
                "course": course, "hours": hours, "on": on, "score": 90.0, "passed": True,
                "source": "import"}))
    await conn.copy_records_to_table("person_profile", records=profiles, columns=(
        "person_id", "post", "hired_on", "post_since", "contractor_id", "suspended",
        "blacklisted"))
    await conn.copy_records_to_table("training_record", records=training, columns=(
        "person_id", "course", "hours", "on", "score", "passed", "source", "key", "added_at"))
    await conn.copy_records_to_table("contractor_admission", records=admissions, columns=(
        "person_id", "contractor_id", "status", "work_types", "until", "asked_by", "asked_at",
        "decided_by", "decided_at", "reason", "token"))
    await conn.copy_records_to_table("person_record", records=records, columns=RECORD_COLUMNS)


# ---------------------------------------------------------------------------------------------
# (a) The daily job


@dataclass
class JobRow:
    total: int
    due: int
    ms: list[float]
    queued: int


async def reset_day(conn: asyncpg.Connection, table: Table, due: int) -> None:
    """Back to the morning: the selected rows in the state for `due`, nothing of a run left."""
    await set_states(conn, [state_row(i, table.state(i, due)) for i in table.selected])
    await conn.execute("DELETE FROM outbox_delivery WHERE message_id IN (SELECT id FROM "
                       "outbox_message WHERE idempotency_key LIKE 'cert:%')")
    await conn.execute("DELETE FROM outbox_message WHERE idempotency_key LIKE 'cert:%'")
    await conn.execute("DELETE FROM person_record WHERE actor = 'scheduler'")
    await conn.execute("DELETE FROM job_run WHERE key LIKE 'certificates:%'")
    for name in ("certificate", "outbox_message", "outbox_delivery", "person_record"):
        await conn.execute(f"VACUUM ANALYZE {name}")


async def job_rounds(conn: asyncpg.Connection, jobs: Jobs, table: Table, due: int,
                     rounds: int) -> JobRow:
    times, queued = [], 0
    for r in range(rounds + 1):            # the first is a warm-up
        await reset_day(conn, table, due)
        started = time.perf_counter()
        queued = await jobs._certificates(NOW)
        elapsed = (time.perf_counter() - started) * 1000
        left = await conn.fetchval("SELECT count(*) FROM certificate WHERE remind_on <= $1",
                                   TODAY)
        if queued != due or left:
            raise BenchError(f"{due} due: the job queued {queued} messages and left {left} "
                             "rows due")
        if r:
            times.append(elapsed)
    await reset_day(conn, table, 0)
    return JobRow(table.total, due, times, queued)


# ---------------------------------------------------------------------------------------------
# (b) The pre-work check


async def pre_work_check(asked_by: str, crew: Sequence[str], work: WorkType,
                         rules: QualificationRules, now: datetime) -> QualificationCheck:
    """The measured call: the people named, judged for the work today, and the answer kept."""
    people = list(await User.filter(id__in=list(crew)))
    verdicts = await judge(people, work, rules, now.astimezone(TZ).date())
    return await record_check(asked_by, work, None, verdicts, now)


@dataclass
class CheckRun:
    phase: str
    done: list[tuple[float, int]]       # each check's latency (ms) and people refused
    seconds: float                      # the phase's wall time

    @property
    def latencies(self) -> list[float]:
        return [ms for ms, _ in self.done]


def schedule(rate: float, ramp: float, steady: float) -> list[float]:
    """Start times (s): the rate per minute ramping from a fifth of `rate`, then steady."""
    times, t = [], 0.0
    while t < ramp + steady:
        times.append(t)
        t += 60.0 / (rate * (0.2 + 0.8 * min(1.0, t / ramp)) if ramp else rate)
    return times


class Crews:
    """Crews of `size` from the pool: people of the work's post, and about OUTSIDERS of each
    crew from the others (a helper, a new hand)."""

    def __init__(self, pool: int, size: int, rng: random.Random) -> None:
        self.size, self.rng = size, rng
        self.by_post = [[person(i) for i in range(post, pool, len(POSTS))]
                        for post in range(len(POSTS))]
        self.everyone = [person(i) for i in range(pool)]

    def __call__(self, post: int) -> list[str]:
        outsiders = sum(self.rng.random() < OUTSIDERS for _ in range(self.size))
        named = self.rng.sample(self.by_post[post], self.size - outsiders)
        return named + self.rng.sample([p for p in self.everyone if p not in named], outsiders)


async def check_load(args: argparse.Namespace, rules: QualificationRules,
                     rng: random.Random) -> list[CheckRun]:
    crew = Crews(args.pool, args.crew, rng)

    async def one(n: int, at: float, start: float, out: list[tuple[float, int]]) -> None:
        """Check n, started `at` s after `start`; its latency counts from then."""
        work, post = WORK[n % len(WORK)]
        named = crew(post)
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        now = NOW + timedelta(seconds=time.perf_counter() - start)
        check = await pre_work_check(lead(n * TEAM % args.pool), named, rules.work_types[work],
                                     rules, now)
        out.append(((time.perf_counter() - start - at) * 1000, check.refused))

    ramp: list[tuple[float, int]] = []
    steady: list[tuple[float, int]] = []
    start = time.perf_counter()
    await asyncio.gather(*(one(n, at, start, ramp if at < args.ramp else steady)
                           for n, at in enumerate(schedule(args.rate, args.ramp,
                                                           args.minutes * 60))))
    wall = time.perf_counter() - start
    burst: list[tuple[float, int]] = []
    start = time.perf_counter()
    await asyncio.gather(*(one(n, 0.0, start, burst) for n in range(args.burst)))
    return [CheckRun(f"ramp {args.rate / 5:g}→{args.rate:g}/min", ramp, args.ramp),
            CheckRun(f"steady {args.rate:g}/min", steady, wall - args.ramp),
            CheckRun(f"burst of {args.burst} at once", burst, time.perf_counter() - start)]


# ---------------------------------------------------------------------------------------------
# (c) The reports' sections


async def report_sections(rules: QualificationRules, rounds: int) -> dict[str, list[float]]:
    """The digest's 人员资质 (every posted pool member judged, by work type) and the monthly
    report's, on this month with the checks just made: ms each round."""
    window = month_window(f"{TODAY:%Y-%m}", TZ)
    parts: dict[str, list[float]] = {"digest": [], "monthly": []}
    for _ in range(rounds):
        started = time.perf_counter()
        await digest_lines(rules, TODAY)
        parts["digest"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await month_lines(window.start, window.end)
        parts["monthly"].append((time.perf_counter() - started) * 1000)
    return parts


# ---------------------------------------------------------------------------------------------
# (b) through the chat: the service as deployed, the WeCom simulator


AREA = ("A3", "3号车间")             # code, name: the area every check names
ANSWER = "**开工前资格校验 KG-"        # how the answer's Markdown starts (handlers/qualification)
ANSWER_TIMEOUT = 60.0                # seconds a lead waits for the answer before it is failed
WARM_UP = len(WORK)                  # unmeasured checks before the clock starts, one per work
STAGES = ("callback → stored", "stored → handler", "handler → accepted")
DEPLOYMENTS = {"split": "`serve --no-workers` + `work`", "single": "`serve`"}
SCHEDULER_IDLE = re.compile(
    r'^safetybot_loop_seconds_since_success\{loop="scheduler"\} (\S+)$', re.MULTILINE)


def name_of(pid: str) -> str:
    """The name `load_people` gave a person: what a team lead types."""
    return f"员工{int(pid[1:])}"


async def load_area(conn: asyncpg.Connection) -> None:
    code, name = AREA
    await conn.execute(
        "INSERT INTO area (code, name, aliases, risk_color, groups, owner_id, reviewer_id, "
        "risk_status, risk_reason) VALUES ($1, $2, '[]', $3, '[]', $4, $5, '', '')",
        code, name, RiskColor.BLUE.value, MANAGERS[0], lead(0))


def chat_leads(pool: int, people: int) -> list[str]:
    """The senders: team leads outside the pool's teams (whose leads the in-process checks
    name), one per check, so that an answer is told apart by whom it goes to and nobody nears
    WeCom's 30 messages a minute."""
    return [lead(i) for i in range(math.ceil(pool / TEAM) * TEAM, people, TEAM)]


@dataclass(frozen=True)
class Typed:
    """One 开工 as a team lead types it, `at` s after its phase starts."""

    at: float
    lead: str
    text: str


def typed(times: Sequence[float], crews: Crews, leads: Iterator[str]) -> list[Typed]:
    """A check at each time, the work types in turn, the crew named by their names."""
    checks = []
    for n, at in enumerate(times):
        work, post = WORK[n % len(WORK)]
        names = " ".join(name_of(p) for p in crews(post))
        checks.append(Typed(at, next(leads), f"开工 {work} {AREA[1]} {names}"))
    return checks


@dataclass
class Answered:
    """A check sent through the chat; times in s from its scheduled send (`due`, monotonic)."""

    check: Typed
    due: float
    ack: float = math.nan        # the callback's HTTP answer
    answer: float = math.nan     # the simulator accepted the answer's Markdown
    error: str = ""


async def send_check(sim: BenchSimulator, check: Typed, due: float) -> Answered:
    """At `due`, the lead's encrypted callback; then the first message to the lead, which must
    be the answer."""
    done = Answered(check, due)
    await asyncio.sleep(max(0.0, due - time.monotonic()))
    seen = len(sim.messages_for(check.lead))
    try:
        status = (await sim.user(check.lead).says(check.text)).status
    except (aiohttp.ClientError, TimeoutError) as exc:
        done.error = f"callback failed: {exc!r}"
        return done
    done.ack = time.monotonic() - due
    if status != 200:
        done.error = f"callback answered {status}"
        return done
    try:
        message = await sim.message(check.lead, seen, ANSWER_TIMEOUT)
    except TimeoutError:
        done.error = f"no answer within {ANSWER_TIMEOUT:.0f} s"
        return done
    if text_of(message).startswith(ANSWER):
        done.answer = message.at - due
    else:
        done.error = f"answered {text_of(message)[:60]!r}"
    return done


async def send_all(sim: BenchSimulator, checks: Sequence[Typed], start: float
                   ) -> list[Answered]:
    return list(await asyncio.gather(*(send_check(sim, c, start + c.at) for c in checks)))


def scheduler_metrics(target: Target) -> str:
    """The metrics of the process that runs the scheduler: `work` beside `serve
    --no-workers`, else `serve`."""
    env = target.work_env if target.work_env is not None else target.env
    return f"http://127.0.0.1:{env['SAFETYBOT_PORT']}/metrics"


async def first_tick(url: str, timeout: float) -> None:  # noqa: ASYNC109
    """The scheduler's first tick has finished. It comes a tick after the start and, after the
    digest time, runs the day's digest and certificate job: once a day, not timed here."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async def ticked() -> bool:
            async with session.get(url) as resp:
                found = SCHEDULER_IDLE.search(await resp.text())
            return found is not None and float(found[1]) >= 0
        await until(ticked, timeout, "the scheduler's first tick", every=0.5)


@dataclass(frozen=True)
class ServiceRecord:
    """What the service's tables say about the checks of a run."""

    times: dict[str, tuple[float, float]]   # per lead: event stored, handler began (POSIX s)
    refused: dict[str, int]                 # per lead: the people their check refused
    proposed: int                           # checks that proposed a 重大 ticket to the managers
    waiting: dict[str, int]                 # deliveries pending at the end, by recipient


async def service_record(dsn: str, leads: Sequence[str]) -> ServiceRecord:
    conn = await asyncpg.connect(dsn)
    try:
        events = await conn.fetch(
            "SELECT user_id, received_at, processed_at FROM inbox_event "
            "WHERE user_id = ANY($1::text[]) AND processed_at IS NOT NULL", list(leads))
        checks = await conn.fetch("SELECT asked_by, refused, proposal FROM qualification_check "
                                  "WHERE asked_by = ANY($1::text[])", list(leads))
        waiting = await conn.fetch("SELECT recipient, count(*) AS n FROM outbox_delivery "
                                   "WHERE status = 'pending' GROUP BY recipient ORDER BY n DESC")
    finally:
        await conn.close()
    return ServiceRecord(
        {r["user_id"]: (r["received_at"].timestamp(), r["processed_at"].timestamp())
         for r in events},
        {r["asked_by"]: r["refused"] for r in checks},
        sum(r["proposal"] == Proposal.PROPOSED for r in checks),
        {r["recipient"]: r["n"] for r in waiting})


@dataclass
class ChatRun:
    target: str
    phases: list[CheckRun]
    stages: list[dict[str, list[float]]]    # per phase: ms of "ack" and of each of STAGES
    errors: Counter[str]
    cpu: dict[str, float]                   # CPU seconds during the phases, by process
    record: ServiceRecord


def chat_phase(name: str, answered: Sequence[Answered], seconds: float, offset: float,
               record: ServiceRecord) -> tuple[CheckRun, dict[str, list[float]]]:
    """The phase as the in-process table shows it, and where its checks' time went (ms);
    `offset` turns the monotonic clock into POSIX seconds."""
    done = [a for a in answered if not a.error]
    stages: dict[str, list[float]] = {"ack": [a.ack * 1000 for a in done]}
    for a in done:
        if a.check.lead not in record.times:
            continue
        stored, handled = record.times[a.check.lead]
        sent = a.due + offset
        for stage, ms in zip(STAGES, (stored - sent, handled - stored,
                                      a.due + a.answer + offset - handled), strict=True):
            stages.setdefault(stage, []).append(ms * 1000)
    run = CheckRun(name, [(a.answer * 1000, record.refused.get(a.check.lead, 0))
                          for a in done], seconds)
    return run, stages


async def chat_target(sim: BenchSimulator, target: Target, args: argparse.Namespace, dsn: str,
                      crews: Crews, leads: Iterator[str], index: int) -> ChatRun:
    """Start the deployment, warm it up, let the scheduler's first tick pass, then the checks
    on the schedule and the burst; stop it."""
    warm = typed([0.0] * WARM_UP, crews, leads)
    planned = typed(schedule(args.rate, args.ramp, args.minutes * 60), crews, leads)
    burst = typed([0.0] * args.burst, crews, leads)
    sim.callback_url = target.base + "/wecom/callback"
    children, profiler = await start_target(target, args.logs, args, index)
    try:
        print(f"{target.name}: warming up, waiting for the scheduler's first tick …",
              file=sys.stderr)
        for check in warm:
            done = await send_check(sim, check, time.monotonic())
            if done.error:
                raise BenchError(f"{target.name}: a warm-up check failed: {done.error}; see "
                                 f"{args.logs}")
        tick = load_settings({}).schedule.tick_seconds
        await first_tick(scheduler_metrics(target), tick + STEP_TIMEOUT)
        await wait_idle(dsn, STEP_TIMEOUT)
        # What this process holds (the in-process checks' ORM objects, the simulator's records)
        # lives to the end: a full collection would pause the simulator while it is timed.
        gc.collect()
        gc.freeze()
        print(f"{target.name}: {len(planned)} checks on the schedule, then {len(burst)} at "
              "once …", file=sys.stderr)
        before = process_cpu(children)
        start = time.monotonic()
        offset = time.time() - start
        scheduled = await send_all(sim, planned, start)
        wall = time.monotonic() - start
        burst_start = time.monotonic()
        bursted = await send_all(sim, burst, burst_start)
        burst_wall = time.monotonic() - burst_start
        after = process_cpu(children)
    finally:
        for child in children.values():
            await child.stop()
        if profiler is not None:
            await profiler.stop(grace=10.0)
    record = await service_record(dsn, [c.lead for c in (*planned, *burst)])
    phases = [chat_phase(f"ramp {args.rate / 5:g}→{args.rate:g}/min",
                         [a for a in scheduled if a.check.at < args.ramp], args.ramp,
                         offset, record),
              chat_phase(f"steady {args.rate:g}/min",
                         [a for a in scheduled if a.check.at >= args.ramp], wall - args.ramp,
                         offset, record),
              chat_phase(f"burst of {args.burst} at once", bursted, burst_wall, offset,
                         record)]
    errors = Counter(a.error for a in (*scheduled, *bursted) if a.error)
    return ChatRun(target.name, [run for run, _ in phases], [st for _, st in phases], errors,
                   {name: after[name] - before[name] for name in before}, record)


async def in_process_checks(args: argparse.Namespace, dsn: str, rules: QualificationRules,
                            rng: random.Random) -> list[CheckRun]:
    """(b) as the in-process mode runs it, on the same database, before the service starts."""
    print("the model call in process …", file=sys.stderr)
    ctx = await open_database(dsn)
    try:
        with ctx:
            return await check_load(args, rules, rng)
    finally:
        await ctx.close_connections()


# ---------------------------------------------------------------------------------------------
# The run


def make_jobs(media: Path) -> Jobs:
    """The scheduler with the shipped configuration, as `bot.app.scheduled_jobs` builds it."""
    settings = load_settings({})
    q = settings.qualification
    return Jobs(load_policy(settings.schedule, settings.tz),
                load_catalog(ROOT / "config" / "categories.toml"), FolderStore(media),
                "wecom", qualification=load_rules(Path(q.certificates_file),
                                                  Path(q.work_types_file)))


@dataclass
class TotalRun:
    info: dict[str, str]
    load_seconds: float
    jobs: list[JobRow]
    checks: list[CheckRun]
    sections: dict[str, list[float]]


def make_table(args: argparse.Namespace, total: int, rules: QualificationRules,
               rng: random.Random) -> Table:
    people = args.people or total // 2
    return Table(total, people, args.pool, rules.reminder_days, max(args.due), rng)


async def load_plant(conn: asyncpg.Connection, table: Table, rng: random.Random) -> float:
    """People, certificates and the pool, loaded and vacuumed; the seconds it took."""
    print(f"{table.total:,} certificates: generating and loading …", file=sys.stderr)
    started = time.perf_counter()
    chains = Chains()
    await load_people(conn, table.people)
    await load_certificates(conn, table, chains)
    await load_pool(conn, table.pool, chains, rng)
    await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


async def one_total(args: argparse.Namespace, total: int, jobs: Jobs, check: bool
                    ) -> TotalRun:
    rng = random.Random(total)
    rules = jobs.qualification
    table = make_table(args, total, rules, rng)
    async with fresh_database(args.admin_dsn) as dsn:
        info = await machine_info(dsn)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        ctx = await open_database(dsn)
        try:
            loaded = await load_plant(conn, table, rng)
            rows = []
            with ctx:
                for due in args.due:
                    print(f"{total:,} certificates, {due:,} due …", file=sys.stderr)
                    rows.append(await job_rounds(conn, jobs, table, due, args.rounds))
                checks = await check_load(args, rules, rng) if check else []
                sections = await report_sections(rules, args.rounds)
        finally:
            await conn.close()
            await ctx.close_connections()
    return TotalRun(info, loaded, rows, checks, sections)


def check_table(checks: Sequence[CheckRun]) -> None:
    print("| phase | checks | p50 ms | p95 ms | p99 ms | max ms | wall s | people refused |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in checks:
        print(f"| {c.phase} | {len(c.latencies)} | {nearest_rank(c.latencies, 50):.0f} | "
              f"{nearest_rank(c.latencies, 95):.0f} | {nearest_rank(c.latencies, 99):.0f} "
              f"| {max(c.latencies, default=math.nan):.0f} | {c.seconds:.1f} | "
              f"{sum(r for _, r in c.done)} |")


def report(args: argparse.Namespace, info: dict[str, str], runs: dict[int, TotalRun]) -> bool:
    jobs = [row for run in runs.values() for row in run.jobs]
    checks = next(run.checks for run in runs.values())
    print("## Qualification benchmark\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- rounds per row: {args.rounds} (after one warm-up); load times: "
          + ", ".join(f"{t:,} in {r.load_seconds:.0f} s" for t, r in runs.items()) + "\n")
    print("### (a) The daily certificate job\n")
    print("| certificates | due today | share | median ms | min ms | max ms | ms per due row "
          "| messages |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for r in jobs:
        m = median(r.ms)
        print(f"| {r.total:,} | {r.due:,} | {r.due / r.total:.1%} | {m:.0f} | {min(r.ms):.0f} "
              f"| {max(r.ms):.0f} | {m / r.due if r.due else 0:.2f} | {r.queued:,} |")
        if r.due <= TARGET_DUE:
            ok &= m < JOB_TARGET_MS
    base = jobs[0]
    ratios = [f"{r.total:,}/{r.due:,} vs {base.total:,}/{base.due:,}: "
              f"{median(r.ms) / median(base.ms):.2f}×" for r in jobs[1:]]
    if ratios:
        print("\nRatios of the medians: " + "; ".join(ratios) + "\n")
    if checks:
        print(f"### (b) The pre-work check (crew of {args.crew}, {args.pool:,} people)\n")
        check_table(checks)
        ok &= nearest_rank(checks[1].latencies, 95) < CHECK_TARGET_MS
    print("\n### (c) The reports' sections (median ms)\n")
    print("| certificates | digest 人员资质 | monthly 人员资质 |")
    print("|---:|---:|---:|")
    for total, run in runs.items():
        print(f"| {total:,} | {median(run.sections['digest']):.0f} | "
              f"{median(run.sections['monthly']):.0f} |")
    print(f"\n**Verdict: {'met' if ok else 'missed'}** (job < {JOB_TARGET_MS:.0f} ms with "
          f"{TARGET_DUE} due; check p95 < {CHECK_TARGET_MS:.0f} ms steady)")
    return ok


def chat_report(args: argparse.Namespace, info: dict[str, str], table: Table, loaded: float,
                in_process: Sequence[CheckRun], runs: Sequence[ChatRun]) -> bool:
    print("## Qualification benchmark: the pre-work check through the chat\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- {table.total:,} certificates, {table.people:,} people, loaded in {loaded:.0f} s; "
          f"crews of {args.crew} from the pool of {args.pool:,}, typed by name, in "
          f"{AREA[1]}; each check from a team lead of its own")
    print(f"- WeCom simulator in this process, {args.latency * 1000:.0f} ms per API call; "
          f"pool {args.pool_size} per process; `safetybot work` under nice {args.worker_nice}; "
          f"SAFETYBOT_POLL_SECONDS {Settings().poll_seconds:g} (the default)\n")
    print("Latency: the lead's 开工 callback (its scheduled time) → the simulator accepted the "
          "answer's Markdown (开工前资格校验 KG-…).\n")
    ok = True
    for run in runs:
        print(f"### Through the chat: {run.target} ({DEPLOYMENTS[run.target]})\n")
        check_table(run.phases)
        print("\nWhere the time goes, p50 / p95 ms (stored: the inbox row's `received_at`; "
              "handler: its `processed_at`, when the worker began the event):\n")
        print("| phase | callback answered | " + " | ".join(STAGES) + " |")
        print("|---|---:|" + "---:|" * len(STAGES))
        for phase, stages in zip(run.phases, run.stages, strict=True):
            cells = [f"{nearest_rank(stages.get(k, []), 50):.0f} / "
                     f"{nearest_rank(stages.get(k, []), 95):.0f}" for k in ("ack", *STAGES)]
            print(f"| {phase.phase} | " + " | ".join(cells) + " |")
        print("\nCPU s during the phases: "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.cpu.items()))
        checks = sum(len(phase.done) for phase in run.phases)
        most = ", ".join(f"{who} {n}" for who, n in list(run.record.waiting.items())[:5])
        print(f"\n{run.record.proposed} of {checks} checks proposed a 重大 ticket (a card to "
              f"each of the {len(MANAGERS)} safety managers). Deliveries pending when the "
              f"burst was answered: {sum(run.record.waiting.values())}"
              + (f" (most: {most})." if most else "."))
        for error, n in run.errors.most_common(8):
            print(f"    {n:5d} × {error}")
        ok &= not run.errors and nearest_rank(run.phases[1].latencies, 95) < CHECK_TARGET_MS
        print()
    if in_process:
        print("### The model call in this process (`pre_work_check`), same schedule and data\n")
        check_table(in_process)
        print("\nRatios, chat path / model call:\n")
        print("| target | phase | p50 | p95 |")
        print("|---|---|---:|---:|")
        for run in runs:
            for chat, model in zip(run.phases, in_process, strict=True):
                print(f"| {run.target} | {chat.phase} | " + " | ".join(
                    f"{nearest_rank(chat.latencies, q) / nearest_rank(model.latencies, q):.1f}×"
                    for q in (50, 95)) + " |")
    for log in sorted(args.logs.glob("*.log")):
        lines = log_summary(log)
        print(f"\nwarnings/errors in {log.name}:" + ("" if lines else " none"))
        for line in lines:
            print("    " + line)
    print(f"\n**Verdict: {'met' if ok else 'missed'}** (answered through the chat: steady p95 < "
          f"{CHECK_TARGET_MS:.0f} ms, every check answered)")
    return ok


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--totals", type=int_list, default=[100_000])
    p.add_argument("--due", type=int_list, default=[300, 3000])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--people", type=int, default=0, help="default: half the total")
    p.add_argument("--pool", type=int, default=2000, help="people crews are made of")
    p.add_argument("--crew", type=int, default=20)
    p.add_argument("--rate", type=float, default=50.0, help="checks a minute, steady")
    p.add_argument("--ramp", type=float, default=60.0, help="seconds")
    p.add_argument("--minutes", type=float, default=3.0, help="steady minutes")
    p.add_argument("--burst", type=int, default=20)
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="(b) in process; with --chat, beside the chat path for the ratio")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test")
    chat = p.add_argument_group("--chat", "the check answered through the service")
    chat.add_argument("--chat", action="store_true",
                      help="send the checks as WeCom callbacks to the service (the first "
                           "total only; no (a) or (c))")
    chat.add_argument("--targets", default="split",
                      help="deployments: split (serve --no-workers + work), single (serve)")
    chat.add_argument("--latency", type=float, default=0.05,
                      help="seconds per simulated API call")
    chat.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    chat.add_argument("--worker-nice", type=int, default=10, metavar="N",
                      help="run `safetybot work` under `nice -n N` (0: not at all)")
    chat.add_argument("--py-spy", type=Path, default=None, metavar="PATH",
                      help="py-spy binary: profile the process that handles the inbox")
    chat.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out",
                      help="where the service's logs are kept")
    args = p.parse_args(argv)
    if max(args.due) > args.totals[0] // 10:
        p.error("--due: at most a tenth of the smallest total")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(DEPLOYMENTS):
        p.error("--targets: split, single or both")
    return args


async def chat_bench(args: argparse.Namespace, code: str) -> int:
    """Load the first total, time (b) in process, then through each deployment in turn."""
    total = args.totals[0]
    rng = random.Random(total)
    started = datetime.now(UTC).astimezone(TZ)
    args.logs = args.out / time.strftime("%Y%m%d-%H%M%S-qualification")
    args.logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="safetybot-qualbench-") as tmp:
        rules = make_jobs(Path(tmp) / "media").qualification
        table = make_table(args, total, rules, rng)
        leads = chat_leads(args.pool, table.people)
        needed = len(args.targets) * (WARM_UP + len(schedule(args.rate, args.ramp,
                                                             args.minutes * 60)) + args.burst)
        if needed > len(leads):
            raise BenchError(f"{needed} checks need as many team leads outside the pool's "
                             f"teams; {len(leads)} there: raise --people")
        async with fresh_database(args.admin_dsn) as dsn:
            info = await machine_info(dsn) | {"service code": code}
            await migrate(dsn)
            conn = await asyncpg.connect(dsn)
            try:
                loaded = await load_plant(conn, table, rng)
                await load_area(conn)
            finally:
                await conn.close()
            in_process = await in_process_checks(args, dsn, rules, rng) if args.check else []
            sim = BenchSimulator([*MANAGERS, *leads, *map(person, range(args.pool))])
            sim.latency = args.latency
            await sim.start()
            try:
                targets = make_targets(args, dsn, Path(tmp) / "media", sim.base_url)
                crews, senders = Crews(args.pool, args.crew, rng), iter(leads)
                runs = [await chat_target(sim, targets[name], args, dsn, crews, senders, i)
                        for i, name in enumerate(args.targets)]
            finally:
                await sim.stop()
    info = {"date": f"{started:%Y-%m-%d %H:%M} (Asia/Shanghai)", **info}
    return 0 if chat_report(args, info, table, loaded, in_process, runs) else 2


async def bench(args: argparse.Namespace, code: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    if args.chat:
        return await chat_bench(args, code)
    runs: dict[int, TotalRun] = {}
    started = datetime.now(UTC).astimezone(TZ)
    with tempfile.TemporaryDirectory(prefix="safetybot-qualbench-") as tmp:
        jobs = make_jobs(Path(tmp) / "media")
        for n, total in enumerate(args.totals):
            runs[total] = await one_total(args, total, jobs, check=args.check and n == 0)
    info = {"date": f"{started:%Y-%m-%d %H:%M} (Asia/Shanghai)",
            **runs[args.totals[-1]].info, "code": code}
    return 0 if report(args, info, runs) else 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_bench("qualification_bench", bench(args, code_version()),
                     "processes stopped, database dropped" if args.chat else "database dropped")


if __name__ == "__main__":
    sys.exit(main())
