"""Inspection benchmark (扫码巡检): the day's rounds opened by the scheduler, and a scan answered
through the chat, on PostgreSQL.

(a) **Round opening.** A plant of `--checkpoints` checkpoints (the demo checklists) in `--areas`
areas, `--routes` routes of about seven checkpoints (each within one or two neighbouring
areas), `--plans` patrol plans (a mix of daily, weekly and by-risk; walked by named people, by
a role or by a post) and `--people` people (three safety managers, team leads as supervisors,
workers with posts), inserted with the models. Every plan's window opens at 08:00, so all of
them are due at the same instant: the worst case. `scheduler.inspection.run_rounds` is timed
at 08:00:01 of `--rounds` days (after one warm-up day), each 35 days after the one before (a
new day, ISO week and month, so every plan opens a round again; the rounds of the day before
are closed, untimed, in between). After each opening, an idle tick (everything open, nothing
due) is timed `--idle` times, 30 s apart, as the scheduler runs it every tick. Target: an
opening under 1 s.

(b) **A scan answered.** The service as deployed (`--targets split`: `safetybot serve
--no-workers` + `safetybot work` under nice 10; `single`: `serve`) and the WeCom simulator in
this process (`report_bench.BenchSimulator`, `--latency` per API call). The same plant, but
each patroller walks `--routes-each` routes of their own (daily plans naming them, the
checkpoints of a patroller's routes distinct), with a window around the real time now; the
rounds are opened with `run_rounds` before the service starts. Each patroller scans the next
checkpoint of their rounds (`SimUser.scans(sign(key, code))`, WeCom's `scancode_waitmsg`),
never one done before, every `patrollers / --rate` seconds; they start spread over `--ramp`
seconds, so the rate climbs to `--rate` scans a second and holds for `--minutes`. Open loop:
a scan's latency runs from its scheduled time to the moment the simulator accepted the first
reply (the checklist's first card, or its lead). Target: p95 under 300 ms at 20 scans a
second. Then `--burst` patrollers scan at the same instant: a stress case, reported beside.

    PYTHONPATH=. .venv/bin/python benchmarks/inspection_bench.py [--parts open,scan] [--quick]
        [--checkpoints 2000] [--routes 300] [--plans 300] [--people 400] [--areas 20]
        [--rounds 7] [--idle 10] [--rate 20] [--ramp 60] [--minutes 3] [--burst 100]
        [--routes-each 3] [--targets split] [--latency 0.05] [--pool-size 10]
        [--worker-nice 10] [--py-spy PATH] [--seed 1] [--admin-dsn DSN]

Each part gets a fresh database on the server at `--admin-dsn`, migrated, dropped at the end
(also on failure, Ctrl-C or SIGTERM). Prints Markdown on stdout; exits 2 when a target is
missed, 1 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
from benchmarks.emergency_bench import STEP_TIMEOUT, wait_idle  # noqa: E402
from benchmarks.qualification_bench import first_tick, scheduler_metrics  # noqa: E402
from benchmarks.report_bench import (  # noqa: E402
    BenchSimulator,
    make_targets,
    process_cpu,
    start_target,
    text_of,
)
from benchmarks.tick_bench import nearest_rank  # noqa: E402
from benchmarks.training_bench import LAG_EVERY, LagProbe, inbox_times, orm  # noqa: E402
from bot.db import POSTGRES_POOL_SIZE, migrate  # noqa: E402
from bot.inspection import load_inspection_rules, parse_sites  # noqa: E402
from bot.settings import SHIPPED_CONFIG, Settings, load_settings  # noqa: E402
from models.catalog import load_catalog  # noqa: E402
from models.inspection.codes import sign, signing_key  # noqa: E402
from models.inspection.sites import (  # noqa: E402
    Checklist,
    Checkpoint,
    Frequency,
    PatrolPlan,
    Route,
)
from models.org import Area  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
OPEN_TARGET_MS = 1000.0
SCAN_TARGET_MS = 300.0
RULES = SHIPPED_CONFIG / "inspection.toml"
MANAGERS = ("sm01", "sm02", "sm03")
POSTS = ("巡检工", "电工", "维修工", "操作工", "仓管员", "化验员")
ROLES = ("owner", "reviewer", "responder")      # the roles a plan may name (small groups)
TEAM = 20                    # workers under one team lead
OPENS = 8 * 60               # every plan of part (a) opens at 08:00
FIRST_DAY = date(2027, 1, 4)
DAY_STEP = 35                # days between timed openings: a new ISO week and a new month
WARM_UP = 3                  # patrollers of part (b) who scan first, unmeasured
REPLY_TIMEOUT = 30.0
DEPLOYMENTS = {"split": "`serve --no-workers` + `work`", "single": "`serve`"}
COLORS = ("红", "橙", "黄", "蓝")
STATUSES = ("高", "中", "低", "")


# ---------------------------------------------------------------------------------------------
# The plant


def worker_id(n: int) -> str:
    return f"xj{n:04d}"


def lead_id(n: int) -> str:
    return f"bz{n:03d}"


@dataclass
class Plant:
    """Who works there, and where: areas, checkpoints, routes (without plans)."""

    workers: list[str]
    leads: list[str]
    areas: list[tuple[str, str, str, str]]            # code, name, colour, dynamic status
    checkpoints: list[tuple[str, str, str, str]]      # code, name, area, checklist
    routes: dict[str, list[str]]                      # code → checkpoints in order
    route_areas: dict[str, set[str]] = field(default_factory=dict)

    @property
    def users(self) -> list[str]:
        return [*MANAGERS, *self.leads, *self.workers]


def make_plant(args: argparse.Namespace, checklists: Sequence[str]) -> Plant:
    rng = random.Random(f"{args.seed}:plant")
    leads_n = max(1, math.ceil((args.people - len(MANAGERS)) / (TEAM + 1)))
    workers_n = args.people - len(MANAGERS) - leads_n
    areas = [(f"A{a:02d}", f"{a + 1}号区域", COLORS[a % len(COLORS)],
              STATUSES[(a // len(COLORS)) % len(STATUSES)]) for a in range(args.areas)]
    per_area = math.ceil(args.checkpoints / args.areas)
    checkpoints = []
    for n in range(args.checkpoints):
        area = areas[n // per_area][0]
        checkpoints.append((f"{area}-{n % per_area + 1:03d}", f"巡检点{n + 1}", area,
                            checklists[n % len(checklists)]))
    by_area: dict[str, list[str]] = {a[0]: [] for a in areas}
    for code, _, area, _ in checkpoints:
        by_area[area].append(code)
    # Routes: about seven checkpoints each, walked in one area (a few cross into the next);
    # each area's checkpoints dealt out in turn, so every checkpoint is on some route.
    routes: dict[str, list[str]] = {}
    route_areas: dict[str, set[str]] = {}
    flat = [c for a in areas for c in by_area[a[0]]]
    length = max(1, args.checkpoints // args.routes)
    for r in range(args.routes):
        start = (r * len(flat)) // args.routes
        size = length + rng.choice((0, 0, 1))
        codes = [flat[(start + k) % len(flat)] for k in range(size)]
        routes[f"R{r:03d}"] = list(dict.fromkeys(codes))
        route_areas[f"R{r:03d}"] = {c.split("-")[0] for c in codes}
    return Plant([worker_id(n) for n in range(workers_n)],
                 [lead_id(n) for n in range(leads_n)], areas, checkpoints, routes, route_areas)


async def load_people(conn: asyncpg.Connection, plant: Plant, seed: int) -> None:
    """Departments (one per area), the managers, a lead for every TEAM workers, the workers
    with posts (profiles); the roles of ROLES held by about one worker in twelve."""
    rng = random.Random(f"{seed}:people")
    departments = [(f"D{a:02d}", f"{a + 1}号车间") for a in range(len(plant.areas))]
    await conn.copy_records_to_table("department", records=departments, columns=("id", "name"))
    users: list[tuple[Any, ...]] = [
        (m, f"安全员{m[-1]}", None, '["safety_manager"]', None) for m in MANAGERS]
    users += [(ld, f"班长{ld[2:]}", departments[i % len(departments)][0],
               '["worker", "reviewer"]', MANAGERS[i % len(MANAGERS)])
              for i, ld in enumerate(plant.leads)]
    for i, w in enumerate(plant.workers):
        roles = ["worker"]
        if rng.random() < 1 / 12:
            roles.append(rng.choice(ROLES))
        lead = plant.leads[i // TEAM % len(plant.leads)]
        users.append((w, f"巡检员{i}", departments[i % len(departments)][0],
                      "[" + ", ".join(f'"{r}"' for r in roles) + "]", lead))
    await conn.executemany(
        "INSERT INTO org_user (id, name, department_id, roles, supervisor_id, mobile, active, "
        "platform, platform_id, source) VALUES ($1, $2, $3, $4, $5, '', true, '', '', "
        "'roster')", users)
    hired = date(2024, 1, 1)
    await conn.copy_records_to_table("person_profile", records=[
        (w, POSTS[i % len(POSTS)], hired, hired, None, "", "")
        for i, w in enumerate(plant.workers)], columns=(
            "person_id", "post", "hired_on", "post_since", "contractor_id", "suspended",
            "blacklisted"))


async def load_sites(plant: Plant, plans: Sequence[dict[str, Any]]) -> None:
    """Areas, the demo checklists, checkpoints, routes and `plans`, with the models."""
    now = datetime.now(UTC)
    catalog = load_catalog(ROOT / "config" / "categories.toml")
    sites = parse_sites(SHIPPED_CONFIG / "inspection", [c.code for c in catalog.categories])
    await Area.bulk_create([Area(code=c, name=n, risk_color=color, risk_status=status)
                            for c, n, color, status in plant.areas])
    await Checklist.bulk_create([Checklist(code=c.code, title=c.title, category=c.category,
                                           items=[i.to_json() for i in c.items], loaded_at=now)
                                 for c in sites.checklists])
    await Checkpoint.bulk_create([Checkpoint(code=c, name=n, area_id=a, checklist_id=cl,
                                             loaded_at=now)
                                  for c, n, a, cl in plant.checkpoints], batch_size=500)
    await Route.bulk_create([Route(code=r, name=f"巡检路线{r[1:]}", checkpoints=cps,
                                   loaded_at=now) for r, cps in plant.routes.items()])
    await PatrolPlan.bulk_create([PatrolPlan(**p, loaded_at=now) for p in plans],
                                 batch_size=500)


def demo_checklists() -> list[str]:
    catalog = load_catalog(ROOT / "config" / "categories.toml")
    sites = parse_sites(SHIPPED_CONFIG / "inspection", [c.code for c in catalog.categories])
    return [c.code for c in sites.checklists]


def mixed_plans(args: argparse.Namespace, plant: Plant) -> list[dict[str, Any]]:
    """Part (a): one plan per route (then round the routes again); daily 50%, weekly 20%,
    by-risk 30%; walked by 1–3 named workers (50%), a role (20%) or a post (30%); every
    window opens at 08:00 and lasts 2–10 hours."""
    rng = random.Random(f"{args.seed}:plans")
    routes = list(plant.routes)
    plans = []
    for n in range(args.plans):
        x, y = rng.random(), rng.random()
        frequency = (Frequency.DAILY if x < 0.5 else Frequency.WEEKLY if x < 0.7
                     else Frequency.BY_RISK)
        people = rng.sample(plant.workers, rng.randint(1, 3)) if y < 0.5 else []
        roles = [rng.choice(ROLES)] if 0.5 <= y < 0.7 else []
        posts = [rng.choice(POSTS)] if y >= 0.7 else []
        plans.append({"code": f"P{n:03d}", "route_id": routes[n % len(routes)],
                      "people": people, "roles": roles, "posts": posts,
                      "frequency": frequency, "starts": OPENS,
                      "ends": OPENS + 60 * rng.randint(2, 10)})
    return plans


# ---------------------------------------------------------------------------------------------
# (a) Opening the day's rounds


@dataclass
class OpenRun:
    open_ms: list[float]
    cold_ms: float                       # the warm-up day: first statements of their kind
    idle_ms: list[float]
    rounds: list[int]                    # rounds opened per timed day
    patrollers: list[int]
    messages: list[int]
    deliveries: list[int]
    stages: dict[str, list[float]]       # per timed opening, ms in each part of run_rounds
    plant: Plant
    plans: Counter[str]


@contextlib.contextmanager
def stage_timers(into: dict[str, float]) -> Iterator[None]:
    """Time the calls `run_rounds` makes (patched in scheduler.inspection's namespace)."""
    import scheduler.inspection as si
    names = ("due_rounds", "routes_by_code", "walkers", "supervisors", "people_with",
             "open_rounds", "checkpoint_names", "_remind", "_close", "enqueue_many")
    saved = {n: getattr(si, n) for n in names}

    def timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                into[name] = into.get(name, 0.0) + (time.perf_counter() - started) * 1000
        return wrapper

    for n in names:
        setattr(si, n, timed(n, saved[n]))
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(si, n, fn)


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM inspection_round), (SELECT count(*) FROM "
        "inspection_patroller), (SELECT count(*) FROM outbox_message), (SELECT count(*) FROM "
        "outbox_delivery)")
    return row[0], row[1], row[2], row[3]


