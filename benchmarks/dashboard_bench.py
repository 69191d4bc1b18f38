"""Dashboard benchmark: the 看板's pages with a million tickets on PostgreSQL (issue 19).

Issue 19, *Done when*: *with 1,000,000 tickets on PostgreSQL, the overview and a filtered ledger
page at p95 under 300 ms, the heat map under 200 ms, an xlsx export of 100,000 rows streaming under
30 s with the service's memory under 300 MB; 200 open dashboards receiving live updates.*

The tickets are generated and COPYed by `tick_bench.py`'s builders (its `Plant`, `Generator` and
`load_tickets`), over 12 months and 20 areas, then given a realistic mix of states. The service
runs as its own process (`safetybot serve --no-scheduler`), and every request goes over HTTP on
loopback with a session cookie opened through `models.dashboard.accounts`. Measured, in order:

1. the xlsx export of a filter selecting about `--export-rows` rows (time to first byte, total,
   the service's peak RSS sampled from /proc/<pid>/status);
2. the overview, cold (the 2 s cache expired: each kind of viewer asked at 3 s intervals) and
   warm (asked again at once), its page and its JSON;
3. the ledger: a filtered page (area + status + dates, sorted by deadline), the unfiltered
   first page and a deep page;
4. the heat map's JSON `/dashboard/api/map` (a site file with the 20 areas in a grid), when
   the service has it;
5. `--dashboards` open dashboards (SSE on /dashboard/live, each refetching the overview's JSON
   on every `change` event, as dashboard.js does) while a ticket is closed through the models
   (`models.hazard.approve`) every `--change-every` seconds.

    PYTHONPATH=. .venv/bin/python benchmarks/dashboard_bench.py [--tickets 1000000] [--quick]

Markdown report on stdout. Exit 0 when every target is met, 2 when one is missed, 1 when it
could not set up or run, 130 when interrupted (the database is dropped in every case).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import tick_bench  # noqa: E402
from benchmarks.callback_bench import (  # noqa: E402
    BenchError,
    Child,
    code_version,
    cpu_seconds,
    free_port,
    fresh_database,
    log_summary,
    machine_info,
    pool_url,
    postgres_cpu_seconds,
    run_bench,
    safetybot_argv,
    service_env,
)
from benchmarks.tick_bench import TICKET_COLUMNS, Generator, Plant, load_tickets  # noqa: E402
from bot.db import migrate, open_database  # noqa: E402
from bot.media.folder import FolderStore  # noqa: E402
from bot.roster import load_org  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from models.catalog import Grade, load_catalog  # noqa: E402
from models.dashboard.accounts import add_admin, open_session  # noqa: E402
from models.hazard import Ticket, approve  # noqa: E402
from models.org import User  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
PAGE_TARGET_MS = 300.0
MAP_TARGET_MS = 200.0
EXPORT_TARGET_S = 30.0
RSS_TARGET_MB = 300.0
CACHE_SECONDS = 2.0          # bot/web/dashboard/pages.py OVERVIEW_SECONDS
COLD_WINDOW = 3.0            # seconds between two asks of one viewer kind: the cache expired
RSS_EVERY = 0.05             # seconds between /proc samples of the service's memory
SESSION_HOURS = 12
CREATED = TICKET_COLUMNS.index("created_at")


# ---------------------------------------------------------------------------------------------
# The data: tick_bench's generator over 12 months, then a realistic mix of states


@dataclass
class DashGenerator(Generator):
    """`tick_bench.Generator` with the closed tickets spread over 12 months instead of two
    years, due in up to a week and closed within eight days; everything else (open tickets with
    their ladders, ids, owners) as it builds it."""

    closed_spread_days: int = 363
    deadline_days: tuple[int, ...] = (1, 2, 3, 5, 7)
    closes_within_days: int = 8

    def batch(self, count: int) -> tuple[list[tuple[Any, ...]], list[tick_bench.Open]]:
        """As tick_bench draws it, then the closed tickets' ids (and numbers) given in the order
        they were filed, as a plant's are: rows lie in the table in time order, not shuffled
        (a shuffled table makes every date range a random read of the whole heap)."""
        closed, opened = super().batch(count)
        ids = sorted(r[0] for r in closed)
        rows = sorted(closed, key=lambda r: r[CREATED])
        closed = [(tid, f"HZ-{r[CREATED].astimezone(TZ):%Y%m%d}-{tid:07d}", *r[2:])
                  for tid, r in zip(ids, rows, strict=True)]
        return closed, opened


MIX = (
    # 重大 open tickets waiting for their 治理方案, half of them
    f"UPDATE ticket SET status = 'plan' WHERE status = 'open' AND grade = '{Grade.MAJOR.value}' "
    "AND id % 2 = 0",
    # a fifth of the general open ones submitted for review
    "UPDATE ticket SET status = 'submitted', submitted_at = updated_at "
    f"WHERE status = 'open' AND grade = '{Grade.GENERAL.value}' AND id % 5 = 0",
    # 1% of the closed ones were cancelled instead
    "UPDATE ticket SET status = 'cancelled' WHERE status = 'closed' AND id % 100 = 7",
)


@dataclass
class Loaded:
    seconds: float
    counts: dict[str, int]


async def load(conn: asyncpg.Connection, gen: DashGenerator, total: int) -> Loaded:
    seconds = await load_tickets(conn, gen, total)
    started = time.perf_counter()
    for statement in MIX:
        await conn.execute(statement)
    await conn.execute("VACUUM ANALYZE ticket")
    seconds += time.perf_counter() - started
    now = tick_bench.NOW
    row = await conn.fetchrow(
        "SELECT count(*) AS total, "
        "count(*) FILTER (WHERE status IN ('plan', 'open', 'submitted')) AS active, "
        "count(*) FILTER (WHERE status = 'submitted') AS submitted, "
        "count(*) FILTER (WHERE status = 'plan') AS plan, "
        "count(*) FILTER (WHERE status IN ('plan', 'open', 'submitted') AND deadline < $1) "
        "AS overdue, count(*) FILTER (WHERE grade = $2) AS major, "
        "count(*) FILTER (WHERE status = 'cancelled') AS cancelled, "
        "count(DISTINCT area_id) AS areas, count(DISTINCT category) AS categories, "
        "(SELECT count(*) FROM alarm) AS alarms FROM ticket", now, Grade.MAJOR.value)
    return Loaded(seconds, dict(row))


# ---------------------------------------------------------------------------------------------
# Measuring


def pct(values: Sequence[float], p: float) -> float:
    """Nearest rank, in ms: an observed latency, never an interpolated one."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


