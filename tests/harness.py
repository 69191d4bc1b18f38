"""Test harness: the service on a real port, and the credentials it shares with the simulator;
the service's clock, which tests move; and `settled()`, to know that nothing more will arrive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from tortoise import connections

from bot.app import create_app, hazard_rules, scheduled_jobs
from bot.clock import ManualClock
from bot.db import ORM, activate
from bot.inbox import InboxWorker
from bot.media.folder import FolderStore
from bot.settings import Settings, load_settings
from handlers.router import Router
from models import DATABASE
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, InboxStatus
from models.outbox import OutboxMessage
from models.outgoing import Markdown, Text
from scheduler.jobs import Jobs, TickReport

ROOT = Path(__file__).resolve().parent.parent
# Where a test whose service never sends the areas' evacuation maps keeps them when it loads a
# roster: the store is content-addressed, so every test and run may share it.
ROSTER_MEDIA = FolderStore(Path(tempfile.gettempdir()) / "safetybot-test-roster-media")


def demo_roster_copy(folder: Path, text: str) -> Path:
    """A changed copy of the demo roster in `folder`, beside its evacuation maps (a link)."""
    maps = folder / "maps"
    if not maps.exists():
        maps.symlink_to(ROOT / "config" / "maps", target_is_directory=True)
    path = folder / "org.toml"
    path.write_text(text, encoding="utf-8")
    return path
BACKEND = os.environ.get("SAFETYBOT_TEST_BACKEND", "sqlite")
CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
SECRET = "test-secret-not-real"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
PEOPLE = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五"}
DINGTALK_CLIENT_ID = "dingtestclient0001"
DINGTALK_SECRET = "test-dingtalk-secret-not-real"
DINGTALK_ROBOT = "dingtestrobot0001"
DINGTALK_TEMPLATE = "safetybot-card-test.schema"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_settings(database_url: str, api_base: str, media_dir: Path, *,
                     dingtalk: str = "", **overrides: Any) -> Settings:
    """The service's settings against simulators: WeCom's at `api_base` ("" for none), and
    DingTalk's at `dingtalk` when given (its mode is the override `dingtalk_mode`)."""
    env = {
        "SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_PORT": str(free_port()),
        "SAFETYBOT_MEDIA_DIR": str(media_dir), "SAFETYBOT_POLL_SECONDS": "0.05",
        "SAFETYBOT_INBOX_RETRY_SECONDS": "0.05",
    }
    if api_base:
        env |= {
            "SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
            "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
            "SAFETYBOT_WECOM_AES_KEY": AES_KEY, "SAFETYBOT_WECOM_API_BASE": api_base,
            # The simulator plays WeCom's login pages as well as its API.
            "SAFETYBOT_WECOM_OAUTH_BASE": api_base, "SAFETYBOT_WECOM_LOGIN_BASE": api_base,
            "SAFETYBOT_WECOM_API_TIMEOUT_SECONDS": "1",
        }
    if dingtalk:
        env |= {
            "SAFETYBOT_DINGTALK_CLIENT_ID": DINGTALK_CLIENT_ID,
            "SAFETYBOT_DINGTALK_CLIENT_SECRET": DINGTALK_SECRET,
            "SAFETYBOT_DINGTALK_ROBOT_CODE": DINGTALK_ROBOT,
            "SAFETYBOT_DINGTALK_CARD_TEMPLATE_ID": DINGTALK_TEMPLATE,
            "SAFETYBOT_DINGTALK_API_BASE": dingtalk, "SAFETYBOT_DINGTALK_OAPI_BASE": dingtalk,
            "SAFETYBOT_DINGTALK_LOGIN_BASE": dingtalk,
            "SAFETYBOT_DINGTALK_API_TIMEOUT_SECONDS": "2",
        }
    env.update({f"SAFETYBOT_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env)


def edit(path: Path, old: str, new: str) -> None:
    """A configuration file edited in place: `old`, which must occur once, becomes `new`."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def plant_jobs(database_url: str, media_dir: Path, **overrides: object) -> Jobs:
    """The scheduler's jobs as the service builds them from its settings (`overrides`)."""
    settings = service_settings(database_url, "", media_dir, **overrides)
    media = FolderStore(media_dir)
    return scheduled_jobs(settings, media, hazard_rules(settings, media))


async def queued_texts(prefix: str) -> list[tuple[str, str, list[str]]]:
    """The texts queued under idempotency keys starting with `prefix`: (key, words, to)."""
    rows = await OutboxMessage.filter(idempotency_key__startswith=prefix).order_by("id")
    out = []
    for row in rows:
        message = row.message
        assert isinstance(message, Text | Markdown)
        recipients = await row.deliveries.all().values_list("recipient", flat=True)
        out.append((row.idempotency_key, message.content, sorted(recipients)))
    return out


class Service:
    """The real app on a real port; `start()` again after `stop()` is a restart. `clock` is the
    service's "now": by default a running `ManualClock`, which a test moves instead of waiting
    (move it only while the service is `settled()`: a jump past the leases of work in flight
    would hand that work out a second time)."""

    def __init__(self, settings: Settings, clock: ManualClock | None = None) -> None:
        self.settings = settings
        self.clock = clock or ManualClock()
        self.app: web.Application | None = None
        self.fatal: list[str] = []          # why a background loop stopped the service
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    async def start(self, workers: bool = True) -> None:
        self.app = create_app(self.settings, clock=self.clock, workers=workers,
                              on_fatal=self.fatal.append)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.settings.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def time_passes(self, until: datetime) -> None:
        """The service's clock moves on to `until` (never back), once the service is
        `settled()`: a jump past the leases of work in flight would hand that work out again."""
        await settled()
        if until > self.clock():
            self.clock.set(until)

    async def tick_at(self, until: datetime) -> TickReport:
        """The clock moves on to `until`, and the scheduler's jobs (the service's own: its
        platform, settings and limits) tick once as of then, on the service's connection
        (SQLite has one writer); a job that fails fails the test."""
        await self.time_passes(until)
        app = self.app
        assert app is not None
        media = FolderStore(Path(self.settings.media_dir))
        jobs = scheduled_jobs(self.settings, media, hazard_rules(self.settings, media))

        async def tick() -> TickReport:
            activate(app[ORM])
            return await jobs.tick(self.clock())

        report = await asyncio.create_task(tick())
        assert not report.failed, report.summary()
        return report


# Unfinished work, read in one statement so that both queues are seen at one instant: a handler
# marks its event done in the transaction that queues its replies, so no reply can be between
# the two tables unseen.
_UNSETTLED = """
    SELECT 'inbox' AS queue, id, status, next_attempt_at, lease_owner FROM inbox_event
     WHERE status = 'pending'
    UNION ALL
    SELECT 'outbox', id, status, next_attempt_at, lease_owner FROM outbox_message
     WHERE status = 'pending'"""


async def settled(timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until the service has nothing left to do: no inbox event waiting or being handled,
    no outbox message with a recipient still to be settled. Then every reply the service was
    going to send has reached the platform, and a test can assert that nothing else arrived.

    A parked event is settled (it waits for an operator's `safetybot inbox retry`). A row due
    only later (a retry's backoff, a rate window) is not: it is still going to be sent, so
    this waits for it, and a row that only a move of the clock would make due times this out,
    naming the rows left. Works across processes that share the test's database."""
    conn = connections.get(DATABASE)
    rows: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            # Polled: the queues are in the database, which other processes share too.
            while rows := await conn.execute_query_dict(_UNSETTLED):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not settled after {timeout} s: {rows}") from None


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`safetybot ARGS` run to its end in a process of its own, with `env` (and PATH) only."""
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"], **env}, timeout=60,
                          cwd=ROOT)


STOP_SECONDS = 20      # beyond the service's own grace for work in flight (10 s)


async def spawn(command: list[str], database_url: str, api_base: str, media: Path,
                log: Path | None = None, **overrides: object
                ) -> tuple[subprocess.Popen[bytes], str]:
    """`safetybot COMMAND` in a process of its own on a free port, once its /readyz answers;
    its log (stderr) goes to `log` when given."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "SAFETYBOT_DATABASE_URL": database_url,
           "SAFETYBOT_PORT": str(port), "SAFETYBOT_MEDIA_DIR": str(media),
           "SAFETYBOT_POLL_SECONDS": "0.05", "SAFETYBOT_LOG_LEVEL": "WARNING",
           "SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
           "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
           "SAFETYBOT_WECOM_AES_KEY": AES_KEY, "SAFETYBOT_WECOM_API_BASE": api_base,
           # As in service_settings: an instance killed mid-refresh holds it for 2 s, not 20.
           "SAFETYBOT_WECOM_API_TIMEOUT_SECONDS": "1"}
    env.update({f"SAFETYBOT_{k.upper()}": str(v) for k, v in overrides.items()})
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    # A server process of its own, polled below, never waited on: nothing blocks the loop.
    with log.open("ab") if log else contextlib.nullcontext() as err:   # the child keeps a copy
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "bot.cli", *command], cwd=ROOT, env=env, stderr=err)
    url = f"http://127.0.0.1:{port}"
    await until_ready(proc, url)
    return proc, url


async def until_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    """Wait for the service process `proc` to answer `url`/readyz; kill it if it never does."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{proc.args!r} did not become ready")


async def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait for the exit without blocking the loop: the simulator serving the
    process's last sends runs in this loop."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args!r} did not stop on SIGTERM within "
                             f"{STOP_SECONDS} s") from None


# An inbox worker of a router of the test's own, run by hand.


def text(user: str, n: int, body: str) -> Inbound:
    return Inbound(platform="wecom", user_id=user, kind=InboundKind.TEXT,
                   dedup_key=f"t:{user}:{n}", text=body)


class Worker(NamedTuple):
    inbox: InboxWorker
    clock: ManualClock          # the worker's now, which `drain` moves


def worker(settings_dir: Path, database_url: str, router: Router, **overrides: object
           ) -> Worker:
    settings = service_settings(database_url, "http://127.0.0.1:9", settings_dir, **overrides)
    media = FolderStore(settings_dir)
    clock = ManualClock()
    return Worker(InboxWorker(settings, channels={}, media=media, router=router,
                              rules=hazard_rules(settings, media), clock=clock,
                              instance="test-worker", on_handled=lambda: None), clock)


async def drain(w: Worker) -> None:
    """Run the worker until nothing is pending; a failed event's next try is reached by moving
    the worker's clock past its backoff, not by waiting for it."""
    for _ in range(200):
        await w.inbox.run_once()
        if not await InboxEvent.filter(status=InboxStatus.PENDING).exists():
            return
        w.clock.advance(60)           # past any try's backoff (at most a minute)
    raise AssertionError("inbox did not drain")