async def open_part(args: argparse.Namespace) -> tuple[dict[str, str], OpenRun]:
    from scheduler.inspection import run_rounds
    rules = load_inspection_rules(RULES)
    plant = make_plant(args, demo_checklists())
    plans = mixed_plans(args, plant)
    async with fresh_database(args.admin_dsn) as dsn:
        info = await machine_info(dsn)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await load_people(conn, plant, args.seed)
            async with orm(dsn):
                await load_sites(plant, plans)
                await signing_key()
            await conn.execute("VACUUM ANALYZE")
            async with orm(dsn):
                run = OpenRun([], math.nan, [], [], [], [], [], {}, plant,
                              Counter(str(p["frequency"]) for p in plans))
                for r in range(args.rounds + 1):
                    day = FIRST_DAY + timedelta(days=DAY_STEP * r)
                    at = datetime(day.year, day.month, day.day, 8, 0, 1, tzinfo=TZ)
                    before = await counts(conn)
                    stages: dict[str, float] = {}
                    gc.collect()
                    with stage_timers(stages):
                        started = time.perf_counter()
                        await run_rounds(rules, at, TZ, "wecom")
                        elapsed = (time.perf_counter() - started) * 1000
                    after = await counts(conn)
                    if after[0] == before[0]:
                        raise BenchError(f"{day}: no round opened")
                    if r == 0:
                        run.cold_ms = elapsed
                    else:
                        run.open_ms.append(elapsed)
                        for k, v in stages.items():
                            run.stages.setdefault(k, []).append(v)
                        for lst, a, b in zip((run.rounds, run.patrollers, run.messages,
                                              run.deliveries), after, before, strict=True):
                            lst.append(a - b)
                    for k in range(1, args.idle + 1):
                        started = time.perf_counter()
                        queued = await run_rounds(rules, at + timedelta(seconds=30 * k), TZ,
                                                  "wecom")
                        run.idle_ms.append((time.perf_counter() - started) * 1000)
                        if queued:
                            raise BenchError(f"{day}: an idle tick queued {queued} messages")
                    # Untimed: just before the next day's windows open, every round of this
                    # one has closed (daily, weekly, monthly) and none is due yet.
                    await run_rounds(rules, at + timedelta(days=DAY_STEP, minutes=-2), TZ,
                                     "wecom")
                    await conn.execute("VACUUM ANALYZE inspection_round")
                    print(f"opening {r}: {elapsed:.0f} ms, {after[0] - before[0]} rounds",
                          file=sys.stderr)
        finally:
            await conn.close()
    return info, run


