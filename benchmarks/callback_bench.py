"""Callback benchmark: how fast SafetyBot acknowledges a platform's callbacks, against a bare
baseline.

WeCom retries a callback that is not answered within 5 seconds, and DingTalk pushes a Stream
frame again until it is ACKed, so the acknowledgement path (verify, decrypt or check the sign,
store, answer) is what must stay fast under load. This script measures it on PostgreSQL beside
`baseline_app.py` (aiohttp + the platform's check + one INSERT) in the same run:

* closed loop: `--concurrency` requests in flight until `--count` are answered -> acks/s, p50, p99;
* open loop: `--rate` requests/s for `--seconds`, latency counted from each request's *scheduled*
  send time, so a stalled server cannot hide queueing (coordinated omission) -> p50, p99.

Three targets: the service as deployed in production (`serve --no-workers` answering callbacks,
`safetybot work` beside it handling the inbox: two processes), the service in one process
(`serve`), and the baseline. With `--platform dingtalk` the callbacks are DingTalk's HTTP
callbacks (`POST /dingtalk/callback`, signed), and two more targets take the same messages as
Stream frames pushed by the DingTalk simulator's gateway (closed loop only: ACKs per second and
push-to-ACK latency). Everything runs on loopback in a fresh database that is dropped at the
end. Targets are measured one at a time, taking turns; medians are reported.

    .venv/bin/python benchmarks/callback_bench.py [--platform wecom|dingtalk] [--concurrency 32]
        [--count 5000] [--rate 500] [--seconds 10] [--worker-nice 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

import aiohttp
import asyncpg
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.channels.wecom_crypto import WeComCrypto  # noqa: E402
from bot.db import POSTGRES_POOL_SIZE, with_database  # noqa: E402
from simulator.dingtalk import (  # noqa: E402
    ACK_WAIT,
    BOT_TOPIC,
    CallbackResult,
    DingTalkSimulator,
    FrameKind,
    callback_sign,
)

PLATFORMS = ("wecom", "dingtalk")
# The official WXBizMsgCrypt test vector's credentials; nothing here is a real secret.
CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SECRET = "bench-secret-not-real"
# DingTalk's app: any non-empty strings do for the simulator.
DINGTALK_CLIENT_ID = "dingbenchclient0001"
DINGTALK_SECRET = "bench-dingtalk-secret-not-real"
DINGTALK_ROBOT = "dingbenchrobot0001"
DINGTALK_TEMPLATE = "safetybot-card-bench.schema"
DINGTALK_PER_PERSON_PER_MINUTE = 20     # DingTalk's, and the service's default
CREDENTIALS: dict[str, dict[str, str]] = {
    "wecom": {
        "SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
        "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
        "SAFETYBOT_WECOM_AES_KEY": AES_KEY,
    },
    "dingtalk": {
        "SAFETYBOT_DINGTALK_CLIENT_ID": DINGTALK_CLIENT_ID,
        "SAFETYBOT_DINGTALK_CLIENT_SECRET": DINGTALK_SECRET,
        "SAFETYBOT_DINGTALK_ROBOT_CODE": DINGTALK_ROBOT,
        "SAFETYBOT_DINGTALK_CARD_TEMPLATE_ID": DINGTALK_TEMPLATE,
        "SAFETYBOT_DINGTALK_PER_PERSON_PER_MINUTE": str(DINGTALK_PER_PERSON_PER_MINUTE),
    },
}
TEXT = "3号车间 配电箱门没关"                      # every message: this and its number
WECOM_HEADERS = {"Content-Type": "text/xml"}
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)   # WeCom gives up after 5 s; we wait longer
START_TIMEOUT = 30.0                                 # seconds for a process to become ready
STOP_TIMEOUT = 15.0
# The benchmark never drains the inbox (README), so a target restarted late in a run finds
# events older than /readyz's default 120 s lag and would never be ready.
READY_MAX_LAG_SECONDS = "86400"


class BenchError(Exception):
    """The benchmark could not be set up or run; the message says which step failed."""


# ---------------------------------------------------------------------------------------------
# Callbacks, sealed before any clock starts


@dataclass(frozen=True)
class Callback:
    """One message as the platform delivers it: an HTTP POST (path with its query, body,
    headers) and, on DingTalk, the same message as a Stream frame's data (`frame`). `key` is
    the dedup key the service stores it under."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    key: str
    frame: dict[str, Any] | None = None


class Sealer(Protocol):
    async def batch(self, size: int) -> list[Callback]: ...