@dataclass
class Series:
    name: str
    target_ms: float
    times: list[float] = field(default_factory=list)     # seconds
    statuses: list[int] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return (bool(self.times) and all(s == 200 for s in self.statuses)
                and pct(self.times, 95) < self.target_ms)

    def row(self) -> str:
        p95 = pct(self.times, 95)
        bad = sum(1 for s in self.statuses if s != 200)
        return (f"| {self.name} | {len(self.times)} | {pct(self.times, 50):.0f} | **{p95:.0f}** | "
                f"{max(self.times, default=math.nan) * 1000:.0f} | {self.target_ms:.0f} | "
                f"{p95 / self.target_ms:.2f} | {bad} | {'ok' if self.ok else 'MISSED'} |"
                + (f" {self.note}" if self.note else ""))


class Http:
    def __init__(self, base: str, cookies: dict[str, str]) -> None:
        self.base = base
        self.cookies = cookies          # viewer → session token
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=600, sock_read=120))

    def headers(self, viewer: str) -> dict[str, str]:
        return {"Cookie": f"sb_session={self.cookies[viewer]}"}

    async def timed(self, viewer: str, path: str, series: Series | None = None
                    ) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        async with self.session.get(self.base + path, headers=self.headers(viewer),
                                    allow_redirects=False) as resp:
            body = await resp.read()
            status = resp.status
        took = time.perf_counter() - started
        if series is not None:
            series.times.append(took)
            series.statuses.append(status)
        return took, status, body

    async def close(self) -> None:
        await self.session.close()