def open_report(args: argparse.Namespace, run: OpenRun) -> bool:
    plant = run.plant
    print(f"### (a) Opening the day's rounds ({len(plant.checkpoints):,} checkpoints, "
          f"{len(plant.routes)} routes, {sum(run.plans.values())} plans)\n")
    lengths = [len(c) for c in plant.routes.values()]
    print(f"{len(plant.areas)} areas; routes of {min(lengths)}–{max(lengths)} checkpoints "
          f"(mean {sum(lengths) / len(lengths):.1f}); plans "
          + ", ".join(f"{k} {v}" for k, v in sorted(run.plans.items()))
          + f"; {len(plant.users)} people ({len(plant.workers)} workers with posts, "
          f"{len(plant.leads)} team leads, {len(MANAGERS)} safety managers). Every window "
          f"opens at 08:00; `run_rounds` at 08:00:01 of {len(run.open_ms)} days "
          f"{DAY_STEP} days apart (after one warm-up day), in one ORM (warm connections, as "
          "in the service's scheduler).\n")
    print("| timed | runs | median ms | min ms | max ms | median / target |")
    print("|---|---:|---:|---:|---:|---:|")
    m = median(run.open_ms)
    print(f"| `run_rounds`, all plans due at once | {len(run.open_ms)} | **{m:.0f}** | "
          f"{min(run.open_ms):.0f} | {max(run.open_ms):.0f} | {m / OPEN_TARGET_MS:.2f} |")
    print(f"| the same, warm-up day (cold) | 1 | {run.cold_ms:.0f} | | | |")
    i = median(run.idle_ms)
    print(f"| `run_rounds`, idle tick (all open) | {len(run.idle_ms)} | {i:.1f} | "
          f"{min(run.idle_ms):.1f} | {max(run.idle_ms):.1f} | |")
    print(f"\nEach timed opening: {median(run.rounds):.0f} rounds, "
          f"{median(run.patrollers):,.0f} patroller rows, {median(run.messages):.0f} messages "
          f"({median(run.deliveries):,.0f} deliveries) queued.\n")
    print("Where an opening's time goes (median ms of each call in `run_rounds`):\n")
    print("| call | median ms |")
    print("|---|---:|")
    for name, values in sorted(run.stages.items(), key=lambda kv: -median(kv[1])):
        print(f"| `{name}` | {median(values):.1f} |")
    print()
    return m < OPEN_TARGET_MS