class WeComSealer:
    """Encrypts text callbacks as WeCom would; MsgIds never repeat within one run."""

    def __init__(self, users: Sequence[str]) -> None:
        self._crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
        self._users = itertools.cycle(users)
        self._msg_ids = itertools.count(time.time_ns() // 1000)
        self._n = itertools.count(1)

    async def batch(self, size: int) -> list[Callback]:
        return [self._one() for _ in range(size)]

    def _one(self) -> Callback:
        msg_id, n, user = next(self._msg_ids), next(self._n), next(self._users)
        now = str(int(time.time()))
        plaintext = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{now}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{TEXT} {n}]]></Content>"
            f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
        )
        nonce = str(secrets.randbelow(10**10))
        body, signature = self._crypto.seal_xml(plaintext, now, nonce)
        return Callback(f"/wecom/callback?msg_signature={signature}&timestamp={now}&nonce={nonce}",
                        body, WECOM_HEADERS, f"wecom:{CORP_ID}:msg:{msg_id}")


class _Unsent(DingTalkSimulator):
    """The DingTalk simulator's people, whose messages are built but not delivered: the JSON
    DingTalk sends comes from the simulator's own `SimUser`, not from a copy of its shape."""

    async def send(self, payload: dict[str, Any], *, topic: str = BOT_TOPIC,
                   kind: FrameKind = "CALLBACK", wait: bool = True,
                   timeout: float = ACK_WAIT) -> CallbackResult:  # noqa: ASYNC109
        return CallbackResult(0, "", payload, "", topic)


