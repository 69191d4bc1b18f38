"""sync-org benchmark: a plant's contacts read from each platform's simulator into SQLite and
PostgreSQL, the first sync and a re-sync after 1% of the people changed.

Issue 15 item 6: *a plant with 5,000 people syncs in under a minute against the simulators.*
Each round starts from a fresh, migrated database and runs what `safetybot sync-org` runs, in
this process (`read` of bot/channels/<platform>_contacts.py over loopback HTTP, then
`bot.org_sync.sync_org`, follow-ups included), with the simulator serving in the same process
and event loop, so its work counts in the reading time:

1. first sync: every department and person created;
2. re-sync after `Contacts.churn` changed 1% of the people (renamed, moved, left, joined);
3. re-sync of the same contacts: nothing to write.

    PYTHONPATH=. .venv/bin/python benchmarks/sync_org.py [--people 5000] [--departments 200]
        [--rounds 3] [--backends sqlite,postgres] [--platforms wecom,dingtalk] [--admin-dsn DSN]

PostgreSQL is the server at `--admin-dsn` (default postgres://postgres@127.0.0.1:5432/test); a
database of the run's own is created and dropped. Each backend runs in a process of its own
(tortoise keeps the queries it compiled for one dialect for the whole process). Prints a Markdown
table of medians over the rounds per backend; exits 1 when a sync took a minute or more or did
not do what it should.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.callback_bench import (  # noqa: E402
    code_version,
    fresh_database,
    machine_info,
    run_bench,
)
from benchmarks.report_bench import median  # noqa: E402
from bot.channels import dingtalk_contacts, wecom_contacts  # noqa: E402
from bot.clock import utc_now  # noqa: E402
from bot.db import migrate, open_database  # noqa: E402
from bot.org_sync import SyncReport, sync_org  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from simulator.contacts import Contacts  # noqa: E402
from simulator.dingtalk import DingTalkSimulator  # noqa: E402
from simulator.wecom import WeComSimulator  # noqa: E402

LIMIT_SECONDS = 60.0
STEPS = ("first sync", "re-sync, 1% changed", "re-sync, unchanged")
# Credentials the service and the simulators share; nothing real.
WECOM = {"CORP_ID": "wwbenchcorp0001", "AGENT_ID": "1000002", "SECRET": "bench-secret",
         "TOKEN": "benchtoken", "AES_KEY": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"}
DINGTALK = {"CLIENT_ID": "dingbenchclient", "CLIENT_SECRET": "bench-secret",
            "ROBOT_CODE": "dingbenchrobot", "CARD_TEMPLATE_ID": "bench.schema"}


@dataclass
class Timing:
    read: list[float] = field(default_factory=list)
    write: list[float] = field(default_factory=list)
    changes: list[int] = field(default_factory=list)

    @property
    def totals(self) -> list[float]:
        return [r + w for r, w in zip(self.read, self.write, strict=True)]


@contextlib.asynccontextmanager
async def simulator(platform: str, contacts: Contacts) -> AsyncIterator[dict[str, str]]:
    """The platform played on loopback with these contacts; yields its SAFETYBOT_* settings."""
    if platform == "wecom":
        wecom = WeComSimulator(WECOM["CORP_ID"], int(WECOM["AGENT_ID"]), WECOM["SECRET"],
                               WECOM["TOKEN"], WECOM["AES_KEY"])
        wecom.directory = contacts
        async with wecom:
            yield {**{f"SAFETYBOT_WECOM_{k}": v for k, v in WECOM.items()},
                   "SAFETYBOT_WECOM_API_BASE": wecom.base_url}
        return
    dingtalk = DingTalkSimulator(DINGTALK["CLIENT_ID"], DINGTALK["CLIENT_SECRET"],
                                 DINGTALK["ROBOT_CODE"])
    dingtalk.directory = contacts
    async with dingtalk:
        yield {**{f"SAFETYBOT_DINGTALK_{k}": v for k, v in DINGTALK.items()},
               "SAFETYBOT_DINGTALK_API_BASE": dingtalk.base_url,
               "SAFETYBOT_DINGTALK_OAPI_BASE": dingtalk.base_url}


@contextlib.asynccontextmanager
async def database(backend: str, admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one round, gone afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="safetybot-bench-") as tmp:
            url = f"sqlite://{tmp}/bench.sqlite3"
            await migrate(url)
            yield url
        return
    async with fresh_database(admin_dsn) as url:
        await migrate(url)
        yield url


async def timed_sync(platform: str, settings: Settings) -> tuple[float, float, SyncReport]:
    """What `safetybot sync-org --from PLATFORM` does: the reading, then the writing, timed."""
    read = wecom_contacts.read if platform == "wecom" else dingtalk_contacts.read
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        directory = await read(settings, session, "bench", utc_now)
    read_at = time.perf_counter()
    report = await sync_org(directory, datetime.now(UTC))
    return read_at - started, time.perf_counter() - read_at, report


async def one_round(args: argparse.Namespace, backend: str, platform: str,
                    timings: dict[str, Timing]) -> list[str]:
    """The three steps on a fresh database; returns what went wrong, if anything."""
    contacts = Contacts.generate(args.people, args.departments)
    wrong = []
    async with database(backend, args.admin_dsn) as url, simulator(platform, contacts) as env:
        settings = load_settings({"SAFETYBOT_DATABASE_URL": url, **env})
        ctx = await open_database(url)
        with ctx:
            try:
                for step in STEPS:
                    churned = contacts.churn(0.01) if step == STEPS[1] else 0
                    read, write, report = await timed_sync(platform, settings)
                    timing = timings[step]
                    timing.read.append(read)
                    timing.write.append(write)
                    timing.changes.append(len(report.changes))
                    expected = {STEPS[0]: args.people + args.departments,
                                STEPS[1]: churned, STEPS[2]: 0}[step]
                    if len(report.changes) < expected or (step != STEPS[1] and len(
                            report.changes) != expected):
                        wrong.append(f"{step}: {len(report.changes)} changes, expected "
                                     f"{expected}: {report.summary()}")
            finally:
                await ctx.close_connections()
    return wrong


def seconds(values: Sequence[float]) -> str:
    return f"{median(values):.2f}"


async def bench(args: argparse.Namespace, version: str) -> int:
    """One backend, every platform asked for."""
    [backend] = args.backends
    print(f"# sync-org benchmark on {backend}, {time.strftime('%Y-%m-%d %H:%M')}, code {version}"
          "\n")
    info = await machine_info(args.admin_dsn) if backend == "postgres" else {}
    print(", ".join(f"{k} {v}" for k, v in info.items()) or f"python {sys.version.split()[0]}")
    print(f"\n{args.people} people in {args.departments} departments; medians of "
          f"{args.rounds} rounds, seconds (reading the platform + writing the database)\n")
    print("| backend | platform | step | changes | read | write | total |")
    print("|---|---|---|---:|---:|---:|---:|")
    ok = True
    for platform in args.platforms:
        timings = {step: Timing() for step in STEPS}
        problems = []
        for _ in range(args.rounds):
            problems += await one_round(args, backend, platform, timings)
        for step, t in timings.items():
            print(f"| {backend} | {platform} | {step} | {median(t.changes):.0f} | "
                  f"{seconds(t.read)} | {seconds(t.write)} | {seconds(t.totals)} |")
            ok = ok and max(t.totals) < LIMIT_SECONDS
        for problem in problems:
            print(f"\n{backend}, {platform}: WRONG: {problem}")
        ok = ok and not problems
    print(f"\n{'every sync within' if ok else 'NOT every sync right and within'} "
          f"{LIMIT_SECONDS:.0f} s", flush=True)
    return 0 if ok else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--people", type=int, default=5000)
    p.add_argument("--departments", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--platforms", default="wecom,dingtalk")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.platforms = [b for b in args.platforms.split(",") if b]
    if not args.backends or set(args.backends) - {"sqlite", "postgres"}:
        p.error("--backends: sqlite, postgres or both")
    if not args.platforms or set(args.platforms) - {"wecom", "dingtalk"}:
        p.error("--platforms: wecom, dingtalk or both")
    if min(args.people, args.departments, args.rounds) < 1 or args.people < args.departments:
        p.error("--people, --departments and --rounds must be at least 1, and there must be "
                "a person for every department to head it")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if len(args.backends) == 1:
        return run_bench("sync_org", bench(args, code_version()), cleaned="databases dropped")
    argv = list(sys.argv[1:] if argv is None else argv)
    return max(subprocess.run([sys.executable, __file__, *argv, "--backends", backend],
                              check=False).returncode for backend in args.backends)


if __name__ == "__main__":
    sys.exit(main())
