"""Media store benchmark (issue 21): photo ingest with the S3 store against the local folder on
the same machine, and the memory one 5 MiB photo holds on its way through.

Issue 21 asks for two numbers: *photo ingest throughput with the S3 store against the local
folder on the same machine (report the ratio)*, and *a 5 MB photo streamed through without
holding more than a few MB per transfer*. Three parts, in this order:

1. **Ingest through the service.** `safetybot serve` (its own process, SQLite by default) takes
   photo messages from the WeCom simulator (in this process): each callback is acknowledged,
   then the inbox worker downloads the photo with media/get into the store
   (`put_stream(channel.fetch_media(...))`) and runs the hazard module's report dialog on it.
   Timed from the first callback sent to the last inbox event done (its `processed_at`): photos
   a second and MiB a second, with the folder store and with `s3://` on moto's server (its own
   process), one after the other in each round, a fresh database and a fresh store each time.
2. **The store alone.** `put_stream` of photos like part 1's (a chunk at a time, as a download
   arrives), `--store-concurrency` at a time, then every photo read back with `chunks`: how
   much of part 1's difference is the store itself.
3. **One 5 MiB photo's memory.** Each path in a fresh process of its own (`--probe`), with the
   simulator and moto in other processes so their copies are not counted: the tracemalloc peak
   over the baseline before the transfer, for the WeCom download into either store, reading it
   back with `chunks`, the web chat's GET /chat/media streaming it out, and `get()` (the whole
   object in memory) as the contrast.

    PYTHONPATH=. .venv/bin/python benchmarks/media_bench.py [--photos 400] [--users 200]
        [--rounds 3] [--min-kb 200] [--max-kb 800] [--store-concurrency 16] [--big-mb 5]
        [--memory-rounds 3] [--limit-mb 4] [--database sqlite|postgres] [--admin-dsn DSN]
        [--parts ingest,store,memory]

Prints a Markdown report on stdout. Exits 0 when every check held, 2 when one did not (a photo
not stored or stored under the wrong hash, a callback not answered 200, a streamed path over
`--limit-mb`), 1 when it could not set up or run (the message names the step), 130 when
interrupted, after cleaning up (processes stopped, databases dropped, buckets deleted,
temporary folders removed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiobotocore.session import get_session
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
    cpu_model,
    cpu_seconds,
    free_port,
    fresh_database,
    log_summary,
    run_bench,
    safetybot_argv,
    service_env,
)
from benchmarks.report_bench import run_command  # noqa: E402
from bot.channels.webchat import Hub, WebChat  # noqa: E402
from bot.channels.wecom import WeComChannel  # noqa: E402
from bot.channels.wecom_api import WeComApi  # noqa: E402
from bot.clock import utc_now  # noqa: E402
from bot.db import activate, open_database  # noqa: E402
from bot.media import CHUNK, MediaStore, MediaUnavailable, store_at  # noqa: E402
from bot.settings import S3Settings, load_settings  # noqa: E402
from models.inbound import Inbound  # noqa: E402
from models.webchat import add_line  # noqa: E402
from simulator.wecom import WeComSimulator  # noqa: E402

MIB = 1024 * 1024
STORES = ("folder", "s3")
PARTS = ("ingest", "store", "memory")
# moto takes any keys; nothing here is a secret.
S3_KEYS = {"access_key_id": "bench-key", "secret_access_key": "bench-secret"}
REGION = "us-east-1"
PREFIX = "plant"
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
JPEG_END = b"\xff\xd9"
WARMUP_PHOTOS = 8           # unmeasured photos, each from a person of its own, every round
POLL_SECONDS = 0.1          # how often the inbox is read while the service works
PROBE_USER = "probe01"
# The memory paths, measured in this order, each in a fresh process; `get` is the contrast.
PROBES = [("ingest", "folder"), ("ingest", "s3"), ("chunks", "folder"), ("chunks", "s3"),
          ("webchat", "folder"), ("webchat", "s3"), ("get", "folder"), ("get", "s3")]
STREAMED = frozenset({"ingest", "chunks", "webchat"})
PATH_NAMES = {
    "ingest": "WeCom media/get → `put_stream` (the inbox's `_with_media`)",
    "chunks": "`chunks(digest)` read through",
    "webchat": "web chat GET /chat/media/{digest} (client: curl)",
    "get": "`get(digest)`: the whole object (contrast)",
}


# ---------------------------------------------------------------------------------------------
# Photos


def jpeg_like(rng: random.Random, size: int) -> bytes:
    """Random bytes framed as a JPEG (SOI, APP0 … EOI): incompressible as a real photo is, and
    sniffed as image/jpeg by the store and the handlers."""
    return JPEG_HEAD + rng.randbytes(size - len(JPEG_HEAD) - len(JPEG_END)) + JPEG_END


def photo_set(count: int, low_kb: int, high_kb: int, seed: int) -> list[bytes]:
    """`count` distinct photos of sizes uniform in [low, high] KiB, the same for a seed."""
    rng = random.Random(seed)
    return [jpeg_like(rng, rng.randint(low_kb * 1024, high_kb * 1024)) for _ in range(count)]


def big_photo(size: int, seed: int) -> bytes:
    return jpeg_like(random.Random(seed), size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    """A photo as a download delivers it: a chunk at a time."""
    for i in range(0, len(data), CHUNK):
        yield data[i:i + CHUNK]


# ---------------------------------------------------------------------------------------------
# The S3-compatible server (moto) and its buckets


def s3_settings(endpoint: str) -> S3Settings:
    return S3Settings(endpoint=endpoint, region=REGION, addressing_style="path",
                      timeout_seconds=30.0, **S3_KEYS)


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    """The service's settings for a bucket's store (path-style, as MinIO and moto want)."""
    return {"SAFETYBOT_MEDIA_URL": f"s3://{bucket}/{PREFIX}", "SAFETYBOT_S3_ENDPOINT": endpoint,
            "SAFETYBOT_S3_REGION": REGION, "SAFETYBOT_S3_ADDRESSING_STYLE": "path",
            "SAFETYBOT_S3_ACCESS_KEY_ID": S3_KEYS["access_key_id"],
            "SAFETYBOT_S3_SECRET_ACCESS_KEY": S3_KEYS["secret_access_key"]}


@contextlib.asynccontextmanager
async def moto_server(log: Path) -> AsyncIterator[tuple[str, Child]]:
    """moto's standalone server (a Python process of its own) on a free port, until stopped."""
    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        raise BenchError(f"{server} not found: install moto[server] in the venv")
    port = free_port()
    child = await Child.start("moto_server", [str(server), "-H", "127.0.0.1", "-p", str(port)],
                              os.environ.copy(), log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        await child.wait_ready(endpoint + "/", any_answer=True)
        yield endpoint, child
    finally:
        await child.stop()


@contextlib.asynccontextmanager
async def s3_admin(endpoint: str) -> AsyncIterator[Any]:
    config = Config(s3={"addressing_style": "path"})
    async with get_session().create_client(
            "s3", endpoint_url=endpoint, region_name=REGION, config=config,
            aws_access_key_id=S3_KEYS["access_key_id"],
            aws_secret_access_key=S3_KEYS["secret_access_key"]) as client:
        yield client


@contextlib.asynccontextmanager
async def bucket(endpoint: str, name: str) -> AsyncIterator[str]:
    """A fresh bucket, emptied and deleted afterwards: moto keeps every object in memory."""
    async with s3_admin(endpoint) as client:
        await client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        async with s3_admin(endpoint) as client:
            async for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    await client.delete_objects(Bucket=name, Delete={"Objects": keys})
            await client.delete_bucket(Bucket=name)


def open_store(kind: str, folder: Path, endpoint: str, bucket_name: str) -> MediaStore:
    """A store as the service opens one from its URL."""
    settings = load_settings({"SAFETYBOT_DATABASE_URL": "sqlite://:memory:"}
                             | (s3_env(endpoint, bucket_name) if kind == "s3" else {}))
    url = f"s3://{bucket_name}/{PREFIX}" if kind == "s3" else f"file://{folder}"
    return store_at(url, settings)


# ---------------------------------------------------------------------------------------------
# The database, as this script reads it beside the service


class Db:
    """SQLite through the standard library (in a thread: the file is the service's too), or
    PostgreSQL through asyncpg; queries are written with `?` and numbered for PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite://")

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.sqlite:
            return await asyncio.to_thread(self._sqlite, sql, args, False)
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(_numbered(sql), *args)]
        finally:
            await conn.close()

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if self.sqlite:
            await asyncio.to_thread(self._sqlite, sql, rows, True)
            return
        conn = await asyncpg.connect(self.url)
        try:
            await conn.executemany(_numbered(sql), rows)
        finally:
            await conn.close()

    def _sqlite(self, sql: str, args: Any, many: bool) -> list[tuple[Any, ...]]:
        import sqlite3

        path = self.url.removeprefix("sqlite://").split("?", 1)[0]
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            if many:
                conn.executemany(sql, args)
                conn.commit()
                return []
            return conn.execute(sql, args).fetchall()


def _numbered(sql: str) -> str:
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def instant(value: Any) -> float:
    """A `processed_at` as seconds since the epoch (SQLite gives text, PostgreSQL datetimes)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.timestamp()


async def register(db: Db, users: Sequence[str]) -> None:
    """Registered senders: a stranger's photo would take the short 'not registered' path."""
    await db.executemany(
        "INSERT INTO org_user (id, name, roles, mobile, active) VALUES (?, ?, ?, '', ?)",
        [(u, f"压测员工{i:03d}", '["worker"]', True) for i, u in enumerate(users, 1)])


@contextlib.asynccontextmanager
async def database(args: argparse.Namespace, tmp: Path, name: str) -> AsyncIterator[str]:
    """A fresh database for one round, gone afterwards (the SQLite file with `tmp`)."""
    if args.database == "sqlite":
        folder = tmp / name
        folder.mkdir()
        yield f"sqlite://{folder}/bench.sqlite3"
        return
    async with fresh_database(args.admin_dsn) as url:
        yield url


# ---------------------------------------------------------------------------------------------
# Part 1: ingest through the service


@dataclass
class IngestRound:
    store: str
    round: int
    photos: int
    bytes: int
    seconds: float                  # first callback sent → last event done
    answered_seconds: float         # first callback sent → every callback answered
    service_cpu: float              # CPU seconds of `safetybot serve` while measured
    moto_cpu: float
    here_cpu: float                 # this process: the simulator serving media/get, polling
    statuses: Counter[int]
    replies: int                    # outbox messages the dialogs queued for these photos
    problems: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.photos / self.seconds

    @property
    def mib_per_second(self) -> float:
        return self.bytes / MIB / self.seconds


async def send_photos(sim: WeComSimulator, users: Sequence[str], photos: Sequence[bytes]
                      ) -> Counter[int]:
    """Photo `i` from person `i mod len(users)`; everyone at once, each person's photos one
    after another (the next sent when WeCom's callback for the last was answered)."""
    mine: dict[str, list[bytes]] = {}
    for i, data in enumerate(photos):
        mine.setdefault(users[i % len(users)], []).append(data)
    statuses: Counter[int] = Counter()

    async def person(user: str, theirs: list[bytes]) -> None:
        someone = sim.user(user)
        for data in theirs:
            statuses[(await someone.sends_photo(data)).status] += 1

    await asyncio.gather(*(person(u, theirs) for u, theirs in mine.items()))
    return statuses


async def until_done(db: Db, after: int, expected: int, within: float, child: Child
                     ) -> float:
    """Wait until the `expected` inbox events after id `after` are all done; the last one's
    `processed_at`. Fails on a parked event, a service that exited, or after `within` s."""
    deadline = time.monotonic() + within
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        rows = await db.fetch("SELECT status, count(*), max(processed_at) FROM inbox_event "
                              "WHERE id > ? GROUP BY status", after)
        counts = {str(status): int(n) for status, n, _ in rows}
        if counts.get("parked"):
            raise BenchError(f"{counts['parked']} inbox events parked; see {child.log}")
        if counts.get("done", 0) >= expected:
            return max(instant(last) for status, _, last in rows if status == "done")
        if child.proc.returncode is not None:
            raise BenchError(f"{child.name} exited with {child.proc.returncode}; see "
                             f"{child.log}")
        await asyncio.sleep(POLL_SECONDS)
    raise BenchError(f"{child.name}: {expected} photos not done within {within:.0f} s "
                     f"(inbox after the warm-up: {counts}); see {child.log}")


async def stored_media(db: Db, after: int) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT payload FROM inbox_event WHERE id > ? ORDER BY id", after)
    return [json.loads(p) if isinstance(p, str) else dict(p) for (p,) in rows]


async def check_round(db: Db, store: MediaStore, first: int, photos: Sequence[bytes],
                      warm: Sequence[bytes]) -> list[str]:
    """Every photo stored under its own hash, nothing lost, nothing else in the store."""
    problems = []
    payloads = [Inbound.from_payload(p) for p in await stored_media(db, first)]
    lost = sum(p.media_lost for p in payloads)
    if lost:
        problems.append(f"{lost} photos marked lost")
    got = Counter(p.media for p in payloads)
    want = Counter(sha(data) for data in photos)
    if got != want:
        problems.append(f"inbox events name {sum((got - want).values())} digests that were not "
                        f"sent and miss {sum((want - got).values())} that were")
    present = {digest async for digest in store.digests()}
    expected = {sha(data) for data in (*photos, *warm)}
    if present != expected:
        problems.append(f"store holds {len(present)} objects, {len(present & expected)} of the "
                        f"{len(expected)} sent")
    return problems


@dataclass
class Ingest:
    """What every ingest round shares: the simulator, moto, the photos, where logs go."""

    args: argparse.Namespace
    sim: WeComSimulator
    endpoint: str
    moto: Child
    tmp: Path
    logs: Path
    users: list[str]
    warm_users: list[str]
    service_logs: list[Path] = field(default_factory=list)


async def ingest_round(ing: Ingest, store_kind: str, index: int, photos: Sequence[bytes],
                       warm: Sequence[bytes]) -> IngestRound:
    """One store, one round: a fresh database and store, `safetybot serve`, the warm-up, then
    every photo sent and waited for; the service is stopped afterwards."""
    args = ing.args
    name = f"{store_kind}-round{index + 1}"
    folder = ing.tmp / f"media-{name}"
    bucket_name = f"media-bench-{name}-{os.getpid()}"
    log = ing.logs / f"service-{name}.log"
    ing.service_logs.append(log)
    async with database(args, ing.tmp, f"db-{name}") as url, contextlib.AsyncExitStack() as stack:
        port = free_port()
        env = service_env(url, port, folder) | api_env("wecom", ing.sim.base_url)
        if store_kind == "s3":
            env |= s3_env(ing.endpoint, await stack.enter_async_context(
                bucket(ing.endpoint, bucket_name)))
        await run_command(env, "migrate")
        db = Db(url)
        await register(db, ing.users + ing.warm_users)
        child = await Child.start(f"service ({name})", safetybot_argv("serve"), env, log)
        try:
            base = f"http://127.0.0.1:{port}"
            await child.wait_ready(base + "/readyz")
            ing.sim.callback_url = base + "/wecom/callback"
            # Warm-up: the access token, the store's client and connections, the first queries.
            await send_photos(ing.sim, ing.warm_users, warm)
            await until_done(db, 0, len(warm), 60, child)
            [(first,)] = await db.fetch("SELECT coalesce(max(id), 0) FROM inbox_event")
            [(queued,)] = await db.fetch("SELECT count(*) FROM outbox_message")
            cpu = (cpu_seconds(child.proc.pid), cpu_seconds(ing.moto.proc.pid),
                   time.process_time())
            started = time.time()
            statuses = await send_photos(ing.sim, ing.users, photos)
            answered = time.time() - started
            finished = await until_done(db, int(first), len(photos),
                                        60 + len(photos) * 2.0, child)
            used = (cpu_seconds(child.proc.pid) - cpu[0],
                    cpu_seconds(ing.moto.proc.pid) - cpu[1], time.process_time() - cpu[2])
        finally:
            await child.stop()
        [(replies,)] = await db.fetch("SELECT count(*) FROM outbox_message")
        store = open_store(store_kind, folder, ing.endpoint, bucket_name)
        try:
            problems = await check_round(db, store, int(first), photos, warm)
        finally:
            await store.close()
    ing.sim.media.clear()           # the simulator's copies of this round's photos
    if statuses[200] != len(photos):
        problems.append(f"callback answers: {dict(statuses)}")
    return IngestRound(store_kind, index, len(photos), sum(map(len, photos)),
                       finished - started, answered, *used, statuses,
                       int(replies) - int(queued), problems)


async def run_ingest(args: argparse.Namespace, endpoint: str, moto: Child, tmp: Path,
                     logs: Path) -> tuple[list[IngestRound], list[Path]]:
    users = [f"bench{i:04d}" for i in range(1, args.users + 1)]
    warm_users = [f"warm{i:02d}" for i in range(1, WARMUP_PHOTOS + 1)]
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users + warm_users)
    await sim.start()
    ing = Ingest(args, sim, endpoint, moto, tmp, logs, users, warm_users)
    results = []
    try:
        for i in range(args.rounds):
            photos = photo_set(args.photos, args.min_kb, args.max_kb, seed=1000 + i)
            warm = photo_set(WARMUP_PHOTOS, args.min_kb, args.max_kb, seed=2000 + i)
            # Alternate which store goes first, so a drift of the machine hits both alike.
            for kind in STORES if i % 2 == 0 else STORES[::-1]:
                print(f"ingest round {i + 1}/{args.rounds}: {kind} …", file=sys.stderr)
                results.append(await ingest_round(ing, kind, i, photos, warm))
    finally:
        await sim.stop()
    return results, ing.service_logs