# ---------------------------------------------------------------------------------------------
# (b) A scan answered through the chat


def own_plans(args: argparse.Namespace, plant: Plant, patrollers: Sequence[str],
              starts: int, ends: int) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Part (b): each patroller walks `--routes-each` routes of their own (daily plans naming
    them), no checkpoint twice; their scan order: the routes' checkpoints in turn."""
    rng = random.Random(f"{args.seed}:own")
    routes = list(plant.routes)
    plans: list[dict[str, Any]] = []
    order: dict[str, list[str]] = {}
    for n, person in enumerate(patrollers):
        seen: set[str] = set()
        mine: list[str] = []
        for route in rng.sample(routes, len(routes)):
            if len(mine) == args.routes_each:
                break
            if seen.isdisjoint(plant.routes[route]):
                mine.append(route)
                seen.update(plant.routes[route])
        order[person] = [c for r in mine for c in plant.routes[r]]
        plans += [{"code": f"Q{n:04d}-{k}", "route_id": r, "people": [person], "roles": [],
                   "posts": [], "frequency": Frequency.DAILY, "starts": starts, "ends": ends}
                  for k, r in enumerate(mine)]
    return plans, order


@dataclass
class Scan:
    person: str
    code: str
    phase: str
    due: float                     # monotonic
    late: float = math.nan
    ack: float = math.nan          # the callback answered, s after due
    first: float = math.nan        # the first reply accepted, s after due
    error: str = ""