class DingTalkSealer:
    """Robot text messages as DingTalk delivers them, signed for the HTTP callback (the sign
    covers the timestamp, which the service accepts for an hour); msgIds never repeat."""

    def __init__(self, users: Sequence[str]) -> None:
        unsent = _Unsent(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT, users)
        self._people = itertools.cycle([unsent.user(u) for u in users])
        self._n = itertools.count(1)

    async def batch(self, size: int) -> list[Callback]:
        return [await self._one() for _ in range(size)]

    async def _one(self) -> Callback:
        person, n = next(self._people), next(self._n)
        frame = (await person.says(f"{TEXT} {n}")).payload
        timestamp = str(time.time_ns() // 1_000_000)
        headers = {"Content-Type": "application/json", "timestamp": timestamp,
                   "sign": callback_sign(timestamp, DINGTALK_SECRET)}
        return Callback("/dingtalk/callback", json.dumps(frame, ensure_ascii=False).encode(),
                        headers, f"dingtalk:msg:{frame['msgId']}", frame)


# ---------------------------------------------------------------------------------------------
# Load generation


@dataclass
class RunResult:
    target: str
    mode: str                       # "closed" or "open"
    latencies: list[float]          # seconds, answered requests only
    statuses: Counter[int]          # HTTP status or frame reply code; 0 = no answer
    elapsed: float
    offered_rate: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def not_ok(self) -> int:
        return self.sent - self.statuses[200]

    @property
    def acks_per_second(self) -> float:
        return self.statuses[200] / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile: an observed latency, never an interpolated one."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


Item = TypeVar("Item")
Send = Callable[[Item], Awaitable[int]]        # one request; its status, 0 for no answer


class Http:
    """Callbacks POSTed by our own client, as the platform would."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session = session
        self._base = base

    def prepare(self, batch: Sequence[Callback]) -> list[tuple[URL, bytes, Mapping[str, str]]]:
        """URLs parsed once before timing, so the client does not pay it per request."""
        return [(URL(self._base + cb.path, encoded=True), cb.body, cb.headers) for cb in batch]

    async def send(self, request: tuple[URL, bytes, Mapping[str, str]]) -> int:
        url, body, headers = request
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return 0


class StreamPush:
    """The same messages as frames pushed by the DingTalk simulator's gateway to the service's
    Stream connection; answered means ACKed (reply code 200)."""

    def __init__(self, sim: DingTalkSimulator) -> None:
        self._sim = sim

    def prepare(self, batch: Sequence[Callback]) -> list[dict[str, Any]]:
        return [cb.frame for cb in batch if cb.frame is not None]

    async def send(self, frame: dict[str, Any]) -> int:
        try:
            return (await self._sim.send(frame, timeout=REQUEST_TIMEOUT.total or 10)).status
        except TimeoutError:
            return 0    # not ACKed: the gateway keeps it and pushes it again


async def closed_loop(send: Send[Item], target: str, requests: list[Item],
                      concurrency: int) -> RunResult:
    """`concurrency` senders, each sending its next request as soon as the last is answered."""
    pending: Iterator[Item] = iter(requests)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def sender() -> None:
        for request in pending:            # one shared iterator: each request is sent once
            started = time.perf_counter()
            status = await send(request)
            statuses[status] += 1
            if status:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return RunResult(target, "closed", latencies, statuses, time.perf_counter() - started)


async def open_loop(send: Send[Item], target: str, requests: list[Item],
                    rate: float) -> RunResult:
    """Send on a fixed schedule whatever the answers do; latency counts from the schedule."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    finished: list[float] = []

    async def one(request: Item, due: float) -> None:
        status = await send(request)
        done = loop.time()
        statuses[status] += 1
        finished.append(done)
        if status:
            latencies.append(done - due)

    t0 = loop.time() + 0.05
    tasks = []
    for i, request in enumerate(requests):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    elapsed = max(finished, default=t0) - t0
    return RunResult(target, "open", latencies, statuses, elapsed, offered_rate=rate)


# ---------------------------------------------------------------------------------------------
# Processes and the database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """All PostgreSQL processes on this host, including other users' sessions (shared box)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if stat.read_text().strip() == "postgres":
                total += cpu_seconds(int(stat.parent.name))
    return total


@dataclass(frozen=True)
class CpuSample:
    target: float
    worker: float                   # the target's `safetybot work` process, if it has one
    postgres: float
    loadgen: float

    @classmethod
    def take(cls, pid: int, worker_pid: int | None) -> CpuSample:
        worker = cpu_seconds(worker_pid) if worker_pid else 0.0
        return cls(cpu_seconds(pid), worker, postgres_cpu_seconds(), time.process_time())

    def __sub__(self, other: CpuSample) -> CpuSample:
        return CpuSample(self.target - other.target, self.worker - other.worker,
                         self.postgres - other.postgres, self.loadgen - other.loadgen)


def open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


class Child:
    """A process this script started; stopped by its own pid only, gently first."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path,
                 handle: IO[bytes]) -> None:
        self.name, self.proc, self.log, self._handle = name, proc, log, handle

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], env: dict[str, str],
                    log: Path) -> Child:
        handle = open_log(log)
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return cls(name, proc, log, handle)

    async def wait_ready(self, url: str, any_answer: bool = False) -> None:
        """Until `url` answers 200 (with `any_answer`, answers at all)."""
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise BenchError(f"{self.name} exited with {self.proc.returncode}; "
                                     f"see {self.log}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as resp:
                        if resp.status == 200 or any_answer:
                            return
                await asyncio.sleep(0.2)
        raise BenchError(f"{self.name} not ready at {url} after {START_TIMEOUT:.0f}s; "
                         f"see {self.log}")

    async def stop(self, grace: float = 0.0) -> None:
        """`grace`: seconds to let it end on its own first (py-spy, after its target)."""
        if grace:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)   # aiohttp's run_app shuts down cleanly
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._handle.close()


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str) -> AsyncIterator[str]:
    """A database of our own for one run, dropped afterwards even when the run fails."""
    name = f"safetybot_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def safetybot_argv(*command: str) -> list[str]:
    script = Path(sys.executable).parent / "safetybot"
    return [str(script), *command] if script.exists() else [sys.executable, "-m", "bot.cli",
                                                            *command]


def pool_url(dsn: str, pool_size: int) -> str:
    """The service's URL with its pool size; tortoise reads pool limits from the query string."""
    if pool_size == POSTGRES_POOL_SIZE:
        return dsn
    return str(URL(dsn).update_query(maxsize=pool_size))


def service_env(database_url: str, port: int, media: Path, platform: str = "wecom"
                ) -> dict[str, str]:
    """The process environment without any SAFETYBOT_* of the caller's, plus ours and the
    credentials of `platform` (the only one switched on); its API base is filled in once the
    simulator runs (`api_env`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFETYBOT_")}
    env.update({
        "SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_PORT": str(port),
        "SAFETYBOT_INSTANCE_ID": f"bench-{port}", "SAFETYBOT_MEDIA_DIR": str(media),
        "SAFETYBOT_LOG_LEVEL": "WARNING", **CREDENTIALS[platform],
    })
    return env


def api_env(platform: str, base: str) -> dict[str, str]:
    """Where the service finds the platform's API (the simulator); DingTalk's older API too."""
    if platform == "wecom":
        return {"SAFETYBOT_WECOM_API_BASE": base}
    return {"SAFETYBOT_DINGTALK_API_BASE": base, "SAFETYBOT_DINGTALK_OAPI_BASE": base}


async def migrate(env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *safetybot_argv("migrate"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError("safetybot migrate took more than 120 s") from None
    if proc.returncode != 0:
        raise BenchError(f"safetybot migrate failed:\n{out.decode(errors='replace')}")


async def register_users(dsn: str, users: Sequence[str]) -> None:
    """Registered senders: strangers would take the bot's shorter 'not registered' path."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO org_user (id, name, roles, mobile, active) "
            "VALUES ($1, $2, $3, '', true)",
            [(u, f"压测员工{i:03d}", '["worker"]') for i, u in enumerate(users, 1)],
        )
    finally:
        await conn.close()