# ---------------------------------------------------------------------------------------------
# Part 2: the store alone


@dataclass
class StoreRound:
    store: str
    round: int
    photos: int
    bytes: int
    put_seconds: float
    read_seconds: float
    moto_cpu: float
    problems: list[str] = field(default_factory=list)


async def store_round(store: MediaStore, kind: str, index: int, photos: Sequence[bytes],
                      concurrency: int, moto: Child) -> StoreRound:
    """`put_stream` every photo (`concurrency` at a time), then read each back with `chunks`."""
    gate = asyncio.Semaphore(concurrency)

    async def put(data: bytes) -> str:
        async with gate:
            return await store.put_stream(pieces(data))

    async def read(digest: str) -> int:
        async with gate:
            return sum([len(chunk) async for chunk in store.chunks(digest)])

    moto_before = cpu_seconds(moto.proc.pid)
    started = time.perf_counter()
    digests = await asyncio.gather(*(put(data) for data in photos))
    put_seconds = time.perf_counter() - started
    started = time.perf_counter()
    sizes = await asyncio.gather(*(read(d) for d in digests))
    read_seconds = time.perf_counter() - started
    problems = []
    if list(digests) != [sha(data) for data in photos]:
        problems.append("put_stream returned a wrong digest")
    if list(sizes) != [len(data) for data in photos]:
        problems.append("chunks read back a different size")
    return StoreRound(kind, index, len(photos), sum(map(len, photos)), put_seconds,
                      read_seconds, cpu_seconds(moto.proc.pid) - moto_before, problems)


