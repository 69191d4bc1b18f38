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
300 ms at 50 checks a minute. To measure it through the chat path later, replace
`pre_work_check`.

    PYTHONPATH=. .venv/bin/python benchmarks/qualification_bench.py [--totals 100000,1000000]
        [--due 300,3000] [--rounds 5] [--people 50000] [--pool 2000] [--crew 20] [--rate 50]
        [--ramp 60] [--minutes 3] [--burst 20] [--no-check] [--admin-dsn DSN]

PostgreSQL is the server at `--admin-dsn`; each total gets a fresh database of the run's own,
migrated, dropped at the end. The check runs on the first total's. Prints Markdown on stdout;
exits 2 when a target is missed, 1 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
    median,
    run_bench,
)
from benchmarks.tick_bench import nearest_rank  # noqa: E402
from bot.db import migrate, open_database  # noqa: E402
from bot.media.folder import FolderStore  # noqa: E402
from bot.qualification import load_rules  # noqa: E402
from bot.scheduling import load_policy  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from models.catalog import load_catalog  # noqa: E402
from models.closure import month_window  # noqa: E402
from models.org import User  # noqa: E402
from models.people.certificates import next_reminder  # noqa: E402
from models.people.checks import QualificationCheck, judge, record_check  # noqa: E402
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
        self.total, self.pool, self.days, self.rng = total, pool, days, rng
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


async def check_load(args: argparse.Namespace, rules: QualificationRules,
                     rng: random.Random) -> list[CheckRun]:
    by_post = [[person(i) for i in range(post, args.pool, len(POSTS))]
               for post in range(len(POSTS))]
    everyone = [person(i) for i in range(args.pool)]

    def crew(post: int) -> list[str]:
        outsiders = sum(rng.random() < OUTSIDERS for _ in range(args.crew))
        named = rng.sample(by_post[post], args.crew - outsiders)
        return named + rng.sample([p for p in everyone if p not in named], outsiders)

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


async def one_total(args: argparse.Namespace, total: int, jobs: Jobs, check: bool
                    ) -> TotalRun:
    rng = random.Random(total)
    rules = jobs.qualification
    people = args.people or total // 2
    table = Table(total, people, args.pool, rules.reminder_days, max(args.due), rng)
    async with fresh_database(args.admin_dsn) as dsn:
        info = await machine_info(dsn)
        await migrate(dsn)
        print(f"{total:,} certificates: generating and loading …", file=sys.stderr)
        started = time.perf_counter()
        chains = Chains()
        conn = await asyncpg.connect(dsn)
        ctx = await open_database(dsn)
        try:
            await load_people(conn, people)
            await load_certificates(conn, table, chains)
            await load_pool(conn, args.pool, chains, rng)
            await conn.execute("VACUUM ANALYZE")
            loaded = time.perf_counter() - started
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
        print("| phase | checks | p50 ms | p95 ms | p99 ms | max ms | wall s | people refused |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for c in checks:
            print(f"| {c.phase} | {len(c.latencies)} | {nearest_rank(c.latencies, 50):.0f} | "
                  f"{nearest_rank(c.latencies, 95):.0f} | {nearest_rank(c.latencies, 99):.0f} "
                  f"| {max(c.latencies):.0f} | {c.seconds:.1f} | {sum(r for _, r in c.done)} |")
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
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    if max(args.due) > args.totals[0] // 10:
        p.error("--due: at most a tenth of the smallest total")
    return args


async def bench(args: argparse.Namespace, code: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
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
    return run_bench("qualification_bench", bench(parse_args(argv), code_version()),
                     "database dropped")


if __name__ == "__main__":
    sys.exit(main())