class Memory:
    """The service's VmRSS sampled every RSS_EVERY s, and its VmHWM (peak) from the kernel."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_sampled = 0.0
        self._task: asyncio.Task[None] | None = None

    def read(self) -> dict[str, float]:
        found = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0]) / 1024
        return found

    async def _sample(self) -> None:
        while True:
            self.peak_sampled = max(self.peak_sampled, self.read().get("VmRSS", 0.0))
            await asyncio.sleep(RSS_EVERY)

    def start(self) -> None:
        self.peak_sampled = self.read().get("VmRSS", 0.0)
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- 1. the export ------------------------------------------------------------------------------


@dataclass
class ExportRound:
    first_byte: float
    total: float
    size: int
    rows: int
    status: int
    rss_before: float
    rss_peak: float
    hwm: float
    cpu: float


async def export_from(conn: asyncpg.Connection, rows: int) -> str:
    """The `from` day (local) from which about `rows` tickets were filed, up to now."""
    at = await conn.fetchval(
        "SELECT created_at FROM ticket WHERE kind = 'hazard' AND status <> 'draft' "
        "ORDER BY created_at DESC OFFSET $1 LIMIT 1", rows)
    if at is None:
        raise BenchError(f"fewer than {rows} tickets for the export")
    return f"{(at.astimezone(TZ) + timedelta(days=1)):%Y-%m-%d}"


def xlsx_rows(data: bytes) -> int:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True)
    try:
        return sum(1 for _ in book.worksheets[0].iter_rows(values_only=True)) - 1
    finally:
        book.close()


async def export_round(http: Http, path: str, memory: Memory) -> ExportRound:
    before = memory.read().get("VmRSS", 0.0)
    memory.peak_sampled = before
    cpu0 = cpu_seconds(memory.pid)
    started = time.perf_counter()
    first = math.nan
    chunks: list[bytes] = []
    async with http.session.get(http.base + path, headers=http.headers("plant")) as resp:
        status = resp.status
        async for chunk in resp.content.iter_chunked(256 * 1024):
            if math.isnan(first):
                first = time.perf_counter() - started
            chunks.append(chunk)
    total = time.perf_counter() - started
    cpu = cpu_seconds(memory.pid) - cpu0
    data = b"".join(chunks)
    rows = await asyncio.to_thread(xlsx_rows, data) if status == 200 else 0
    return ExportRound(first, total, len(data), rows, status, before, memory.peak_sampled,
                       memory.read().get("VmHWM", 0.0), cpu)


# --- 2. the overview --------------------------------------------------------------------------


@dataclass
class OverviewRun:
    series: dict[str, Series]
    not_cold: int           # asks that may have met the cache (the last answer < 2 s before)


async def overview_run(http: Http, windows: int, owners: Sequence[str]) -> OverviewRun:
    s = {k: Series(k, PAGE_TARGET_MS) for k in (
        "overview JSON, cold (plant)", "overview page, cold (plant)",
        "overview JSON, warm (plant)", "overview page, warm (plant)",
        "overview JSON, cold (departments)", "overview JSON, cold (own: an area owner)")}
    last_end: dict[str, float] = {}
    not_cold = 0

    async def cold(viewer: str, key: str, path: str, name: str) -> None:
        nonlocal not_cold
        start = time.perf_counter()
        if key in last_end and start - last_end[key] < CACHE_SECONDS + 0.05:
            not_cold += 1
        await http.timed(viewer, path, s[name])
        last_end[key] = time.perf_counter()

    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    for w in range(windows):
        await asyncio.sleep(max(0.0, t0 + w * COLD_WINDOW - loop.time()))
        page = w % 2 == 1
        await cold("plant", "plant", "/dashboard" if page else "/dashboard/api/overview",
                   "overview page, cold (plant)" if page else "overview JSON, cold (plant)")
        for _ in range(5):
            await http.timed("plant", "/dashboard/api/overview", s["overview JSON, warm (plant)"])
            await http.timed("plant", "/dashboard", s["overview page, warm (plant)"])
        await asyncio.sleep(max(0.0, t0 + w * COLD_WINDOW + 1.0 - loop.time()))
        await cold("departments", "departments", "/dashboard/api/overview",
                   "overview JSON, cold (departments)")
        await asyncio.sleep(max(0.0, t0 + w * COLD_WINDOW + 2.0 - loop.time()))
        owner = owners[w % len(owners)]
        await cold(owner, owner, "/dashboard/api/overview",
                   "overview JSON, cold (own: an area owner)")
    return OverviewRun(s, not_cold)


# --- 3. the ledger, 4. the map --------------------------------------------------------------


def ledger_paths(areas: Sequence[str], deep: int, now: datetime) -> dict[str, list[str]]:
    local = now.astimezone(TZ)
    since = f"{local - timedelta(days=90):%Y-%m-%d}"
    until = f"{local - timedelta(days=30):%Y-%m-%d}"
    return {
        "ledger: area + closed + 60 days, by deadline": [
            f"/dashboard/ledger?area={a}&status=closed&from={since}&to={until}&sort=deadline"
            for a in areas],
        "ledger: area + open, by deadline": [
            f"/dashboard/ledger?area={a}&status=open&sort=deadline" for a in areas],
        "ledger: overdue, by deadline": ["/dashboard/ledger?overdue=true&sort=deadline"],
        "ledger: unfiltered, first page": ["/dashboard/ledger"],
        f"ledger: unfiltered, page {deep:,}": [f"/dashboard/ledger?page={deep}"],
    }


async def ledger_run(http: Http, paths: dict[str, list[str]], samples: int) -> list[Series]:
    out = []
    for name, variants in paths.items():
        series = Series(name, PAGE_TARGET_MS)
        await http.timed("plant", variants[0])            # unmeasured: the first of its kind
        for i in range(samples):
            await http.timed("plant", variants[i % len(variants)], series)
        out.append(series)
    return out


async def map_run(http: Http, samples: int) -> Series | None:
    _, status, _ = await http.timed("plant", "/dashboard/api/map")
    if status == 404:
        return None
    series = Series("heat map JSON /dashboard/api/map", MAP_TARGET_MS)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(samples):            # at COLD_WINDOW intervals: whatever it caches expired
        await asyncio.sleep(max(0.0, t0 + (i + 1) * COLD_WINDOW - loop.time()))
        await http.timed("plant", "/dashboard/api/map", series)
    return series


# --- 5. live dashboards ------------------------------------------------------------------------


@dataclass
class Seen:
    at: float               # perf_counter when the fetch answered
    open: int


@dataclass
class Screen:
    events: list[float] = field(default_factory=list)
    fetched: list[Seen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connected: bool = False


async def refetch(http: Http, me: Screen) -> None:
    """What dashboard.js does on a `change` event, without holding up the stream."""
    try:
        _, status, body = await http.timed("plant", "/dashboard/api/overview")
    except (aiohttp.ClientError, TimeoutError) as exc:
        me.errors.append(f"overview {type(exc).__name__}")
        return
    if status == 200:
        me.fetched.append(Seen(time.perf_counter(), json.loads(body)["open"]))
    else:
        me.errors.append(f"overview {status}")


async def screen(http: Http, me: Screen, start_after: float, stop: asyncio.Event) -> None:
    """One open dashboard: the page's first fetch, then the SSE stream; on every `change`
    event the figures again, as dashboard.js does."""
    await asyncio.sleep(start_after)
    try:
        await http.timed("plant", "/dashboard/api/overview")
        async with http.session.get(http.base + "/dashboard/live",
                                    headers=http.headers("plant")) as resp:
            if resp.status != 200:
                me.errors.append(f"live {resp.status}")
                return
            me.connected = True
            event = ""
            fetches: list[asyncio.Task[None]] = []
            reader = asyncio.ensure_future(stop.wait())
            while not stop.is_set():
                line_task = asyncio.ensure_future(resp.content.readline())
                done, _ = await asyncio.wait({line_task, reader},
                                             return_when=asyncio.FIRST_COMPLETED)
                if line_task not in done:
                    line_task.cancel()
                    break
                line = line_task.result()
                if not line:
                    me.errors.append("stream ended")
                    break
                text = line.decode().strip()
                if text.startswith("event:"):
                    event = text.split(":", 1)[1].strip()
                elif not text and event == "change":
                    event = ""
                    me.events.append(time.perf_counter())
                    fetches.append(asyncio.create_task(refetch(http, me)))
            reader.cancel()
            await asyncio.gather(*fetches, return_exceptions=True)
    except (aiohttp.ClientError, TimeoutError) as exc:
        me.errors.append(type(exc).__name__)


@dataclass
class LiveRun:
    dashboards: int
    connected: int
    changes: list[float]                 # perf_counter after each change was committed
    all_fetched: list[float]             # per change: until every screen had the new figures
    each_fetched: list[float]            # per change and screen
    first_event: list[float]             # per change: until the first screen heard of it
    missed: int                          # (change, screen) pairs that never got the new figures
    errors: list[str]
    seconds: float
    cpu: dict[str, float]


async def submitted_tickets(conn: asyncpg.Connection, count: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM ticket WHERE status = 'submitted' AND grade = $1 AND recurs IS NULL "
        "AND first_approval = '' ORDER BY id DESC LIMIT $2", Grade.GENERAL.value, count)
    if len(rows) < count:
        raise BenchError(f"only {len(rows)} submitted tickets to close; {count} wanted")
    return [r["id"] for r in rows]


async def live_run(http: Http, pid: int, ids: Sequence[int], args: argparse.Namespace
                   ) -> LiveRun:
    stop = asyncio.Event()
    screens = [Screen() for _ in range(args.dashboards)]
    tasks = [asyncio.create_task(screen(http, me, args.ramp * i / args.dashboards, stop))
             for i, me in enumerate(screens)]
    await asyncio.sleep(args.ramp + 3.0)
    _, _, body = await http.timed("plant", "/dashboard/api/overview")
    open_before = json.loads(body)["open"]
    changes: list[float] = []
    cpu0 = (cpu_seconds(pid), postgres_cpu_seconds(), time.process_time(), time.perf_counter())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i, tid in enumerate(ids):
        await asyncio.sleep(max(0.0, t0 + i * args.change_every - loop.time()))
        ticket = await Ticket.get(id=tid)
        reviewer = await User.get(id=ticket.reviewer_id)
        await approve(ticket, reviewer, datetime.now(UTC))
        changes.append(time.perf_counter())
    await asyncio.sleep(args.change_every + 3.0)
    cpu1 = (cpu_seconds(pid), postgres_cpu_seconds(), time.process_time(), time.perf_counter())
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    wall = cpu1[3] - cpu0[3]
    all_fetched, each, first_event, missed = [], [], [], 0
    for i, at in enumerate(changes):
        expected = open_before - (i + 1)
        upto = changes[i + 1] if i + 1 < len(changes) else math.inf
        slowest = 0.0
        for me in screens:
            if not me.connected:
                continue
            got = [s.at for s in me.fetched if at <= s.at and s.open <= expected]
            if not got or got[0] > upto + args.change_every:
                missed += 1
                continue
            each.append(got[0] - at)
            slowest = max(slowest, got[0] - at)
        all_fetched.append(slowest)
        heard = [e for me in screens for e in me.events if e >= at and e < upto]
        if heard:
            first_event.append(min(heard) - at)
    errors = [e for me in screens for e in me.errors]
    return LiveRun(args.dashboards, sum(me.connected for me in screens), changes, all_fetched,
                   each, first_event, missed, errors, wall,
                   {"service": (cpu1[0] - cpu0[0]) / wall, "postgres": (cpu1[1] - cpu0[1]) / wall,
                    "bench": (cpu1[2] - cpu0[2]) / wall})


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Results:
    info: dict[str, str]
    loaded: Loaded
    export_filter: str
    exports: list[ExportRound]
    overview: OverviewRun
    ledger: list[Series]
    heat_map: Series | None
    live: LiveRun
    rss_idle: float
    log: Path


async def sessions(plant: Plant, owners: Sequence[str]) -> dict[str, str]:
    now = datetime.now(UTC)
    lasts = timedelta(hours=SESSION_HOURS)
    await add_admin("bench", now)
    found = {"plant": (await open_session(now, lasts, admin="bench")).token,
             "departments": (await open_session(now, lasts, user_id=plant.supervisors[0])).token}
    for owner in owners:
        found[owner] = (await open_session(now, lasts, user_id=owner)).token
    return found


async def bench(args: argparse.Namespace, code: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    # tick_bench's generator dates everything from its NOW (a fixed instant): ours is the
    # service's clock, the wall clock, so "this month" and "overdue" mean what they say.
    tick_bench.NOW = datetime.now(UTC).replace(microsecond=0)
    tick_bench.MAJOR_SHARE = args.major_share
    plant = Plant(args.areas)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{time.strftime('%Y%m%d-%H%M%S')}-dashboard-serve.log"
    with tempfile.TemporaryDirectory(prefix="safetybot-dashbench-") as tmp:
        roster = Path(tmp) / "roster.toml"
        plant.write_roster(roster)
        media = Path(tmp) / "media"
        catalog = load_catalog(ROOT / "config" / "categories.toml")
        ladder = _ladder()
        gen = DashGenerator(plant, ladder, [c.code for c in catalog.categories],
                            args.open_share, 0, random.Random(args.seed))
        async with fresh_database(args.admin_dsn) as dsn:
            info = await machine_info(dsn) | {"service code": code}
            print("migrate, load-org …", file=sys.stderr)
            await migrate(dsn)
            ctx = await open_database(dsn)
            conn = await asyncpg.connect(dsn)
            child: Child | None = None
            http: Http | None = None
            try:
                with ctx:
                    await load_org(roster, tick_bench.NOW - timedelta(days=400),
                                   FolderStore(media))
                    print(f"loading {args.tickets:,} tickets …", file=sys.stderr)
                    loaded = await load(conn, gen, args.tickets)
                    owners = plant.owners[:args.areas]
                    tokens = await sessions(plant, owners)
                    since = await export_from(conn, args.export_rows)
                    ids = await submitted_tickets(conn, args.changes)
                    port = free_port()
                    site = Path(tmp) / "site.toml"
                    write_site(site, plant.areas)
                    env = service_env(pool_url(dsn, args.pool_size), port, media) | {
                        "SAFETYBOT_WECOM_API_BASE": f"http://127.0.0.1:{free_port()}",
                        "SAFETYBOT_DASHBOARD_SITE_FILE": str(site)}
                    argv = safetybot_argv("serve", *([] if args.scheduler
                                                     else ["--no-scheduler"]))
                    child = await Child.start("serve", argv, env, log)
                    await child.wait_ready(f"http://127.0.0.1:{port}/readyz")
                    http = Http(f"http://127.0.0.1:{port}", tokens)
                    memory = Memory(child.proc.pid)
                    await http.timed("plant", "/dashboard/api/overview")      # warm-up
                    rss_idle = memory.read().get("VmRSS", 0.0)
                    print("export …", file=sys.stderr)
                    memory.start()
                    exports = [await export_round(http, f"/dashboard/ledger.xlsx?from={since}",
                                                  memory) for _ in range(args.export_rounds)]
                    await memory.stop()
                    print("overview …", file=sys.stderr)
                    over = await overview_run(http, args.windows, owners)
                    print("ledger …", file=sys.stderr)
                    deep = min(args.deep_page, args.tickets // 50)
                    ledger = await ledger_run(http, ledger_paths(plant.areas, deep,
                                                                 tick_bench.NOW), args.samples)
                    print("heat map …", file=sys.stderr)
                    heat = await map_run(http, args.samples)
                    print(f"{args.dashboards} live dashboards …", file=sys.stderr)
                    live = await live_run(http, child.proc.pid, ids, args)
            finally:
                if http is not None:
                    await http.close()
                if child is not None:
                    await child.stop()
                await conn.close()
                await ctx.close_connections()
    results = Results(info, loaded, f"from={since}", exports, over, ledger, heat, live,
                      rss_idle, log)
    return 0 if report(args, results) else 2


def write_site(path: Path, areas: Sequence[str]) -> None:
    """The risk map's site file for the generated areas: the shipped plan, the areas in a grid
    of 5 columns."""
    plan = ROOT / "config" / "site" / "plan.svg"
    parts = [f'plan = "{plan}"\nwidth = 800\nheight = 500\n']
    for i, code in enumerate(areas):
        x, y = 20 + (i % 5) * 155, 20 + (i // 5) * 120
        parts.append(f'[[area]]\ncode = "{code}"\npolygon = [[{x}, {y}], [{x + 140}, {y}], '
                     f'[{x + 140}, {y + 100}], [{x}, {y + 100}]]\n')
    path.write_text("\n".join(parts), encoding="utf-8")


def _ladder() -> Any:
    from bot.scheduling import load_policy

    settings = load_settings({})
    return load_policy(settings.schedule, settings.tz).ladder


# ---------------------------------------------------------------------------------------------
# Report


def report(args: argparse.Namespace, r: Results) -> bool:
    out: list[str] = ["# Dashboard benchmark", ""]
    out += [f"* {k}: {v}" for k, v in r.info.items()]
    c = r.loaded.counts
    out += [f"* date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"* tickets: {c['total']:,} over 12 months, {c['areas']} areas, {c['categories']} "
            f"categories; active {c['active']:,} (plan {c['plan']:,}, submitted "
            f"{c['submitted']:,}), overdue {c['overdue']:,}, 重大 {c['major']:,}, cancelled "
            f"{c['cancelled']:,}; {c['alarms']:,} alarm rows; loaded in {r.loaded.seconds:.0f} s",
            f"* service: `safetybot serve{'' if args.scheduler else ' --no-scheduler'}`, pool "
            f"{args.pool_size}, idle RSS {r.rss_idle:.0f} MB", ""]
    ok = True

    out += ["## Export (xlsx)", "",
            f"Filter `{r.export_filter}`.", "",
            "| round | rows | MB | first byte s | total s | target s | ratio | RSS before MB | "
            "peak RSS (sampled) MB | VmHWM MB | target MB | ratio | service CPU s | |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for i, e in enumerate(r.exports, 1):
        good = (e.status == 200 and e.total < EXPORT_TARGET_S and e.hwm < RSS_TARGET_MB
                and e.rows >= min(args.export_rows, r.loaded.counts["total"]) * 0.9)
        ok &= good
        out.append(f"| {i} | {e.rows:,} | {e.size / 1e6:.1f} | {e.first_byte:.1f} | "
                   f"**{e.total:.1f}** | {EXPORT_TARGET_S:.0f} | "
                   f"{e.total / EXPORT_TARGET_S:.2f} | "
                   f"{e.rss_before:.0f} | {e.rss_peak:.0f} | **{e.hwm:.0f}** | "
                   f"{RSS_TARGET_MB:.0f} | {e.hwm / RSS_TARGET_MB:.2f} | {e.cpu:.1f} | "
                   f"{'ok' if good else 'MISSED'} |")

    header = ["| what | n | p50 ms | p95 ms | max ms | target ms | p95/target | non-200 | |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    out += ["", "## Overview", "",
            f"Cold asks of one viewer kind {COLD_WINDOW:.0f} s apart "
            f"(cache {CACHE_SECONDS:.0f} s); "
            f"warm: the same again at once, 5 each after every cold plant ask. Asks that may "
            f"have met the cache: {r.overview.not_cold}.", "", *header]
    for s in r.overview.series.values():
        ok &= s.ok
        out.append(s.row())
    out += ["", "## Ledger", "", *header]
    for s in r.ledger:
        ok &= s.ok
        out.append(s.row())
    out += ["", "## Heat map", ""]
    if r.heat_map is None:
        out.append("TODO: `/dashboard/api/map` answered 404 (not on this code yet); not measured.")
    else:
        ok &= r.heat_map.ok
        out += [*header, r.heat_map.row()]

    lv = r.live
    out += ["", "## Live dashboards", "",
            f"{lv.connected}/{lv.dashboards} connected (ramp {args.ramp:g} s); "
            f"{len(lv.changes)} tickets closed, one every {args.change_every:g} s; "
            f"{lv.missed} (change, dashboard) pairs without the new figures; "
            f"errors: {len(lv.errors)}"
            f"{' ' + str(sorted(set(lv.errors))[:5]) if lv.errors else ''}.",
            "",
            "| | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|",
            f"| change → first `change` event | {pct(lv.first_event, 50):.0f} | "
            f"{pct(lv.first_event, 95):.0f} | "
            f"{max(lv.first_event, default=math.nan) * 1000:.0f} |",
            f"| change → one dashboard has the new figures | {pct(lv.each_fetched, 50):.0f} | "
            f"{pct(lv.each_fetched, 95):.0f} | "
            f"{max(lv.each_fetched, default=math.nan) * 1000:.0f} |",
            f"| change → all {lv.connected} have them | {pct(lv.all_fetched, 50):.0f} | "
            f"**{pct(lv.all_fetched, 95):.0f}** | "
            f"{max(lv.all_fetched, default=math.nan) * 1000:.0f} |", "",
            f"CPU over {lv.seconds:.0f} s, share of one core: service "
            f"{lv.cpu['service'] * 100:.0f}%, PostgreSQL (all) {lv.cpu['postgres'] * 100:.0f}%, "
            f"benchmark (200 clients) {lv.cpu['bench'] * 100:.0f}%."]
    ok &= lv.connected == lv.dashboards and lv.missed == 0
    logged = log_summary(r.log)
    out += ["", "## Service log (warnings and errors)", ""]
    out += [f"    {line}" for line in logged] if logged else ["none"]
    out += ["", f"**{'All targets met.' if ok else 'A target was missed.'}**"]
    print("\n".join(out))
    return ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tickets", type=int, default=1_000_000)
    p.add_argument("--open-share", type=float, default=0.05,
                   help="share of tickets still active (default 0.05)")
    p.add_argument("--major-share", type=float, default=0.03, help="重大 (default 0.03)")
    p.add_argument("--areas", type=int, default=20)
    p.add_argument("--export-rows", type=int, default=100_000,
                   help="tickets the export's filter selects, about (default 100000)")
    p.add_argument("--export-rounds", type=int, default=2)
    p.add_argument("--windows", type=int, default=20,
                   help="cold overview asks per viewer kind, 3 s apart (default 20)")
    p.add_argument("--samples", type=int, default=20, help="asks per ledger page (default 20)")
    p.add_argument("--deep-page", type=int, default=1000)
    p.add_argument("--dashboards", type=int, default=200)
    p.add_argument("--ramp", type=float, default=10.0,
                   help="seconds over which the dashboards open (default 10; 0: at once)")
    p.add_argument("--changes", type=int, default=12)
    p.add_argument("--change-every", type=float, default=3.0)
    p.add_argument("--pool-size", type=int, default=10)
    p.add_argument("--scheduler", action="store_true",
                   help="run the service with its scheduler (default --no-scheduler)")
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--quick", action="store_true",
                   help="100,000 tickets, an export of 10,000, 50 dashboards, fewer asks")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    if args.quick:
        args.tickets, args.export_rows, args.export_rounds = 100_000, 10_000, 1
        args.windows, args.samples, args.dashboards, args.changes = 6, 8, 50, 4
        args.ramp = min(args.ramp, 3.0)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    return run_bench("dashboard_bench", bench(parse_args(argv), code_version()),
                     "service stopped, database dropped")


if __name__ == "__main__":
    sys.exit(main())