class Patroller:
    def __init__(self, sim: BenchSimulator, pid: str, codes: list[str], key: bytes) -> None:
        self.sim, self.pid, self.codes, self.key = sim, pid, codes, key
        self.next = 0
        self.scans: list[Scan] = []

    @property
    def left(self) -> int:
        return len(self.codes) - self.next

    async def scan(self, due: float, phase: str) -> None:
        """At `due`, scan the next checkpoint; wait for the first reply that follows."""
        code = self.codes[self.next]
        self.next += 1
        s = Scan(self.pid, code, phase, due)
        self.scans.append(s)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        s.late = time.monotonic() - due
        seen = len(self.sim.messages_for(self.pid))
        try:
            sent = await self.sim.user(self.pid).scans(sign(self.key, code))
        except (aiohttp.ClientError, TimeoutError) as exc:
            s.error = f"callback failed: {exc!r}"
            return
        s.ack = time.monotonic() - due
        if sent.status != 200:
            s.error = f"callback answered {sent.status}"
            return
        earlier = self.codes[:self.next - 1]
        while True:     # a late message of an earlier scan (its card after its lead) is passed
            try:
                message = await self.sim.message(self.pid, seen, REPLY_TIMEOUT)
            except TimeoutError:
                s.error = f"no reply within {REPLY_TIMEOUT:.0f} s"
                return
            text = text_of(message)
            if code in text or not any(c in text for c in earlier):
                break
            seen += 1
        s.first = message.at - due
        if code not in text or "不计入" in text:
            s.error = f"answered {text[:50]!r}"

    async def walk(self, start: float, gap: float, end: float, rng: random.Random,
                   ramp_end: float) -> None:
        """Open loop: a scan every `gap` seconds (±20%) from `start` until `end`, whatever
        the replies do; keeps one checkpoint back for the burst."""
        due = start
        tasks = []
        while due < end and self.left > 1:
            tasks.append(asyncio.create_task(
                self.scan(due, "ramp" if due < ramp_end else "steady")))
            due += gap * rng.uniform(0.8, 1.2)
        await asyncio.gather(*tasks)


@dataclass
class ScanRun:
    target: str
    patrollers: int
    rounds: int
    scans: list[Scan]
    wall: float
    steady_seconds: float
    cpu: dict[str, float]
    burst_cpu: dict[str, float]
    lags: list[float]
    stages: dict[str, dict[str, list[float]]]
    visits: int
    dropped: int
    window: str


def stage_times(people: Sequence[Patroller], times: Any, offset: float
                ) -> dict[str, dict[str, list[float]]]:
    """Per phase, ms: scheduled send → stored (the inbox row's received_at), stored → done
    (its processed_at: the handler finished), done → the first reply accepted."""
    found: dict[str, dict[str, list[float]]] = {}
    for p in people:
        rows = times.rows.get(p.pid, [])
        scans = [s for s in p.scans if not math.isnan(s.ack)]
        if len(rows) != len(scans):
            continue
        for s, (stored, done) in zip(scans, rows, strict=True):
            if s.error:
                continue
            sent = s.due + s.late + offset
            per = found.setdefault(s.phase, {})
            for stage, ms in (("sent → stored", stored - sent), ("stored → done", done - stored),
                              ("done → reply accepted", s.due + s.first + offset - done)):
                per.setdefault(stage, []).append(ms * 1000)
    return found