def write_roster(path: Path, users: Sequence[str]) -> None:
    lines = [f'[[users]]\nid = "{u}"\nname = "压测员工{i:03d}"\n' for i, u in enumerate(users, 1)]
    path.write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# One target, one round


@dataclass
class Target:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    log: Path
    worker: Target | None = None    # a process started and stopped with it (`safetybot work`)
    stream: bool = False            # DingTalk's Stream: frames pushed, not callbacks posted
    sent_keys: set[str] = field(default_factory=set)

    @property
    def is_service(self) -> bool:
        return self.name != "baseline"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Plan:
    warmup: list[Callback]
    closed: list[Callback]
    open: list[Callback]            # none for a Stream target


@dataclass
class RoundReport:
    closed: RunResult
    open: RunResult | None
    backlog: dict[str, int]         # the service's inbox by status when the round ended
    server_mean_ms: float           # the service's own histogram: arrival to answer
    cpu: CpuSample                  # CPU seconds used while measuring (closed + open loop)


async def run_round(target: Target, plan: Plan, args: argparse.Namespace, dsn: str,
                    index: int, sim: DingTalkSimulator | None) -> RoundReport:
    """Start the target, warm it up, measure both loops, then stop it, so that its background
    work (the service's inbox and outbox workers) cannot slow down the other target. A Stream
    target is measured once its connection to `sim`'s gateway is open, closed loop only."""
    connections = sim.connections_opened if sim is not None else 0
    child = await Child.start(target.name, target.argv, target.env, target.log)
    worker: Child | None = None
    profiler: Child | None = None
    try:
        if target.worker is not None:
            w = target.worker
            worker = await Child.start(w.name, w.argv, w.env, w.log)
            await worker.wait_ready(w.base + w.ready_path)
        await child.wait_ready(target.base + target.ready_path)
        if target.stream:
            assert sim is not None
            await stream_connected(sim, connections, target)
        profiler = await start_profiler(args, child, target.log, index)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as s:
            transport = StreamPush(sim) if target.stream and sim else Http(s, target.base)
            batches: list[list[Any]] = [transport.prepare(b) for b in (plan.warmup, plan.closed,
                                                                        plan.open)]
            warm, closed, opened = batches
            send: Send[Any] = transport.send
            await closed_loop(send, target.name, warm, args.concurrency)
            worker_pid = worker.proc.pid if worker else None
            cpu_before = CpuSample.take(child.proc.pid, worker_pid)
            limit = args.count / 50 + args.seconds + 60   # bounded even if the target stalls
            closed_result = await asyncio.wait_for(
                closed_loop(send, target.name, closed, args.concurrency), limit)
            open_result = await asyncio.wait_for(
                open_loop(send, target.name, opened, args.rate), args.seconds + 60
            ) if opened else None
            cpu = CpuSample.take(child.proc.pid, worker_pid) - cpu_before
        target.sent_keys.update(cb.key for b in (plan.warmup, plan.closed, plan.open)
                                for cb in b)
        backlog, server_ms = {}, math.nan
        if target.is_service:
            backlog = await inbox_by_status(dsn)
            server_ms = await server_mean_ms(target.base, args.platform)
        return RoundReport(closed_result, open_result, backlog, server_ms, cpu)
    except TimeoutError:
        raise BenchError(f"{target.name} did not answer in time; see {target.log}") from None
    finally:
        await child.stop()
        if worker is not None:
            await worker.stop()
        if profiler is not None:      # py-spy writes its file when the profiled process ends
            await profiler.stop(grace=10.0)


async def stream_connected(sim: DingTalkSimulator, before: int, target: Target) -> None:
    """The target's own connection is open: the gateway counts one more than `before`. (Frames
    pushed sooner would wait for it, and the wait would be measured.)"""
    try:
        await sim.until(lambda: sim.connections_opened > before, START_TIMEOUT)
    except TimeoutError:
        raise BenchError(f"{target.name} opened no Stream connection within "
                         f"{START_TIMEOUT:.0f} s; see {target.log}") from None


async def start_profiler(args: argparse.Namespace, child: Child, log: Path, index: int
                         ) -> Child | None:
    """`--py-spy`: sample the target for the whole round (warm-up included) as folded stacks."""
    if args.py_spy is None:
        return None
    name = f"{log.stem}-round{index + 1}"
    argv = [str(args.py_spy), "record", "--pid", str(child.proc.pid), "--format", "raw",
            "--rate", "250", "--nonblocking", "--output", str(log.with_name(f"{name}.folded"))]
    return await Child.start("py-spy", argv, os.environ.copy(),
                             log.with_name(f"{name}.pyspy.log"))