async def run_store(args: argparse.Namespace, endpoint: str, moto: Child, tmp: Path
                    ) -> list[StoreRound]:
    results = []
    for i in range(args.rounds):
        photos = photo_set(args.photos, args.min_kb, args.max_kb, seed=3000 + i)
        for kind in STORES if i % 2 == 0 else STORES[::-1]:
            print(f"store round {i + 1}/{args.rounds}: {kind} …", file=sys.stderr)
            name = f"store-{kind}-round{i + 1}"
            async with bucket(endpoint, f"media-bench-{name}-{os.getpid()}") as bucket_name:
                store = open_store(kind, tmp / name, endpoint, bucket_name)
                try:
                    results.append(await store_round(store, kind, i, photos,
                                                     args.store_concurrency, moto))
                finally:
                    await store.close()
    return results


# ---------------------------------------------------------------------------------------------
# Part 3: one big photo's memory, each path in a process of its own


def rss_kib(field_name: str) -> int:
    """VmRSS or VmHWM (the high-water mark) of this process, KiB."""
    found = re.search(rf"^{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(found[1]) if found else 0


def reset_high_water() -> bool:
    """Linux resets VmHWM to the current RSS on `5` written to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def measured(work: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    """Run `work` once; what it allocated at its peak beyond what was live before it."""
    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    rss = rss_kib("VmRSS") if reset_high_water() else None
    started = time.perf_counter()
    size = await work()
    seconds = time.perf_counter() - started
    current, peak = tracemalloc.get_traced_memory()
    hwm = rss_kib("VmHWM") if rss is not None else None
    return {"bytes": size, "seconds": seconds, "peak": peak - baseline,
            "retained": current - baseline,
            "rss_growth": None if rss is None or hwm is None else (hwm - rss) * 1024}


# One transfer of the photo known by (its media id on the platform, its digest): bytes moved.
Transfer = Callable[[str, str], Awaitable[int]]


async def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """One path for the big photo, after the same path once for the small one (connections,
    the access token, imports and caches warmed up), in this fresh process."""
    store = open_store(spec["store"], Path(spec["folder"]), spec["endpoint"], spec["bucket"])
    ctx = await open_database(spec["database"])
    # This task's ORM, as `serve` activates it (`with ctx:` would clash with the web chat's
    # handler tasks activating it too: the context keeps one reset token).
    activate(ctx)
    try:
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            tracemalloc.start()
            transfer = await transfer_of(spec, store, ctx, session, stack)
            await transfer(spec["small_id"], spec["small_digest"])
            result = await measured(lambda: transfer(spec["big_id"], spec["digest"]))
    finally:
        await store.close()
        with ctx:
            await ctx.close_connections()
    return {"kind": spec["kind"], "store": spec["store"], **result}


async def transfer_of(spec: dict[str, Any], store: MediaStore, ctx: Any,
                      session: aiohttp.ClientSession, stack: contextlib.AsyncExitStack
                      ) -> Transfer:
    """The path `spec["kind"]` names, as the service runs it."""
    kind = spec["kind"]
    if kind == "ingest":
        settings = load_settings({
            "SAFETYBOT_DATABASE_URL": spec["database"], "SAFETYBOT_WECOM_CORP_ID": CORP_ID,
            "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID), "SAFETYBOT_WECOM_SECRET": SECRET,
            "SAFETYBOT_WECOM_TOKEN": TOKEN, "SAFETYBOT_WECOM_AES_KEY": AES_KEY,
            "SAFETYBOT_WECOM_API_BASE": spec["wecom"]})
        api = WeComApi(settings.wecom, session, "media-bench", utc_now)
        channel = WeComChannel(settings.wecom, api, store)

        async def ingest(media_id: str, digest: str) -> int:
            # What the inbox worker's `_with_media` does with a photo's media id.
            got = await store.put_stream(channel.fetch_media(media_id))
            if got != digest:
                raise BenchError(f"the download was stored as {got}, not {digest}")
            return spec["size"] if digest == spec["digest"] else spec["small"]

        return ingest
    if kind == "chunks":
        async def chunks(_: str, digest: str) -> int:
            size = 0
            async with contextlib.aclosing(store.chunks(digest)) as pieces:
                async for chunk in pieces:
                    size += len(chunk)
            return size

        return chunks
    if kind == "get":
        async def whole(_: str, digest: str) -> int:
            return len(await store.get(digest))

        return whole
    base = await stack.enter_async_context(webchat(store, ctx))
    for digest in (spec["small_digest"], spec["digest"]):   # shown in the person's chat
        await add_line(PROBE_USER, f"bench:{digest}", from_bot=True, kind="image",
                       payload={"media": digest}, now=utc_now())

    async def served(_: str, digest: str) -> int:
        return await curl(f"{base}/chat/media/{digest}?user={PROBE_USER}")

    return served


@contextlib.asynccontextmanager
async def webchat(store: MediaStore, ctx: Any) -> AsyncIterator[str]:
    """The web chat's routes on loopback, as `serve` mounts them, with the ORM for its checks."""
    @web.middleware
    async def orm(request: web.Request, handler: Any) -> web.StreamResponse:
        activate(ctx)
        response: web.StreamResponse = await handler(request)
        return response

    async def sink(_: Inbound) -> bool:
        return False

    app = web.Application(middlewares=[orm])
    app.add_routes(WebChat(sink, store, Hub(), utc_now, poll_seconds=0.5,
                           max_upload=20 * MIB).routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def curl(url: str) -> int:
    """A client in a process of its own, so what it receives is not counted here."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    status, _, size = out.decode().partition(" ")
    if proc.returncode != 0 or status != "200":
        raise BenchError(f"curl {url}: {status or proc.returncode} {err.decode().strip()}")
    return int(size)


def probe_main(raw: str) -> int:
    """`--probe JSON`: one measurement, its result as one JSON line on stdout."""
    result = asyncio.run(probe(json.loads(raw)))
    print(json.dumps(result), flush=True)
    return 0


def serve_wecom_main(raw: str) -> int:
    """`--serve-wecom JSON`: the WeCom simulator holding the big and the small photo, in a
    process of its own; prints its address and media ids, serves until SIGTERM."""
    spec = json.loads(raw)

    async def serve() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, [PROBE_USER])
        await sim.start()
        try:
            ids = {"base": sim.base_url,
                   "big_id": sim.add_media(big_photo(spec["size"], spec["seed"])),
                   "small_id": sim.add_media(big_photo(spec["small"], spec["seed"] + 1))}
            print(json.dumps(ids), flush=True)
            await stopping.wait()
        finally:
            await sim.stop()

    asyncio.run(serve())
    return 0


@dataclass
class ProbeResult:
    kind: str
    store: str
    peaks: list[int]                # bytes, one per round
    retained: list[int]
    rss: list[int | None]
    seconds: list[float]


async def run_memory(args: argparse.Namespace, endpoint: str, tmp: Path, logs: Path
                     ) -> list[ProbeResult]:
    size = int(args.big_mb * MIB)
    small = args.min_kb * 1024
    seed = 4242
    big, warm = big_photo(size, seed), big_photo(small, seed + 1)
    folder = tmp / "probe-media"
    db_url = f"sqlite://{tmp}/probe.sqlite3"
    log = logs / "probes.log"
    env = service_env(db_url, free_port(), folder)
    await run_command(env, "migrate")
    spec = {"size": size, "seed": seed, "small": small}
    with log.open("ab") as err:
        sim = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-wecom", json.dumps(spec), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    try:
        assert sim.stdout is not None
        try:
            line = await asyncio.wait_for(sim.stdout.readline(), 30)
            ids = json.loads(line)
        except (TimeoutError, ValueError):
            raise BenchError(f"the WeCom simulator for the probes did not start; see {log}"
                             ) from None
        async with bucket(endpoint, f"media-bench-probe-{os.getpid()}") as bucket_name:
            for kind in STORES:      # the big photo in both stores, for the reading paths
                store = open_store(kind, folder, endpoint, bucket_name)
                try:
                    for data in (big, warm):
                        await store.put(data)
                finally:
                    await store.close()
            results = {path: ProbeResult(*path, [], [], [], []) for path in PROBES}
            for i in range(args.memory_rounds):
                for kind, store_kind in PROBES:
                    print(f"memory round {i + 1}/{args.memory_rounds}: {kind} {store_kind} …",
                          file=sys.stderr)
                    if kind == "ingest":   # the download stores it again: start without it
                        await remove(store_kind, folder, endpoint, bucket_name, sha(big))
                    one = await run_probe({
                        "kind": kind, "store": store_kind, "folder": str(folder),
                        "endpoint": endpoint, "bucket": bucket_name, "database": db_url,
                        "wecom": ids["base"], "big_id": ids["big_id"],
                        "small_id": ids["small_id"], "digest": sha(big),
                        "small_digest": sha(warm), "size": size, "small": small}, log)
                    if one["bytes"] != size:
                        raise BenchError(f"{kind} {store_kind} moved {one['bytes']} bytes, not "
                                         f"{size}")
                    r = results[(kind, store_kind)]
                    r.peaks.append(one["peak"])
                    r.retained.append(one["retained"])
                    r.rss.append(one["rss_growth"])
                    r.seconds.append(one["seconds"])
    finally:
        if sim.returncode is None:
            sim.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(sim.wait(), 15)
            except TimeoutError:
                sim.kill()
                await sim.wait()
    return list(results.values())


async def remove(kind: str, folder: Path, endpoint: str, bucket_name: str, digest: str) -> None:
    if kind == "folder":
        with contextlib.suppress(FileNotFoundError):
            (folder / digest[:2] / digest[2:4] / digest).unlink()
        return
    async with s3_admin(endpoint) as client:
        await client.delete_object(Bucket=bucket_name,
                                   Key=f"{PREFIX}/{digest[:2]}/{digest[2:4]}/{digest}")


async def run_probe(spec: dict[str, Any], log: Path) -> dict[str, Any]:
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--probe", json.dumps(spec), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"probe {spec['kind']} {spec['store']} took over 120 s; see {log}"
                         ) from None
    if proc.returncode != 0:
        raise BenchError(f"probe {spec['kind']} {spec['store']} failed; see {log}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# Report


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def mib(value: float) -> str:
    return f"{value / MIB:.2f}"


def machine(args: argparse.Namespace) -> dict[str, str]:
    memory = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"nproc {len(os.sched_getaffinity(0))}, {cpu_model()}, "
                   f"{int(memory[1]) // 1024 if memory else '?'} MiB memory",
        "python": platform.python_version(),
        "load average at the start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "service code": code_version(),
        "database": args.database,
        "S3 server": f"moto {metadata.version('moto')} (moto_server, a Python process of its "
                     f"own), aiobotocore {metadata.version('aiobotocore')}, path-style, plain "
                     "HTTP on loopback",
    }


def report_ingest(args: argparse.Namespace, rounds: list[IngestRound]) -> list[str]:
    print(f"\n### Photo ingest through the service ({args.photos} photos of {args.min_kb}–"
          f"{args.max_kb} KiB from {args.users} people, {args.rounds} rounds, medians)\n")
    print("| store | photos/s | MiB/s | seconds | all callbacks answered after s | service CPU "
          "ms/photo | moto CPU ms/photo | this process CPU ms/photo |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    by = {kind: [r for r in rounds if r.store == kind] for kind in STORES}
    for kind, rs in by.items():
        print(f"| {kind} | {median([r.per_second for r in rs]):.1f} | "
              f"{median([r.mib_per_second for r in rs]):.1f} | "
              f"{median([r.seconds for r in rs]):.2f} | "
              f"{median([r.answered_seconds for r in rs]):.2f} | "
              f"{median([r.service_cpu / r.photos * 1000 for r in rs]):.1f} | "
              f"{median([r.moto_cpu / r.photos * 1000 for r in rs]):.1f} | "
              f"{median([r.here_cpu / r.photos * 1000 for r in rs]):.1f} |")
    ratios = [s.per_second / f.per_second for f, s in zip(by["folder"], by["s3"], strict=True)]
    print(f"\n**S3/folder ingest throughput: {median(ratios):.2f}×** (median of the rounds' "
          f"ratios: {', '.join(f'{x:.2f}' for x in ratios)})\n")
    print("| round | store | photos/s | MiB/s | seconds | service CPU s | moto CPU s | replies "
          "queued | checks |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rounds:
        print(f"| {r.round + 1} | {r.store} | {r.per_second:.1f} | {r.mib_per_second:.1f} | "
              f"{r.seconds:.2f} | {r.service_cpu:.1f} | {r.moto_cpu:.1f} | {r.replies} | "
              f"{'; '.join(r.problems) or 'ok'} |")
    return [f"ingest {r.store} round {r.round + 1}: {p}" for r in rounds for p in r.problems]


def report_store(args: argparse.Namespace, rounds: list[StoreRound]) -> list[str]:
    print(f"\n### The store alone ({args.photos} photos, concurrency {args.store_concurrency}, "
          f"{args.rounds} rounds, medians)\n")
    print("| store | put_stream photos/s | put_stream MiB/s | chunks read MiB/s | moto CPU "
          "ms/photo (put + read) |")
    print("|---|---:|---:|---:|---:|")
    by = {kind: [r for r in rounds if r.store == kind] for kind in STORES}
    for kind, rs in by.items():
        print(f"| {kind} | {median([r.photos / r.put_seconds for r in rs]):.1f} | "
              f"{median([r.bytes / MIB / r.put_seconds for r in rs]):.1f} | "
              f"{median([r.bytes / MIB / r.read_seconds for r in rs]):.1f} | "
              f"{median([r.moto_cpu / r.photos * 1000 for r in rs]):.1f} |")
    puts = [f.put_seconds / s.put_seconds for f, s in zip(by["folder"], by["s3"], strict=True)]
    reads = [f.read_seconds / s.read_seconds
             for f, s in zip(by["folder"], by["s3"], strict=True)]
    print(f"\n**S3/folder, the store alone: put_stream {median(puts):.2f}×, chunks "
          f"{median(reads):.2f}×** (rounds: put {', '.join(f'{x:.2f}' for x in puts)}; read "
          f"{', '.join(f'{x:.2f}' for x in reads)})")
    return [f"store {r.store} round {r.round + 1}: {p}" for r in rounds for p in r.problems]


def report_memory(args: argparse.Namespace, results: list[ProbeResult]) -> list[str]:
    size = int(args.big_mb * MIB)
    print(f"\n### One {args.big_mb:g} MiB photo: memory held by our side per transfer "
          f"(tracemalloc peak over the baseline, MiB; {args.memory_rounds} rounds, the largest "
          "shown)\n")
    print("| path | store | peak MiB | × file size | retained after MiB | RSS high-water growth "
          f"MiB | seconds | within {args.limit_mb:g} MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    problems = []
    for r in results:
        peak = max(r.peaks)
        rss = [x for x in r.rss if x is not None]
        verdict = "-"
        if r.kind in STREAMED:
            verdict = "yes" if peak <= args.limit_mb * MIB else "**NO**"
            if peak > args.limit_mb * MIB:
                problems.append(f"{r.kind} {r.store}: peak {mib(peak)} MiB over "
                                f"{args.limit_mb:g} MiB")
        print(f"| {PATH_NAMES[r.kind]} | {r.store} | {mib(peak)} | {peak / size:.2f} | "
              f"{mib(max(r.retained))} | {mib(max(rss)) if rss else '-'} | "
              f"{median(r.seconds):.3f} | {verdict} |")
    print("\nPeaks per round, MiB: " + "; ".join(
        f"{r.kind} {r.store} {', '.join(mib(p) for p in r.peaks)}" for r in results))
    return problems


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--photos", type=int, default=400, help="measured photos per round")
    p.add_argument("--users", type=int, default=200, help="people sending them, in turn")
    p.add_argument("--rounds", type=int, default=3, help="rounds per store (ingest, store)")
    p.add_argument("--min-kb", type=int, default=200, help="smallest photo, KiB")
    p.add_argument("--max-kb", type=int, default=800, help="largest photo, KiB")
    p.add_argument("--store-concurrency", type=int, default=16,
                   help="put_stream calls in flight in the store-only part")
    p.add_argument("--big-mb", type=float, default=5.0, help="the big photo, MiB")
    p.add_argument("--memory-rounds", type=int, default=3,
                   help="fresh processes per memory path")
    p.add_argument("--limit-mb", type=float, default=4.0,
                   help="most MiB a streamed transfer of the big photo may hold ('a few')")
    p.add_argument("--parts", default=",".join(PARTS), help="which of ingest,store,memory")
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                   help="the service's database in the ingest part")
    p.add_argument("--admin-dsn", default="postgres://postgres@127.0.0.1:5432/test",
                   help="with --database postgres: a database to CREATE/DROP DATABASE from")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out",
                   help="where the logs of the service, moto and the probes are kept")
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not args.parts or set(args.parts) - set(PARTS):
        p.error("--parts: some of ingest,store,memory")
    for name in ("photos", "users", "rounds", "store_concurrency", "memory_rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 1 <= args.min_kb <= args.max_kb:
        p.error("--min-kb and --max-kb: 1 ≤ min ≤ max")
    if args.big_mb <= 0 or args.limit_mb <= 0:
        p.error("--big-mb and --limit-mb must be positive")
    return args


async def bench(args: argparse.Namespace) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    logs = args.out / time.strftime("%Y%m%d-%H%M%S-media")
    logs.mkdir(parents=True, exist_ok=True)
    info = machine(args)
    ingest: list[IngestRound] = []
    stores: list[StoreRound] = []
    memory: list[ProbeResult] = []
    service_logs: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="safetybot-media-bench-") as name:
        tmp = Path(name)
        try:
            async with moto_server(logs / "moto.log") as (endpoint, moto):
                if "ingest" in args.parts:
                    ingest, service_logs = await run_ingest(args, endpoint, moto, tmp, logs)
                if "store" in args.parts:
                    stores = await run_store(args, endpoint, moto, tmp)
                if "memory" in args.parts:
                    memory = await run_memory(args, endpoint, tmp, logs)
        except (BotoCoreError, ClientError, MediaUnavailable) as exc:
            raise BenchError(f"the S3 server: {exc}; see {logs / 'moto.log'}") from None
    print("\n## Media store benchmark (issue 21)\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- logs: {logs}")
    problems = []
    if ingest:
        problems += report_ingest(args, ingest)
    if stores:
        problems += report_store(args, stores)
    if memory:
        problems += report_memory(args, memory)
    for log in service_logs:
        lines = log_summary(log)
        if lines:
            print(f"\nwarnings/errors in {log.name}:")
            for line in lines:
                print("    " + line)
    print("\n" + ("every check held" if not problems else "CHECKS FAILED:\n" + "\n".join(
        f"- {p}" for p in problems)))
    return 2 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--probe"]:
        return probe_main(raw[1])
    if raw[:1] == ["--serve-wecom"]:
        return serve_wecom_main(raw[1])
    return run_bench("media_bench", bench(parse_args(raw)),
                     cleaned="processes stopped, databases dropped, buckets deleted")


if __name__ == "__main__":
    sys.exit(main())