async def scan_part(args: argparse.Namespace) -> tuple[dict[str, str], list[ScanRun]]:
    from scheduler.inspection import run_rounds
    rules = load_inspection_rules(RULES)
    tz = load_settings({}).tz
    plant = make_plant(args, demo_checklists())
    now = datetime.now(UTC)
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    runs_for = len(args.targets) * (args.ramp + args.minutes * 60 + 240) / 60
    starts, ends = max(0, minute - 10), min(1439, minute + int(runs_for) + 60)
    if ends - minute < runs_for + 35:
        raise BenchError(f"local time {local:%H:%M} ({tz}): too near midnight for a window "
                         "that lasts the run; start it after 00:15")
    patrollers = list(plant.workers)
    per_target = len(patrollers) // len(args.targets)
    plans, order = own_plans(args, plant, patrollers, starts, ends)
    async with fresh_database(args.admin_dsn) as dsn:
        info = await machine_info(dsn)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await load_people(conn, plant, args.seed)
            async with orm(dsn):
                await load_sites(plant, plans)
                key = await signing_key()
                await run_rounds(rules, datetime.now(UTC), tz, "wecom")
            rounds = await conn.fetchval("SELECT count(*) FROM inspection_round")
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        sim = BenchSimulator(plant.users)
        sim.latency = args.latency
        await sim.start()
        runs = []
        try:
            targets = make_targets(args, dsn, Path(args.tmp) / "media", sim.base_url)
            for i, name in enumerate(args.targets):
                mine = patrollers[i * per_target:(i + 1) * per_target]
                people = [Patroller(sim, p, order[p], key) for p in mine]
                runs.append(await scan_target(sim, targets[name], args, dsn, people, i,
                                              rounds, f"{starts // 60:02d}:{starts % 60:02d}–"
                                              f"{ends // 60:02d}:{ends % 60:02d}"))
        finally:
            await sim.stop()
    return info, runs


async def scan_target(sim: BenchSimulator, target: Any, args: argparse.Namespace, dsn: str,
                      people: list[Patroller], index: int, rounds: int, window: str
                      ) -> ScanRun:
    rng = random.Random(f"{args.seed}:{target.name}")
    warm, people = people[:WARM_UP], people[WARM_UP:]
    sim.callback_url = target.base + "/wecom/callback"
    children, profiler = await start_target(target, args.logs, args, index)
    try:
        print(f"{target.name}: delivering the rounds' notices, warming up …", file=sys.stderr)
        await wait_idle(dsn, STEP_TIMEOUT * 4)
        for _ in range(2):
            await asyncio.gather(*(p.scan(time.monotonic(), "warm-up") for p in warm))
        errors = [s.error for p in warm for s in p.scans if s.error]
        if errors:
            raise BenchError(f"warm-up scan: {errors[0]}")
        tick = load_settings({}).schedule.tick_seconds
        await first_tick(scheduler_metrics(target), tick + STEP_TIMEOUT)
        await wait_idle(dsn, STEP_TIMEOUT)
        gc.collect()
        gc.freeze()
        gap = len(people) / args.rate
        print(f"{target.name}: {len(people)} patrollers, a scan each {gap:.1f} s, ramp "
              f"{args.ramp:g} s, then {args.minutes:g} min …", file=sys.stderr)
        order = list(people)
        rng.shuffle(order)
        before = process_cpu(children)
        start = time.monotonic() + 1.0
        offset = time.time() - time.monotonic()
        ramp_end, end = start + args.ramp, start + args.ramp + args.minutes * 60
        with LagProbe() as probe:
            await asyncio.gather(*(p.walk(start + args.ramp * k / len(order), gap, end,
                                          random.Random(f"{args.seed}:{p.pid}"), ramp_end)
                                   for k, p in enumerate(order)))
            wall = time.monotonic() - start
            after = process_cpu(children)
            lags = list(probe.lags)
        await wait_idle(dsn, STEP_TIMEOUT)
        chosen = rng.sample([p for p in people if p.left], min(args.burst, len(people)))
        print(f"{target.name}: {len(chosen)} scans at once …", file=sys.stderr)
        await asyncio.sleep(2.0)
        burst_before = process_cpu(children)
        at = time.monotonic() + 0.5
        await asyncio.gather(*(p.scan(at, "burst") for p in chosen))
        burst_after = process_cpu(children)
        await wait_idle(dsn, STEP_TIMEOUT)
    finally:
        for child in children.values():
            await child.stop()
        if profiler is not None:
            await profiler.stop(grace=10.0)
    times = await inbox_times(dsn, [p.pid for p in people])
    conn = await asyncpg.connect(dsn)
    try:
        visits = await conn.fetchval(
            "SELECT count(*) FROM inspection_visit WHERE by = ANY($1::text[]) AND "
            "not_counted = ''", [p.pid for p in people])
    finally:
        await conn.close()
    return ScanRun(target.name, len(people), rounds, [s for p in people for s in p.scans],
                   wall, wall - args.ramp, {k: after[k] - before[k] for k in before},
                   {k: burst_after[k] - burst_before[k] for k in burst_before}, lags,
                   stage_times(people, times, offset), visits, len(sim.dropped), window)


