"""Report benchmark: N workers each complete a whole hazard report dialog at the same time.

End to end on PostgreSQL through the WeCom simulator, against the service run as deployed
(`safetybot serve`, or `serve --no-workers` + `safetybot work`). Each worker sends a photo,
answers the area question with one sentence, and clicks 提交 on the summary card; the owner gets
the photo and the ticket card. The simulator runs in this process, so the moment it *accepted*
each of the bot's messages is known exactly.

A step's latency is the time from sending its callback to the simulator accepting the first
message that answers it (issue 3's "time from a callback to the reply accepted by the
simulator"); the target is a p95 under 500 ms with 200 concurrent workers: 200 people in their
dialogs at the same time, each reading a reply and typing the next answer as people do.

By default the workers are paced so (`--think 2-6 --ramp 4`): they leave the start line over
the first 4 s, as a load test ramps up its users, and before each step after the first a worker
waits a random 2–6 s (seeded) after the previous step's last reply. `--think 0` makes every
worker answer the moment a reply arrives, and `--ramp 0` sends every photo at the start line:
stress runs (the steps of all workers arrive in waves of N), which measure capacity, not the
target.

    .venv/bin/python benchmarks/report_bench.py [--levels 50,200] [--rounds 2] [--think 2-6]
                                                [--ramp 4]
                                                [--worker-nice 10] [--py-spy PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_bench import (  # noqa: E402
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    SECRET,
    TOKEN,
    BenchError,
    Child,
    api_env,
    code_version,
    cpu_seconds,
    fmt,
    free_port,
    fresh_database,
    log_summary,
    machine_info,
    pool_url,
    postgres_cpu_seconds,
    run_bench,
    safetybot_argv,
    service_env,
    start_profiler,
)
from bot.db import POSTGRES_POOL_SIZE  # noqa: E402
from models.catalog import Grade, load_catalog  # noqa: E402
from simulator.photos import photo  # noqa: E402
from simulator.wecom import Delivered, WeComSimulator  # noqa: E402

CATEGORIES_FILE = ROOT / "config" / "categories.toml"
STEP_TIMEOUT = 60.0            # seconds a worker waits for one reply before the dialog fails
# One sentence per category that names no owner of its own (用电类 sends every ticket to 高峰,
# and one person's 30 messages a minute would then be what is measured). Checked against the
# category library at start-up: each must find its category and suggest 一般 (a 重大 ticket goes
# to the principal instead of the owner).
REPORTS = {
    "F02": "灭火器压力不足，指针在红区",
    "M03": "皮带轮防护罩缺失",
    "C04": "储罐法兰有滴漏",
    "S05": "叉车倒车灯不亮",
    "W06": "动火作业没有作业票",
    "P07": "有人进现场未戴安全帽",
    "G08": "通道内杂物堆放",
    "D09": "巡检记录没有填写",
}
STEPS = ("photo", "text", "submit")
REVIEWERS = 10


class BenchPeople:
    """What a benchmark needs of a platform's simulator, mixed into either of them.

    * Each accepted message wakes the one worker waiting for it (`_arrival`, called by the
      simulator's `_deliver`), instead of every waiter re-checking a condition on every delivery
      (200 waiters × 1,200 deliveries a round).
    * Callbacks go through a session without aiohttp's default limit of 100 connections: with
      200 workers, that limit would queue callbacks in our own client and be measured.
    Both lean on private methods the two simulators share (`_deliver`, `_client`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arrived: dict[str, asyncio.Event] = {}
        self._callbacks: aiohttp.ClientSession | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        base: str = await super().start(host, port)  # type: ignore[misc]
        self._callbacks = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=5))   # WeCom gives up after 5 s
        return base

    async def stop(self) -> None:
        if self._callbacks is not None:
            await self._callbacks.close()
        await super().stop()  # type: ignore[misc]

    def _client(self) -> aiohttp.ClientSession:
        assert self._callbacks is not None, "start the simulator first"
        return self._callbacks

    def _arrival(self, member: str) -> None:
        waiting = self._arrived.get(member.lower())
        if waiting is not None:
            waiting.set()

    async def message(self, user: str, index: int, timeout: float) -> Any:  # noqa: ASYNC109
        """`user`'s message number `index` (from 0), once the simulator has accepted it."""
        arrived = self._arrived.setdefault(user.lower(), asyncio.Event())
        async with asyncio.timeout(timeout):
            while True:
                inbox = self.messages_for(user)  # type: ignore[attr-defined]
                if len(inbox) > index:
                    return inbox[index]
                arrived.clear()
                await arrived.wait()


