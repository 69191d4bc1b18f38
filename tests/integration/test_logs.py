"""What an operator reads in the log: an idle scheduler tick says nothing (neither APScheduler nor
our jobs), a tick that did something says what in one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tortoise.context import TortoiseContext

from bot.app import utc_now
from bot.roster import load_org
from bot.settings import SHIPPED_CONFIG
from tests.harness import ROOT, ROSTER_MEDIA


def log_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines()]


def test_apscheduler_running_a_job_leaves_no_line() -> None:
    """APScheduler logs two INFO lines a run; the service's log configuration keeps them out."""
    script = textwrap.dedent("""
        import asyncio
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from bot import logs

        async def main() -> None:
            logs.configure("INFO")
            ran = asyncio.Event()
            runs = []

            async def tick() -> None:
                runs.append(1)
                if len(runs) == 3:
                    ran.set()

            ticker = AsyncIOScheduler()
            ticker.add_job(tick, "interval", seconds=0.05, id="tick")
            ticker.start()
            await ran.wait()
            ticker.shutdown(wait=False)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


async def test_an_idle_tick_logs_nothing_and_a_busy_one_logs_one_line(
        db: TortoiseContext, database_url: str, tmp_path: Path) -> None:
    await load_org(SHIPPED_CONFIG / "demo-org.toml", utc_now(), ROSTER_MEDIA)
    env = {"PATH": os.environ["PATH"], "SAFETYBOT_DATABASE_URL": database_url,
           "SAFETYBOT_MEDIA_DIR": str(tmp_path), "SAFETYBOT_LOG_LEVEL": "INFO"}

    def tick(now: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", "tick", "--now", now], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    idle = await asyncio.to_thread(tick, "2026-11-02T07:00")     # before the digest time
    assert idle.returncode == 0, idle.stderr
    assert log_lines(idle.stderr) == []
    busy = await asyncio.to_thread(tick, "2026-11-02T08:30")     # the digest is due
    assert busy.returncode == 0, busy.stderr
    [line] = log_lines(busy.stderr)
    assert (line["level"], line["logger"]) == ("info", "scheduler.jobs")
    assert str(line["msg"]).startswith("tick: ") and "digest 1" in str(line["msg"])