def percentiles(values: Sequence[float]) -> str:
    return (f"{len(values)} | {nearest_rank(values, 50):.0f} | {nearest_rank(values, 95):.0f} "
            f"| {nearest_rank(values, 99):.0f} | {max(values, default=math.nan):.0f}")


def scan_report(args: argparse.Namespace, runs: Sequence[ScanRun]) -> bool:
    print(f"### (b) A scan answered through the chat ({args.rate:g} scans a second)\n")
    ok = True
    for run in runs:
        print(f"#### {run.target} ({DEPLOYMENTS[run.target]})\n")
        print(f"{run.patrollers} patrollers, each on {args.routes_each} daily rounds of their "
              f"own ({run.rounds:,} rounds opened by `run_rounds` before the service started, "
              f"window {run.window} local time); a scan every {run.patrollers / args.rate:.1f} s "
              f"(±20%) per patroller, starting over {args.ramp:g} s, then {args.minutes:g} min. "
              f"Simulator {args.latency * 1000:.0f} ms per API call; pool {args.pool_size} per "
              f"process; `work` under nice {args.worker_nice}; SAFETYBOT_OUTBOX_CONCURRENCY "
              f"{Settings().outbox_concurrency}. Latency: the scan's scheduled time → the "
              f"simulator accepted the first reply. Target: p95 < {SCAN_TARGET_MS:.0f} ms.\n")
        print("| phase | scans | p50 ms | p95 ms | p99 ms | max ms | p95 / target | failed |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for phase, label in (("ramp", f"ramp ({args.ramp:g} s)"),
                             ("steady", f"steady ({args.minutes:g} min)"),
                             ("burst", "burst (at the same instant)")):
            mine = [s for s in run.scans if s.phase == phase]
            done = [s.first * 1000 for s in mine if not s.error]
            ratio = nearest_rank(done, 95) / SCAN_TARGET_MS
            print(f"| {label} | {percentiles(done)} | {ratio:.2f} | "
                  f"{sum(1 for s in mine if s.error)} |")
        steady = [s.first * 1000 for s in run.scans if s.phase == "steady" and not s.error]
        errors = Counter(s.error[:80] for s in run.scans if s.error)
        ok &= bool(steady) and not errors and nearest_rank(steady, 95) < SCAN_TARGET_MS
        n_steady = sum(1 for s in run.scans if s.phase == "steady")
        print(f"\nSteady: {n_steady / run.steady_seconds:.1f} scans a second achieved. Counted "
              f"visits stored: {run.visits:,} for {len(run.scans):,} scans; messages the "
              f"simulator dropped over its per-member limit: {run.dropped}.\n")
        print("Where a scan's time goes, p50 / p95 ms (stored: the inbox row's `received_at`; "
              "done: its `processed_at`, when the handler finished):\n")
        stages = ("sent → stored", "stored → done", "done → reply accepted")
        print("| phase | callback answered | " + " | ".join(stages) + " |")
        print("|---|---:|" + "---:|" * len(stages))
        for phase in ("steady", "burst"):
            acks = [s.ack * 1000 for s in run.scans if s.phase == phase and not s.error]
            cells = [f"{nearest_rank(v, 50):.0f} / {nearest_rank(v, 95):.0f}"
                     for v in (acks, *(run.stages.get(phase, {}).get(k, []) for k in stages))]
            print(f"| {phase} | " + " | ".join(cells) + " |")
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.cpu.items())
        late = [s.late * 1000 for s in run.scans if s.phase != "burst"]
        print(f"\nCPU s during the paced run ({run.wall:.0f} s): {cpu}. The driver's event "
              f"loop woke a {LAG_EVERY * 1000:.0f} ms sleeper late by p50 "
              f"{nearest_rank(run.lags, 50):.1f} / p99 {nearest_rank(run.lags, 99):.1f} ms; "
              f"scans left after their time by p99 {nearest_rank(late, 99):.1f} ms.")
        print("CPU s during the burst: " + ", ".join(
            f"{name} {seconds:.1f}" for name, seconds in run.burst_cpu.items()))
        for error, n in errors.most_common(8):
            print(f"    {n:5d} × {error}")
        print()
    for log in sorted(args.logs.glob("*.log")):
        lines = log_summary(log)
        print(f"warnings/errors in {log.name}:" + ("" if lines else " none"))
        for line in lines:
            print("    " + line)
    return ok