class BenchSimulator(BenchPeople, WeComSimulator):
    """The project's WeCom simulator, told apart only in what a benchmark needs."""

    def __init__(self, users: Sequence[str]) -> None:
        super().__init__(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users)

    def _deliver(self, member: str, msgtype: str, body: dict[str, Any], now: float) -> None:
        super()._deliver(member, msgtype, body, now)
        self._arrival(member)


# ---------------------------------------------------------------------------------------------
# The plant: generated roster, one report per worker


@dataclass(frozen=True)
class Report:
    worker: str
    area: str              # its name, as the worker types it
    owner: str
    category: str
    text: str
    photo: bytes


class Plant:
    """`areas` areas, each with an owner of its own, and a fresh set of workers for every
    round. Every report (warm-ups included) gets an area and category pair no other report of
    the run has, so each is filed as a new ticket and never linked to an open one (72 h window):
    the benchmark measures filing. A worker reports once per run, so nobody nears WeCom's 30
    messages a minute (a reporter gets 4 per dialog, an owner 2 per ticket)."""

    def __init__(self, areas: int, workers: int) -> None:
        self.areas = [(f"A{i:03d}", f"A{i:03d}区", f"zrr{i:03d}") for i in range(1, areas + 1)]
        self.reviewers = [f"fcr{i:02d}" for i in range(1, REVIEWERS + 1)]
        self.workers = [f"yg{i:04d}" for i in range(1, workers + 1)]
        self._free_workers = iter(self.workers)
        self._pairs = iter(itertools.product(range(len(REPORTS)), range(areas)))
        self._photos = itertools.count(1)

    @property
    def users(self) -> list[str]:
        return [owner for _, _, owner in self.areas] + self.reviewers + self.workers

    def reports(self, n: int) -> list[Report]:
        out = []
        for _ in range(n):
            category_index, area_index = next(self._pairs)
            category, text = list(REPORTS.items())[category_index]
            _, name, owner = self.areas[area_index]
            out.append(Report(next(self._free_workers), name, owner, category,
                              f"{name} {text}", photo(next(self._photos))))
        return out

    def write_roster(self, path: Path) -> None:
        parts = ['[[departments]]\nid = "bench"\nname = "压测部"\n']
        for i, (_, _, owner) in enumerate(self.areas, 1):
            parts.append(f'[[users]]\nid = "{owner}"\nname = "责任人{i:03d}"\n'
                         f'department = "bench"\nroles = ["owner"]\n')
        for i, reviewer in enumerate(self.reviewers, 1):
            parts.append(f'[[users]]\nid = "{reviewer}"\nname = "复查人{i:02d}"\n'
                         f'department = "bench"\nroles = ["reviewer"]\n')
        for i, worker in enumerate(self.workers, 1):
            parts.append(f'[[users]]\nid = "{worker}"\nname = "员工{i:04d}"\n'
                         f'department = "bench"\nroles = ["worker"]\n')
        for i, (code, name, owner) in enumerate(self.areas):
            parts.append(f'[[areas]]\ncode = "{code}"\nname = "{name}"\nowner = "{owner}"\n'
                         f'reviewer = "{self.reviewers[i % REVIEWERS]}"\n')
        path.write_text("\n".join(parts), encoding="utf-8")


def check_reports() -> None:
    """The sentences still do what the benchmark relies on with today's category library."""
    catalog = load_catalog(CATEGORIES_FILE)
    for code, text in REPORTS.items():
        found = catalog.find(text)
        if found is None or found.code != code:
            raise BenchError(f"{CATEGORIES_FILE}: {text!r} is no longer category {code}")
        if found.owner or found.reviewer:
            raise BenchError(f"{CATEGORIES_FILE}: category {code} now names its own owner")
        if catalog.suggest(text, found).grade is not Grade.GENERAL:
            raise BenchError(f"{CATEGORIES_FILE}: {text!r} is now suggested as 重大")


# ---------------------------------------------------------------------------------------------
# One worker's dialog


@dataclass
class Step:
    name: str
    first: float           # seconds from sending the callback to the first reply accepted
    last: float            # … to the step's last reply (the question the worker answers next)
    ack: float             # … to the callback's HTTP answer