async def inbox_by_status(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM inbox_event GROUP BY status")
    finally:
        await conn.close()
    return {str(r["status"]): int(r["n"]) for r in rows}


async def server_mean_ms(base: str, platform: str) -> float:
    """Mean arrival-to-answer time from the service's histogram (cumulative since its start);
    HTTP callbacks only (a Stream frame is not timed there)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(base + "/metrics") as resp:
            text = await resp.text()
    values: dict[str, float] = {}
    for name in ("sum", "count"):
        found = re.search(rf'^safetybot_callback_seconds_{name}\{{platform="{platform}"\}} '
                          r"(\S+)$", text, re.MULTILINE)
        if found:
            values[name] = float(found[1])
    if not values.get("count"):
        return math.nan
    return values["sum"] / values["count"] * 1000


# ---------------------------------------------------------------------------------------------
# Checks and report


@dataclass(frozen=True)
class Stored:
    """A table's rows, its distinct dedup keys, and per target the rows of the keys it sent:
    one row per message sent, nothing lost or doubled, when rows == distinct == what was sent
    and every target finds all of its own."""

    table: str
    rows: int
    distinct: int
    found: dict[str, int]

    def holds(self, targets: Sequence[Target]) -> bool:
        sent = [len(t.sent_keys) for t in targets]
        return (self.rows == self.distinct == sum(sent)
                and all(self.found[t.name] == len(t.sent_keys) for t in targets))


async def stored(dsn: str, table: str, targets: Sequence[Target]) -> Stored:
    conn = await asyncpg.connect(dsn)
    try:
        totals = await conn.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT dedup_key) AS d FROM {table}")
        found = {t.name: int(await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE dedup_key = ANY($1::text[])",
            list(t.sent_keys))) for t in targets}
    finally:
        await conn.close()
    assert totals is not None
    return Stored(table, totals["n"], totals["d"], found)


def fmt(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


async def machine_info(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        pg = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"nproc": str(len(os.sched_getaffinity(0))), "cpu": cpu_model(),
            "python": platform.python_version(), "postgresql": pg, "load average": load}


def log_summary(path: Path, limit: int = 8) -> list[str]:
    """Warnings and errors of the service's JSON log, grouped by message, most frequent first."""
    if not path.exists():
        return []
    seen: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            key = f"{entry.get('level')} {entry.get('logger')}: {str(entry.get('msg'))[:120]}"
        except (ValueError, AttributeError):
            if not line.strip():
                continue
            key = f"(not JSON) {line.strip()[:120]}"
        seen[key] += 1
    return [f"{n:6d} × {key}" for key, n in seen.most_common(limit)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass
class Summary:
    acks: float
    p50: float
    p99: float
    open_p50: float
    open_p99: float
    open_achieved: float
    not_ok: int


def loops(r: RoundReport) -> list[RunResult]:
    return [r.closed] if r.open is None else [r.closed, r.open]


def summarize(rounds: Sequence[RoundReport]) -> Summary:
    opened = [r.open for r in rounds if r.open is not None]
    return Summary(
        acks=median([r.closed.acks_per_second for r in rounds]),
        p50=median([r.closed.percentile_ms(50) for r in rounds]),
        p99=median([r.closed.percentile_ms(99) for r in rounds]),
        open_p50=median([o.percentile_ms(50) for o in opened]),
        open_p99=median([o.percentile_ms(99) for o in opened]),
        open_achieved=median([o.acks_per_second for o in opened]),
        not_ok=sum(run.not_ok for r in rounds for run in loops(r)),
    )


def report(args: argparse.Namespace, info: dict[str, str], results: dict[str, list[RoundReport]],
           checks: Sequence[tuple[Stored, Sequence[Target]]], logs: Sequence[Path],
           sim: DingTalkBench | None) -> None:
    summaries = {name: summarize(rounds) for name, rounds in results.items()}
    base = summaries["baseline"]
    rounds = len(results["baseline"])
    print(f"\n## Callback benchmark ({args.platform})\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- database pool: {args.pool_size} connections per process; `safetybot work` "
          f"under nice {args.worker_nice}")
    print(f"- closed loop: concurrency {args.concurrency}, {args.count} callbacks; open loop: "
          f"{args.rate:g}/s for {args.seconds:g} s; {rounds} rounds per target, medians shown")
    if any(name.endswith("-stream") for name in results):
        print("- `-stream` targets: the same messages as Stream frames pushed by the simulator's "
              "gateway, closed loop only; latency is push → ACK")
    print(f"\n| target | acks/s (c={args.concurrency}) | p50 ms | p99 ms | achieved/s at "
          f"{args.rate:g}/s | p50 ms | p99 ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in summaries.items():
        print(f"| {name} | {s.acks:.0f} | {s.p50:.1f} | {s.p99:.1f} | {fmt(s.open_achieved)} | "
              f"{fmt(s.open_p50, 1)} | {fmt(s.open_p99, 1)} | {s.not_ok} |")
    print()
    for name, s in summaries.items():
        if name == "baseline":
            continue
        ratio = s.acks / base.acks if base.acks else math.nan
        if name.endswith("-stream"):
            http = summaries[name.removesuffix("-stream")]
            print(f"{name}: {s.acks:.0f} ACKs/s, push → ACK p50 {s.p50:.1f} ms, p99 "
                  f"{s.p99:.1f} ms ({ratio:.3f}× the HTTP baseline, "
                  f"{s.acks / http.acks if http.acks else math.nan:.3f}× the same deployment "
                  "over HTTP; no target set)")
            continue
        print(f"{name}/baseline throughput: {ratio:.3f}× (target ≥ 0.50: "
              f"{'met' if ratio >= 0.5 else 'MISSED'}); p99 at {args.rate:g}/s: "
              f"{s.open_p99:.1f} ms (target < 50: {'met' if s.open_p99 < 50 else 'MISSED'})")
    print("\n### Rounds\n")
    print("| round | target | closed acks/s | p50 | p99 | open achieved/s | p50 | p99 | "
          "non-200 | CPU s target / its worker / postgres / load gen | server-side mean ms | "
          "service inbox after round |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for i in range(rounds):
        for name, reports in results.items():
            r = reports[i]
            backlog = ", ".join(f"{k} {v}" for k, v in sorted(r.backlog.items())) or "-"
            o = r.open
            print(f"| {i + 1} | {name} | {r.closed.acks_per_second:.0f} | "
                  f"{r.closed.percentile_ms(50):.1f} | {r.closed.percentile_ms(99):.1f} | "
                  f"{fmt(o.acks_per_second) if o else '-'} | "
                  f"{fmt(o.percentile_ms(50), 1) if o else '-'} | "
                  f"{fmt(o.percentile_ms(99), 1) if o else '-'} | "
                  f"{sum(run.not_ok for run in loops(r))} | "
                  f"{r.cpu.target:.1f} / {r.cpu.worker:.1f} / {r.cpu.postgres:.1f} / "
                  f"{r.cpu.loadgen:.1f} | {fmt(r.server_mean_ms, 1)} | {backlog} |")
    statuses: Counter[int] = Counter()
    for reports in results.values():
        for r in reports:
            for run in loops(r):
                statuses += run.statuses
    bad = {k: v for k, v in statuses.items() if k != 200}
    print(f"\nanswers by status (0 = no answer): {dict(sorted(statuses.items()))}"
          + (" — NOT ALL 200" if bad else ""))
    if sim is not None:
        print(f"DingTalk simulator of the Stream targets: {sim.redeliveries} frames pushed again "
              f"(not ACKed in time); {sim.throttled} of the service's replies flow-controlled "
              f"(over {sim.per_user_per_minute} a minute to one person)")
    for table, targets in checks:
        found = ", ".join(f"{t.name} {table.found[t.name]}/{len(t.sent_keys)}" for t in targets)
        print(f"{table.table}: {table.rows} rows, {table.distinct} distinct keys; rows of the "
              f"keys each target sent: {found} ({'ok' if table.holds(targets) else 'MISMATCH'})")
    for log in logs:
        lines = log_summary(log)
        print(f"\nwarnings/errors in {log}:" + ("" if lines else " none"))
        for line in lines:
            print("    " + line)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--platform", choices=PLATFORMS, default="wecom",
                   help="whose callbacks: WeCom's, or DingTalk's (HTTP callbacks and Stream "
                        "frames)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--count", type=int, default=5000, help="closed-loop callbacks per round")
    p.add_argument("--rate", type=float, default=500, help="open-loop callbacks per second")
    p.add_argument("--seconds", type=float, default=10, help="open-loop duration")
    p.add_argument("--rounds", type=int, default=2, help="rounds per target, alternating")
    p.add_argument("--warmup", type=int, default=200, help="unmeasured callbacks per round")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--pool-size", type=int, default=POSTGRES_POOL_SIZE,
                   help="database connections per process (default: the service's own)")
    p.add_argument("--worker-nice", type=int, default=10, metavar="N",
                   help="run `safetybot work` under `nice -n N` (0: not at all), as README.md "
                        "advises when it shares a host with the callbacks")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test",
                   help="a database to connect to for CREATE/DROP DATABASE")
    p.add_argument("--py-spy", type=Path, default=None, metavar="PATH",
                   help="py-spy binary: profile each round's target into --out")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out",
                   help="where the service's, baseline's and simulator's logs are kept")
    args = p.parse_args(argv)
    for name in ("concurrency", "count", "rounds", "users", "pool_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate <= 0 or args.seconds <= 0:
        p.error("--rate and --seconds must be positive")
    return args


@contextlib.asynccontextmanager
async def platform_api(platform: str, env: dict[str, str], roster: Path, callback: str,
                       log: Path) -> AsyncIterator[str]:
    """The platform's simulator in a process of its own (`python -m simulator`) takes the
    service's replies, away from the load generator's event loop; without it they fail and are
    retried in the background, which leaves the acknowledgement path unchanged."""
    if not (ROOT / "simulator" / "__main__.py").exists():
        yield f"http://127.0.0.1:{free_port()}"     # nobody listens there
        return
    port = free_port()
    argv = [sys.executable, "-m", "simulator", platform, "--port", str(port), "--org",
            str(roster), "--callback", callback]
    sim = await Child.start("simulator", argv + (["--mode", "http"] if platform == "dingtalk"
                                                 else []), env, log)
    base = f"http://127.0.0.1:{port}"
    # Any answer means it is up: WeCom's gettoken answers 200 (with an errcode if need be),
    # DingTalk's gateway refuses a connection without a ticket.
    ready = (f"{base}/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={SECRET}"
             if platform == "wecom" else f"{base}/connect")
    try:
        await sim.wait_ready(ready, any_answer=True)
        yield base
    finally:
        await sim.stop()


class DingTalkBench(DingTalkSimulator):
    """The benchmarks' DingTalk: the simulator with the benchmark's app and DingTalk's limit of
    20 messages a minute per person, counting the sends it flow-controls (`_admit` is a private
    method of `simulator/dingtalk.py`)."""

    def __init__(self, users: Sequence[str], mode: Literal["stream", "http"] = "stream") -> None:
        super().__init__(DINGTALK_CLIENT_ID, DINGTALK_SECRET, DINGTALK_ROBOT, users, mode=mode,
                         per_user_per_minute=DINGTALK_PER_PERSON_PER_MINUTE)
        self.throttled = 0

    def _admit(self, user: str, now: float) -> bool:
        admitted = super()._admit(user, now)
        self.throttled += not admitted
        return admitted


@contextlib.asynccontextmanager
async def dingtalk_gateway(users: Sequence[str]) -> AsyncIterator[DingTalkBench]:
    """The DingTalk simulator in this process, for the Stream targets: its gateway pushes their
    frames (so push and ACK are timed here) and its API takes their replies."""
    sim = DingTalkBench(users)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def make_targets(args: argparse.Namespace, dsn: str, media: Path, logs: dict[str, Path]
                 ) -> dict[str, Target]:
    """The production deployment (callbacks and workers in two processes), the service in one
    process, and the baseline; on DingTalk also both deployments taking Stream frames. Each
    service process has a port of its own."""
    service_dsn = pool_url(dsn, args.pool_size)

    def service(name: str, command: list[str], mode: str, worker: Target | None = None
                ) -> Target:
        port = free_port()
        env = service_env(service_dsn, port, media, args.platform)
        env["SAFETYBOT_READY_MAX_LAG_SECONDS"] = READY_MAX_LAG_SECONDS
        if args.platform == "dingtalk":
            env["SAFETYBOT_DINGTALK_MODE"] = mode
        return Target(name, safetybot_argv(*command), env, port, "/readyz", logs[name], worker,
                      stream=mode == "stream")

    def deployments(suffix: str, mode: str) -> dict[str, Target]:
        worker = service(f"service{suffix}-worker", ["work"], mode)
        if args.worker_nice:
            worker.argv = ["nice", "-n", str(args.worker_nice), *worker.argv]
        return {f"service{suffix}": service(f"service{suffix}", ["serve", "--no-workers"], mode,
                                            worker),
                f"service-single{suffix}": service(f"service-single{suffix}", ["serve"], mode)}

    baseline_port = free_port()
    baseline = [sys.executable, str(ROOT / "benchmarks" / "baseline_app.py"), "--port",
                str(baseline_port), "--dsn", dsn, "--pool-size", str(args.pool_size)]
    targets = {
        **deployments("", "http"),
        "baseline": Target("baseline", baseline,
                           service_env(dsn, baseline_port, media, args.platform),
                           baseline_port, "/readyz", logs["baseline"]),
    }
    if args.platform == "dingtalk":
        targets |= deployments("-stream", "stream")
    return targets


def target_names(platform: str) -> list[str]:
    """Every process's name, as its log is named: the targets' and the simulator's."""
    names = ["service", "service-worker", "service-single", "baseline", "simulator"]
    if platform == "dingtalk":
        names += ["service-stream", "service-stream-worker", "service-single-stream"]
    return names


async def measure(args: argparse.Namespace, targets: dict[str, Target],
                  plans: dict[str, list[Plan]], dsn: str, sim: DingTalkSimulator | None
                  ) -> dict[str, list[RoundReport]]:
    """Targets take turns (service, …, baseline, service, …) so slow drifts hit all alike."""
    results: dict[str, list[RoundReport]] = {name: [] for name in targets}
    for i in range(args.rounds):
        for name, target in targets.items():
            print(f"round {i + 1}/{args.rounds}: {name} …", file=sys.stderr)
            results[name].append(await run_round(target, plans[name][i], args, dsn, i, sim))
    return results


def code_version() -> str:
    """The commit measured, marked when the work tree differs from it (others edit as we run)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bot", "models",
                                "handlers"], cwd=ROOT, check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes in bot/models/handlers" if dirty else "")


async def bench(args: argparse.Namespace, version: str) -> int:
    # SIGTERM (`timeout`, CI) cancels the run like Ctrl-C does, so that the finally blocks
    # still stop our processes and drop the database.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    users = [f"bench{i:04d}" for i in range(1, args.users + 1)]
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = {n: args.out / f"{stamp}-{n}.log" for n in target_names(args.platform)}
    sealer: Sealer = WeComSealer(users) if args.platform == "wecom" else DingTalkSealer(users)
    with tempfile.TemporaryDirectory(prefix="safetybot-bench-") as tmp:
        roster = Path(tmp) / "roster.toml"
        write_roster(roster, users)
        async with fresh_database(args.admin_dsn) as dsn, contextlib.AsyncExitStack() as stack:
            info = await machine_info(dsn) | {"service code": version}
            targets = make_targets(args, dsn, Path(tmp) / "media", logs)
            plans = {name: [Plan(await sealer.batch(args.warmup), await sealer.batch(args.count),
                                 [] if target.stream
                                 else await sealer.batch(round(args.rate * args.seconds)))
                            for _ in range(args.rounds)]
                     for name, target in targets.items()}
            # What was sealed lives to the end of the run: the collector need not walk it. A
            # full collection of DingTalk's ~300,000 objects paused this process for ~350 ms,
            # which the open loop counted as the target's latency.
            gc.freeze()
            env = targets["service"].env
            callback = targets["service"].base + f"/{args.platform}/callback"
            api_base = await stack.enter_async_context(
                platform_api(args.platform, env, roster, callback, logs["simulator"]))
            simulated = (ROOT / "simulator" / "__main__.py").exists()
            info[f"{args.platform} api"] = api_base + (
                f" (python -m simulator {args.platform})" if simulated
                else " (closed port: replies fail, retried)")
            sim: DingTalkBench | None = None
            if args.platform == "dingtalk":
                sim = await stack.enter_async_context(dingtalk_gateway(users))
                info["dingtalk api, Stream targets"] = (
                    f"{sim.base_url} (the simulator in the load generator's process: gateway "
                    "and API)")
            for target in targets.values():
                base = sim.base_url if target.stream and sim else api_base
                for process in (target, target.worker):
                    if process is not None:
                        process.env.update(api_env(args.platform, base))
            await migrate(env)
            await register_users(dsn, users)
            results = await measure(args, targets, plans, dsn, sim)
            services = [t for t in targets.values() if t.is_service]
            checks = [(await stored(dsn, "inbox_event", services), services),
                      (await stored(dsn, "bench_inbox", [targets["baseline"]]),
                       [targets["baseline"]])]
    report(args, info, results, checks,
           [logs[n] for n in target_names(args.platform)
            if n not in ("baseline", "simulator") and logs[n].exists()], sim)
    return 0


def run_bench(name: str, work: Coroutine[object, object, int],
              cleaned: str = "processes stopped, database dropped") -> int:
    """Every benchmark's exit codes: its own result, 1 when it could not set up or run (the
    message names the step), 130 when interrupted, after cleaning up."""
    try:
        return asyncio.run(work)
    except (BenchError, OSError, asyncpg.PostgresError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(f"{name}: interrupted; {cleaned}", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench("callback_bench", bench(parse_args(argv), code_version()))


if __name__ == "__main__":
    sys.exit(main())