# ---------------------------------------------------------------------------------------------
# The run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--parts", default="open,scan", help="open, scan or both")
    p.add_argument("--quick", action="store_true",
                   help="a short run: 3 openings, a 20 s ramp and 1 minute of scans, a burst "
                        "of 50")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/postgres")
    plant = p.add_argument_group("the plant")
    plant.add_argument("--checkpoints", type=int, default=2000)
    plant.add_argument("--routes", type=int, default=300)
    plant.add_argument("--plans", type=int, default=300, help="part (a)")
    plant.add_argument("--people", type=int, default=400)
    plant.add_argument("--areas", type=int, default=20)
    opening = p.add_argument_group("(a) opening the day's rounds")
    opening.add_argument("--rounds", type=int, default=7, help="timed openings (days)")
    opening.add_argument("--idle", type=int, default=10, help="idle ticks timed after each")
    scan = p.add_argument_group("(b) scans through the chat")
    scan.add_argument("--rate", type=float, default=20.0, help="scans a second, after the ramp")
    scan.add_argument("--ramp", type=float, default=60.0, help="seconds over which people start")
    scan.add_argument("--minutes", type=float, default=3.0, help="after the ramp")
    scan.add_argument("--burst", type=int, default=100, help="scans at one instant")
    scan.add_argument("--routes-each", type=int, default=3, help="routes a patroller walks")
    scan.add_argument("--targets", default="split",
                      help="deployments: split (serve --no-workers + work), single (serve)")
    scan.add_argument("--latency", type=float, default=0.05,
                      help="seconds per simulated API call")
    scan.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    scan.add_argument("--worker-nice", type=int, default=10, metavar="N",
                      help="run `safetybot work` under `nice -n N` (0: not at all)")
    scan.add_argument("--py-spy", type=Path, default=None, metavar="PATH",
                      help="py-spy binary: profile the process that handles the inbox")
    scan.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out",
                      help="where the service's logs are kept")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.idle, args.ramp, args.minutes, args.burst = 3, 5, 20.0, 1.0, 50
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not args.parts or set(args.parts) - {"open", "scan"}:
        p.error("--parts: open, scan or both")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.targets or set(args.targets) - set(DEPLOYMENTS):
        p.error("--targets: split, single or both")
    if args.rounds < 1 or args.people < 50 or args.routes < 1 or args.checkpoints < args.areas:
        p.error("--rounds ≥ 1, --people ≥ 50, --checkpoints ≥ --areas")
    return args


async def bench(args: argparse.Namespace, code: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    started = datetime.now(UTC).astimezone(TZ)
    args.logs = args.out / time.strftime("%Y%m%d-%H%M%S-inspection")
    info: dict[str, str] = {}
    opened = None
    scans: list[ScanRun] = []
    with tempfile.TemporaryDirectory(prefix="safetybot-inspbench-") as tmp:
        args.tmp = tmp
        if "open" in args.parts:
            info, opened = await open_part(args)
        if "scan" in args.parts:
            args.logs.mkdir(parents=True, exist_ok=True)
            info, scans = await scan_part(args)
    print("## Inspection benchmark\n")
    info = {"date": f"{started:%Y-%m-%d %H:%M} (Asia/Shanghai)", **info, "code": code}
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()
    ok = True
    if opened is not None:
        ok &= open_report(args, opened)
    if scans:
        ok &= scan_report(args, scans)
    targets = []
    if opened is not None:
        targets.append(f"opening median < {OPEN_TARGET_MS / 1000:.0f} s")
    if scans:
        targets.append(f"scans: steady p95 < {SCAN_TARGET_MS:.0f} ms, every scan answered")
    print(f"\n**Verdict: {'met' if ok else 'missed'}** ({'; '.join(targets)})")
    return 0 if ok else 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_bench("inspection_bench", bench(args, code_version()),
                     "processes stopped, database dropped")


if __name__ == "__main__":
    sys.exit(main())