@dataclass
class Dialog:
    report: Report
    steps: list[Step] = field(default_factory=list)
    number: str = ""
    started_at: float = math.nan      # when the photo was sent
    submitted_at: float = math.nan    # when the 提交 click was sent
    filed_at: float = math.nan        # when "已提交，编号 …" was accepted
    error: str = ""


def text_of(message: Delivered) -> str:
    body = message.body
    if message.msgtype in ("text", "markdown"):
        return str(body[message.msgtype]["content"])
    if message.msgtype == "template_card":
        return str(body["template_card"].get("main_title", {}).get("title", ""))
    return f"[{message.msgtype}]"


class DialogFailed(Exception):
    pass


@dataclass(frozen=True)
class Pace:
    """How long a worker takes to read a reply and answer it: uniform in [low, high] seconds,
    from a generator seeded per worker, so a run can be repeated. (0, 0): at once."""

    low: float = 0.0
    high: float = 0.0
    seed: int = 1
    ramp: float = 0.0      # the workers leave the start line spread over this many seconds

    def __str__(self) -> str:
        start = (f"photos sent over the first {self.ramp:g} s, uniform (seed {self.seed}); "
                 if self.ramp else "every photo sent at the start line; ")
        if not self.high:
            return start + "each step sent the moment the previous step's last reply arrives"
        return start + (f"{self.low:g}–{self.high:g} s, uniform, after the previous step's "
                        "last reply arrived, before each step after the first")

    @property
    def paced_like_people(self) -> bool:
        """The target's scenario: people start over a while and take time to answer."""
        return bool(self.ramp and self.low)

    def thinker(self, worker: str) -> random.Random:
        return random.Random(f"{self.seed}:{worker}")


async def run_dialog(sim: BenchSimulator, report: Report, go: asyncio.Event,
                     pace: Pace = Pace()) -> Dialog:
    dialog = Dialog(report)
    user, seen = sim.user(report.worker), 0
    thinker = pace.thinker(report.worker)

    async def think() -> None:
        """A person reads the reply and types the answer; not part of any step's latency."""
        if pace.high:
            await asyncio.sleep(thinker.uniform(pace.low, pace.high))

    async def step(name: str, send: Any, *expected: str | tuple[str, ...]) -> list[Delivered]:
        """Send one callback; wait for one reply per expected item (a phrase, or phrases that
        one message holds together), in order."""
        nonlocal seen
        started = time.monotonic()
        answer = await send()
        ack = time.monotonic() - started
        if answer.status != 200:
            raise DialogFailed(f"{name}: callback answered {answer.status}")
        replies = []
        for item in expected:
            phrases = (item,) if isinstance(item, str) else item
            try:
                message = await sim.message(report.worker, seen, STEP_TIMEOUT)
            except TimeoutError:
                raise DialogFailed(f"{name}: no reply containing {phrases!r} after "
                                   f"{STEP_TIMEOUT:.0f} s") from None
            seen += 1
            if not all(phrase in text_of(message) for phrase in phrases):
                raise DialogFailed(f"{name}: expected {phrases!r}, got {text_of(message)[:60]!r}")
            replies.append(message)
        dialog.steps.append(Step(name, replies[0].at - started, replies[-1].at - started, ack))
        return replies

    await go.wait()
    if pace.ramp:
        await asyncio.sleep(thinker.uniform(0, pace.ramp))
    dialog.started_at = time.monotonic()
    try:
        await step("photo", lambda: user.sends_photo(report.photo, "image/png"),
                   ("已收到照片（共1张）", "哪个区域"))
        await think()
        [card] = await step("text", lambda: user.says(report.text), "请确认隐患上报")
        tc = card.body["template_card"]
        [submit] = [b for b in tc["button_list"] if b["text"] == "提交"]
        await think()
        dialog.submitted_at = time.monotonic()
        [filed] = await step("submit", lambda: user.clicks(tc["task_id"], submit["key"]),
                             "已提交，编号")
        dialog.filed_at = filed.at
        dialog.number = text_of(filed).split("编号", 1)[1].split("。", 1)[0].strip()
    except DialogFailed as exc:
        dialog.error = str(exc)
    except (aiohttp.ClientError, TimeoutError) as exc:
        dialog.error = f"callback failed: {exc!r}"
    return dialog


async def owners_got_cards(sim: BenchSimulator, dialogs: Sequence[Dialog],
                           timeout: float) -> dict[str, float]:  # noqa: ASYNC109
    """Each filed ticket's owner card, by ticket number: seconds from the 提交 click to the
    simulator accepting it (absent: it did not come within `timeout`)."""
    wanted = {d.number: d for d in dialogs if d.number}
    found: dict[str, float] = {}

    def look() -> bool:
        for owner in {d.report.owner for d in wanted.values()}:
            for message in sim.messages_for(owner):
                title = text_of(message)
                for number in [n for n in wanted if n not in found and n in title]:
                    found[number] = message.at - wanted[number].submitted_at
        return len(found) == len(wanted)

    with contextlib.suppress(TimeoutError):
        await sim.until(look, timeout)
    return found


# ---------------------------------------------------------------------------------------------
# Targets, rounds


@dataclass
class Target:
    """One deployment: its answering process, and `safetybot work` beside it if split."""

    name: str
    serve: list[str]
    work: list[str] | None
    env: dict[str, str]
    port: int
    work_env: dict[str, str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class RoundResult:
    target: str
    level: int
    index: int
    dialogs: list[Dialog]
    elapsed: float                  # go to the last "已提交" accepted
    owner_cards: dict[str, float]
    cpu: dict[str, float]           # CPU seconds during the round, by process
    checks: dict[str, Any]

    @property
    def completed(self) -> list[Dialog]:
        return [d for d in self.dialogs if not d.error]

    @property
    def tickets_per_minute(self) -> float:
        return len(self.completed) / self.elapsed * 60 if self.elapsed else 0.0

    @property
    def peak_open(self) -> int:
        """The most dialogs under way at one moment (photo sent, "已提交" not yet accepted):
        how many workers were really in a dialog at the same time."""
        edges = sorted([(d.started_at, 1) for d in self.completed]
                       + [(d.filed_at, -1) for d in self.completed])
        return max(itertools.accumulate(change for _, change in edges), default=0)

    def latencies(self, step: str | None = None, kind: str = "first") -> list[float]:
        return [getattr(s, kind) for d in self.dialogs for s in d.steps
                if step is None or s.name == step]


def percentile_ms(values: Sequence[float], p: float) -> float:
    """Nearest rank: an observed latency, never an interpolated one."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def process_cpu(children: dict[str, Child]) -> dict[str, float]:
    cpu = {name: cpu_seconds(c.proc.pid) for name, c in children.items()}
    cpu["postgres"] = postgres_cpu_seconds()
    cpu["bench+simulator"] = time.process_time()
    return cpu


async def start_target(target: Target, logs: Path, args: argparse.Namespace,
                       index: int) -> tuple[dict[str, Child], Child | None]:
    """Its processes, ready; and py-spy on the one that handles the inbox, if asked."""
    children: dict[str, Child] = {}
    try:
        if target.work is not None and target.work_env is not None:
            work = await Child.start("work", target.work, target.work_env,
                                     logs / f"{target.name}-work.log")
            children["work"] = work
            await work.wait_ready(f"http://127.0.0.1:{target.work_env['SAFETYBOT_PORT']}"
                                  "/readyz")
        serve = await Child.start("serve", target.serve, target.env,
                                  logs / f"{target.name}-serve.log")
        children["serve"] = serve
        await serve.wait_ready(target.base + "/readyz")
    except BaseException:
        for child in children.values():
            await child.stop()
        raise
    handler = children.get("work", children["serve"])
    profiler = await start_profiler(args, handler, handler.log, index)
    return children, profiler


async def run_round(sim: BenchSimulator, plant: Plant, target: Target, level: int,
                    index: int, args: argparse.Namespace, dsn: str) -> RoundResult:
    sim.callback_url = target.base + "/wecom/callback"
    children, profiler = await start_target(target, args.logs, args, index)
    try:
        warm = await asyncio.gather(*(run_dialog(sim, r, _set())
                                      for r in plant.reports(args.warmup)))
        failed = [d.error for d in warm if d.error]
        if failed:
            raise BenchError(f"{target.name}: the warm-up dialog failed: {failed[0]}; see "
                             f"{args.logs}")
        await owners_got_cards(sim, warm, STEP_TIMEOUT)
        reports = plant.reports(level)
        go = asyncio.Event()
        tasks = [asyncio.create_task(run_dialog(sim, r, go, args.pace)) for r in reports]
        await asyncio.sleep(0.2)           # every worker is waiting at the start line
        before = process_cpu(children)
        started = time.monotonic()
        go.set()
        dialogs = list(await asyncio.gather(*tasks))
        ends = [d.filed_at for d in dialogs if not d.error]
        elapsed = (max(ends) if ends else time.monotonic()) - started
        cards = await owners_got_cards(sim, dialogs, STEP_TIMEOUT)
        after = process_cpu(children)
        checks = await round_checks(dsn, reports)
    finally:
        for child in children.values():
            await child.stop()
        if profiler is not None:            # py-spy writes its file when its process ends
            await profiler.stop(grace=10.0)
    cpu = {name: after[name] - before[name] for name in before}
    return RoundResult(target.name, level, index, dialogs, elapsed, cards, cpu, checks)


def _set() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def round_checks(dsn: str, reports: Sequence[Report]) -> dict[str, Any]:
    """What the database says about this round's reporters: one open ticket each, owned by the
    area's owner, numbers unique, no dialog left; and the pipeline's failures so far."""
    workers = [r.worker for r in reports]
    owners = {r.worker: r.owner for r in reports}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT reporter_id, status, number, owner_id FROM ticket "
            "WHERE reporter_id = ANY($1::text[])", workers)
        dialogs_left = await conn.fetchval(
            "SELECT count(*) FROM dialog WHERE user_id = ANY($1::text[])", workers)
        parked = await conn.fetchval("SELECT count(*) FROM inbox_event WHERE status = 'parked'")
        deliveries = await conn.fetch(
            "SELECT status, count(*) AS n FROM outbox_delivery GROUP BY status")
    finally:
        await conn.close()
    per_worker = Counter(r["reporter_id"] for r in rows)
    numbers = [r["number"] for r in rows if r["number"]]
    return {
        "tickets": len(rows),
        "open": sum(1 for r in rows if r["status"] == "open"),
        "workers with exactly one": sum(1 for w in workers if per_worker[w] == 1),
        "wrong owner": sum(1 for r in rows if r["owner_id"] != owners[r["reporter_id"]]),
        "duplicate numbers": len(numbers) - len(set(numbers)),
        "dialogs left": int(dialogs_left),
        "parked events (run)": int(parked),
        "deliveries (run)": {str(d["status"]): int(d["n"]) for d in deliveries},
    }


# ---------------------------------------------------------------------------------------------
# Set-up


async def run_command(env: dict[str, str], *command: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *safetybot_argv(*command), cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"safetybot {' '.join(command)} took more than 120 s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"safetybot {' '.join(command)} failed:\n{text}")
    return text


def make_targets(args: argparse.Namespace, dsn: str, media: Path, api: str,
                 platform: str = "wecom") -> dict[str, Target]:
    """The deployments in `args.targets`, on `platform` only, its API at `api`."""
    url = pool_url(dsn, args.pool_size)

    def env(port: int) -> dict[str, str]:
        return service_env(url, port, media, platform) | api_env(platform, api)

    split_port, work_port, single_port = free_port(), free_port(), free_port()
    work = safetybot_argv("work")
    if args.worker_nice:
        work = ["nice", "-n", str(args.worker_nice), *work]
    targets = {
        "split": Target("split", safetybot_argv("serve", "--no-workers"), work,
                        env(split_port), split_port, env(work_port)),
        "single": Target("single", safetybot_argv("serve"), None, env(single_port),
                         single_port),
    }
    return {name: targets[name] for name in args.targets}


# ---------------------------------------------------------------------------------------------
# Report


def summary_rows(results: Sequence[RoundResult]) -> list[str]:
    rows = []
    groups: dict[tuple[str, int], list[RoundResult]] = {}
    for r in results:
        groups.setdefault((r.target, r.level), []).append(r)
    for (target, level), rounds in groups.items():
        p = {q: median([percentile_ms(r.latencies(), q) for r in rounds]) for q in (50, 95, 99)}
        tpm = median([r.tickets_per_minute for r in rounds])
        done = sum(len(r.completed) for r in rounds)
        total = sum(len(r.dialogs) for r in rounds)
        owner = median([percentile_ms(list(r.owner_cards.values()), 95) for r in rounds])
        peak = min(r.peak_open for r in rounds)
        rows.append(f"| {target} | {level} | {peak} | {fmt(p[50])} | {fmt(p[95])} | "
                    f"{fmt(p[99])} | {fmt(tpm)} | {fmt(owner)} | {done}/{total} |")
    return rows


def report(args: argparse.Namespace, info: dict[str, str], results: Sequence[RoundResult],
           sim: BenchSimulator, logs: Path) -> bool:
    """Prints the Markdown report; True when every dialog completed with exactly one ticket."""
    print("\n## Report benchmark\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- {args.areas} areas (one owner each), a fresh set of workers every round, "
          f"{args.warmup} warm-up dialog(s) per round; pool {args.pool_size} per process; "
          f"`safetybot work` under nice {args.worker_nice}; {args.rounds} rounds, medians")
    print(f"- pacing: {args.pace}\n")
    print("Latency: callback sent → first reply accepted by the simulator, all steps pooled.\n")
    print("Peak open: the most dialogs under way at one moment (the lowest of the rounds).\n")
    print("| target | workers | peak open | p50 ms | p95 ms | p99 ms | tickets/min | "
          "owner card p95 ms (after 提交) | dialogs ok |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in summary_rows(results):
        print(row)
    print()
    for target in args.targets:
        rounds = [r for r in results if r.target == target and r.level == max(args.levels)]
        p95 = median([percentile_ms(r.latencies(), 95) for r in rounds])
        verdict = "met" if p95 < 500 else "MISSED"
        if not args.pace.paced_like_people:
            verdict += "; a stress run, not the target's pacing"
        print(f"{target}, {max(args.levels)} workers: p95 {fmt(p95)} ms (target < 500: "
              f"{verdict})")
    print("\n### Per step (medians over rounds; first reply / last reply of the step / "
          "callback answer)\n")
    print("| target | workers | step | p50 ms | p95 ms | p99 ms | last reply p95 ms | "
          "ack p95 ms |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for target in args.targets:
        for level in args.levels:
            rounds = [r for r in results if r.target == target and r.level == level]
            for step in STEPS:
                def med(q: float, kind: str = "first", s: str = step,
                        rs: list[RoundResult] = rounds) -> str:
                    return fmt(median([percentile_ms(r.latencies(s, kind), q) for r in rs]))
                print(f"| {target} | {level} | {step} | {med(50)} | {med(95)} | {med(99)} | "
                      f"{med(95, 'last')} | {med(95, 'ack')} |")
    print("\n### Rounds\n")
    print("| # | target | workers | s | tickets/min | p50 | p95 | p99 | dialogs ok | "
          "tickets / exactly one / open / dup numbers / dialogs left | owner cards | "
          "CPU s: " + " / ".join(cpu_names(results)) + " |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    all_ok = True
    for r in results:
        c = r.checks
        ok = (len(r.completed) == len(r.dialogs) == c["tickets"] == c["open"]
              == c["workers with exactly one"] == len(r.owner_cards)
              and c["duplicate numbers"] == c["dialogs left"] == c["wrong owner"] == 0)
        all_ok = all_ok and ok
        cpu = " / ".join(fmt(r.cpu.get(n, math.nan), 1) for n in cpu_names(results))
        lat = r.latencies()
        print(f"| {r.index + 1} | {r.target} | {r.level} | {r.elapsed:.1f} | "
              f"{r.tickets_per_minute:.0f} | {fmt(percentile_ms(lat, 50))} | "
              f"{fmt(percentile_ms(lat, 95))} | {fmt(percentile_ms(lat, 99))} | "
              f"{len(r.completed)}/{len(r.dialogs)} | {c['tickets']} / "
              f"{c['workers with exactly one']} / {c['open']} / {c['duplicate numbers']} / "
              f"{c['dialogs left']}{'' if ok else ' — MISMATCH'} | "
              f"{len(r.owner_cards)}/{len(r.completed)} | {cpu} |")
    last = results[-1].checks if results else {}
    print(f"\nparked inbox events: {last.get('parked events (run)', '-')}; outbox deliveries "
          f"by status: {last.get('deliveries (run)', '-')}; simulator: "
          f"{len(sim.delivered)} delivered, {len(sim.dropped)} dropped over the limit, "
          f"calls {dict(sorted(sim.calls.items()))}")
    errors = Counter(d.error for r in results for d in r.dialogs if d.error)
    for error, n in errors.most_common(8):
        print(f"    {n:5d} × {error}")
    print("every dialog completed with exactly one ticket: " + ("yes" if all_ok else "NO"))
    for log in sorted(p for p in logs.glob("*.log") if not p.name.endswith(".pyspy.log")):
        lines = log_summary(log)
        print(f"\nwarnings/errors in {log.name}:" + ("" if lines else " none"))
        for line in lines:
            print("    " + line)
    return all_ok


def cpu_names(results: Sequence[RoundResult]) -> list[str]:
    names = dict.fromkeys(n for r in results for n in r.cpu)
    return list(names)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--levels", default="50,200",
                   help="concurrent workers per round, comma-separated")
    p.add_argument("--rounds", type=int, default=2, help="rounds per target and level")
    p.add_argument("--targets", default="split,single",
                   help="deployments: split (serve --no-workers + work), single (serve)")
    p.add_argument("--think", default="2-6", metavar="SECONDS-RANGE",
                   help="a worker's pause before each step after the first, uniform in the "
                        "range (default 2-6: a person reading and typing); 0: none (stress)")
    p.add_argument("--ramp", type=float, default=4.0, metavar="SECONDS",
                   help="the workers' first steps spread uniformly over this many seconds "
                        "(default 4: a load test's ramp-up); 0: all at the start line (stress)")
    p.add_argument("--seed", type=int, default=1, help="seeds the think and start times")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured dialogs per round")
    p.add_argument("--areas", type=int, default=150,
                   help="areas in the generated plant (the area question lists them all)")
    p.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE)
    p.add_argument("--worker-nice", type=int, default=10, metavar="N",
                   help="run `safetybot work` under `nice -n N` (0: not at all)")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test")
    p.add_argument("--py-spy", type=Path, default=None, metavar="PATH",
                   help="py-spy binary: profile the inbox-handling process of every round")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        p.error("--levels: comma-separated numbers, e.g. 50,200")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    try:
        low, _, high = args.think.partition("-")
        args.pace = Pace(float(low), float(high or low), args.seed, args.ramp)
    except ValueError:
        p.error("--think: seconds or a range of seconds, e.g. 0 or 2-6")
    if args.ramp < 0:
        p.error("--ramp: seconds, 0 or more")
    if not 0 <= args.pace.low <= args.pace.high:
        p.error("--think: a range from a lower to a higher number of seconds, e.g. 2-6")
    if not args.levels or min(args.levels) < 1:
        p.error("--levels must name at least one level of 1 or more")
    if not args.targets or set(args.targets) - {"split", "single"}:
        p.error("--targets: split, single or both")
    if args.rounds < 1 or args.areas < 1 or args.warmup < 1:
        p.error("--rounds, --areas and --warmup must be at least 1")
    return args


async def bench(args: argparse.Namespace, version: str) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    check_reports()
    rounds = [(level, i, target) for level in args.levels for i in range(args.rounds)
              for target in args.targets]
    dialogs = sum(level + args.warmup for level, _, _ in rounds)
    if dialogs > args.areas * len(REPORTS):
        raise BenchError(f"{dialogs} reports need {dialogs} distinct area and category pairs; "
                         f"raise --areas to {math.ceil(dialogs / len(REPORTS))} or run fewer "
                         "rounds")
    plant = Plant(args.areas, dialogs)
    args.logs = args.out / time.strftime("%Y%m%d-%H%M%S-report")
    args.logs.mkdir(parents=True, exist_ok=True)
    results: list[RoundResult] = []
    with tempfile.TemporaryDirectory(prefix="safetybot-bench-") as tmp:
        roster = Path(tmp) / "roster.toml"
        plant.write_roster(roster)
        async with fresh_database(args.admin_dsn) as dsn:
            info = await machine_info(dsn) | {"service code": version}
            sim = BenchSimulator(plant.users)
            await sim.start()
            try:
                targets = make_targets(args, dsn, Path(tmp) / "media", sim.base_url)
                env = next(iter(targets.values())).env
                await run_command(env, "migrate")
                await run_command(env, "load-org", str(roster))
                for level, i, name in rounds:
                    print(f"round {i + 1}/{args.rounds}: {name}, {level} workers …",
                          file=sys.stderr)
                    results.append(await run_round(sim, plant, targets[name], level, i,
                                                   args, dsn))
            finally:
                await sim.stop()
            ok = report(args, info, results, sim, args.logs)
    return 0 if ok else 2


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("report_bench", bench(parse_args(argv), code_version()))


if __name__ == "__main__":
    sys.exit(main())
