"""When the environment fails: the disk or the media directory refuses writes, the database
restarts, a worker is killed, a loop meets something it cannot get past. The service waits and
resumes by itself, tells a waiting person once, loses and doubles nothing, and says the truth on
/readyz; what truly cannot go on stops the process with a non-zero exit."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from tortoise.context import TortoiseContext
from tortoise.exceptions import OperationalError

from bot.app import INBOX
from bot.channels import PlatformUnavailable
from bot.channels.wecom_api import WeComError
from bot.clock import ManualClock
from bot.db import migrate, open_database
from bot.inbox import WAITING
from bot.roster import load_org, parse_roster
from bot.supervision import environmental
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, InboxStatus, inbox_claim, inbox_put, inbox_wait
from models.org import User
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    BACKEND,
    CORP_ID,
    ROSTER_MEDIA,
    SECRET,
    TOKEN,
    Service,
    cli,
    service_settings,
    settled,
    spawn,
    stop,
)
from tests.plant import DEMO_ORG, Person, plant
from tests.private_postgres import PrivatePostgres, binaries

# ---------------------------------------------------------------------------------------------
# Telling the environment's failures from bugs


async def test_failures_of_the_environment_are_told_apart_from_bugs(
        db: TortoiseContext) -> None:
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(host="127.0.0.1", port=1, user="postgres", timeout=2)
    assert environmental(refused.value)
    assert environmental(OSError(errno.ENOSPC, "No space left on device"))
    assert environmental(OSError(errno.EROFS, "Read-only file system"))
    assert environmental(PlatformUnavailable("wecom errcode -1: system busy"))
    try:
        raise OperationalError("locked") from sqlite3.OperationalError("database is locked")
    except OperationalError as wrapped:
        assert environmental(wrapped)
    with pytest.raises(Exception) as missing_table:
        await db.db().execute_query("SELECT * FROM no_such_table")
    assert not environmental(missing_table.value)      # a bug or a wrong database: no waiting
    assert not environmental(FileNotFoundError("media gone"))
    assert not environmental(KeyError("area"))
    assert not environmental(WeComError(40014, "invalid access_token"))


# ---------------------------------------------------------------------------------------------
# A media directory that refuses writes: read-only, then full


class SmallDisk:
    """A 1 MiB tmpfs for the media directory: made read-only, filled, and put right again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, *options: str) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(["size=1m", *options]), "tmpfs",
                        str(self.path)], check=True, capture_output=True)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True,
                       capture_output=True)

    def fill(self) -> None:
        with (self.path / "filler").open("wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.rglob("*") if p.is_file())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "media")
    disk.path.mkdir()
    try:
        disk.mount()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk.path)], check=False)


async def photo_waits_then_is_handled(database_url: str, media_dir: Path, failure: str,
                                      mend: Callable[[], Awaitable[None]],
                                      **settings: str) -> InboxEvent:
    """张三's photo meets a media store that refuses it (`failure` is in the event's error):
    the event waits (no tries counted, nothing parked), after a minute he is told once, and once
    `mend` put the store right the report goes on. Returns the handled event."""
    clock = ManualClock()
    async with plant(database_url, media_dir, clock, roster_media=ROSTER_MEDIA,
                     **settings) as (sim, service):
        assert service.app is not None
        worker = Person(sim, "zhangsan")
        await worker.sends_photo()
        event = await until_row(lambda e: e.failing_since is not None)
        assert event.status is InboxStatus.PENDING and event.attempts == 0
        assert failure in event.last_error
        assert sim.messages_for("zhangsan") == []

        for _ in range(3):        # a minute and more passes, with tries in between
            clock.advance(61)
            await retried(service, event)
            event = await InboxEvent.get(id=event.id)
        await worker.expect(WAITING)
        assert [text for text in texts(sim, "zhangsan") if text == WAITING] == [WAITING]

        await mend()
        clock.advance(61)
        service.app[INBOX].wake()
        await worker.expect("已收到照片", "哪个区域")
        handled = await InboxEvent.get(id=event.id)
        assert handled.status is InboxStatus.DONE and handled.attempts == 0
        assert texts(sim, "zhangsan").count(WAITING) == 1
        return handled


async def on_the_disk(disk: SmallDisk, database_url: str,
                      make_writable: Callable[[], object]) -> None:
    """The photo waited on the disk, then is stored there whole, and nothing partial is left."""
    async def mend() -> None:
        assert disk.files() in ([], ["filler"])     # no partial file left behind
        make_writable()

    await photo_waits_then_is_handled(database_url, disk.path, "Errno", mend)
    assert len([f for f in disk.files() if f != "filler"]) == 1
    assert not any(f.endswith(".part") for f in disk.files())


async def until_row(condition: object, timeout: float = 30.0) -> InboxEvent:  # noqa: ASYNC109
    """The person's latest event once `condition` holds (generous: a loaded machine is slow)."""
    async with asyncio.timeout(timeout):
        while True:
            row = await InboxEvent.filter(user_id="zhangsan").order_by("-id").first()
            if row is not None and condition(row):     # type: ignore[operator]
                return row
            await asyncio.sleep(0.02)


async def retried(service: Service, event: InboxEvent) -> None:
    """Wake the worker and wait until it tried the event again."""
    assert service.app is not None
    service.app[INBOX].wake()
    await until_row(lambda e: e.next_attempt_at != event.next_attempt_at)


def texts(sim: WeComSimulator, user: str) -> list[str]:
    return [m.body["text"]["content"] for m in sim.messages_for(user) if m.msgtype == "text"]


async def test_a_read_only_media_directory_makes_the_photo_wait(
        db: TortoiseContext, database_url: str, small_disk: SmallDisk) -> None:
    small_disk.remount("ro")
    await on_the_disk(small_disk, database_url, lambda: small_disk.remount("rw"))


async def test_a_full_disk_makes_the_photo_wait_and_leaves_no_partial_file(
        db: TortoiseContext, database_url: str, small_disk: SmallDisk) -> None:
    small_disk.fill()
    await on_the_disk(small_disk, database_url, (small_disk.path / "filler").unlink)


# ---------------------------------------------------------------------------------------------
# Readiness


async def test_readyz_tells_an_inbox_lag_over_the_threshold(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path) -> None:
    """An event that has waited longer than `ready_max_lag_seconds` makes a worker's /readyz
    503; a process that only takes callbacks stays ready (it takes them well meanwhile)."""
    settings = service_settings(database_url, wecom.base_url, media_dir,
                                ready_max_lag_seconds=1)
    clock = ManualClock()
    await inbox_put(Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                            dedup_key="old", text="帮助"), clock())
    # Its first try met a full disk and it waits an hour for the next, so the worker leaves it
    # waiting while /readyz is asked, 30 s after it came in.
    [row] = await inbox_claim("an earlier run", clock(), timedelta(minutes=1), 1)
    await inbox_wait(row, "OSError: [Errno 28] No space left on device", since=clock(),
                     retry_at=clock() + timedelta(hours=1), give_up=False)
    clock.advance(30)
    for workers, expected in ((True, 503), (False, 200)):
        svc = Service(settings, clock)
        await svc.start(workers=workers)
        try:
            status, body = await get_json(f"{svc.url}/readyz")
        finally:
            await svc.stop()
        assert status == expected, body
        assert body["inbox_lag_seconds"] >= 29
        if workers:
            assert any("inbox lag" in p for p in body["problems"])


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


# ---------------------------------------------------------------------------------------------
# A loop that cannot go on ends the process, non-zero


async def test_a_loop_that_cannot_go_on_stops_the_process_non_zero(
        fresh_url: str, wecom: WeComSimulator, tmp_path: Path) -> None:
    """The inbox table disappears under a running worker (a wrong restore, a bad migration):
    no amount of waiting mends that, so the worker stops with exit code 1 rather than staying
    up half-alive."""
    await migrate(fresh_url)
    log = tmp_path / "work.log"
    proc, _ = await spawn(["work"], fresh_url, wecom.base_url, tmp_path, log=log)
    try:
        ctx = await open_database(fresh_url)
        with ctx:
            await ctx.db().execute_script("ALTER TABLE inbox_event RENAME TO inbox_event_gone")
            await ctx.close_connections()
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 30)
    finally:
        await stop(proc)
    assert code == 1
    assert "inbox-worker stopped" in log.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Several workers on PostgreSQL: a slow handler keeps its lease, a killed one's is taken over

pg_only = pytest.mark.skipif(BACKEND != "postgres",
                             reason="several worker processes need PostgreSQL")
LEASE = 2.0


async def demo_plant_sim() -> WeComSimulator:
    await load_org(DEMO_ORG, datetime.now(UTC), ROSTER_MEDIA)
    users = [u.id for u in parse_roster(DEMO_ORG.read_text(encoding="utf-8")).users]
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=users,
                         per_member_per_minute=10_000)
    await sim.start()
    return sim


async def polled(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0  # noqa: ASYNC109
                 ) -> None:
    """Wait until `condition()` holds, asked every 50 ms (for what the simulator does not
    announce: a call that is still hanging)."""
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pg_only
async def test_a_slow_handler_keeps_its_lease_and_a_killed_workers_event_is_taken_over(
        db: TortoiseContext, database_url: str, media_dir: Path, tmp_path: Path) -> None:
    sim = await demo_plant_sim()
    logs = {name: tmp_path / f"{name}.log" for name in ("worker-a", "worker-b")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    web, web_url = await spawn(["serve", "--no-workers"], database_url, sim.base_url, media_dir)
    try:
        for name, log in logs.items():
            procs[name], _ = await spawn(
                ["work", "--no-scheduler"], database_url, sim.base_url, media_dir, log=log,
                instance_id=name, lease_seconds=LEASE, wecom_api_timeout_seconds=30)
        sim.callback_url = f"{web_url}/wecom/callback"

        # The photo's download takes three leases: the worker renews, nobody takes it over.
        sim.hang_next("media/get", 3 * LEASE)
        first = Person(sim, "zhangsan")
        await first.sends_photo()
        await first.expect("已收到照片", "哪个区域", timeout=20)
        assert sim.calls["media/get"] == 1
        assert all("took over" not in log.read_text(encoding="utf-8") for log in logs.values())

        # The worker holding the next photo is killed mid-download: the other takes it over
        # once the lease has run out, and says so.
        sim.hang_next("media/get", 12)
        second = Person(sim, "zhaolei")
        await second.sends_photo()

        async def mid_download() -> bool:
            return sim.calls["media/get"] == 2 and await InboxEvent.exists(
                user_id="zhaolei", lease_owner__isnull=False)

        await polled(mid_download)
        event = await InboxEvent.get(user_id="zhaolei")
        holder = event.lease_owner
        assert holder in procs
        procs[holder].send_signal(signal.SIGKILL)
        await asyncio.to_thread(procs[holder].wait)
        await second.expect("已收到照片", "哪个区域", timeout=4 * LEASE + 5)
        [survivor] = [name for name in procs if name != holder]
        taken = [json.loads(line) for line in logs[survivor].read_text("utf-8").splitlines()
                 if "took over inbox event" in line]
        assert taken and f"from {holder}" in taken[0]["msg"]
        assert (await InboxEvent.get(id=event.id)).status is InboxStatus.DONE
    finally:
        for proc in (web, *procs.values()):
            await stop(proc)
        await sim.stop()


# ---------------------------------------------------------------------------------------------
# The database stopped and started under `serve --no-workers` + `work`

CROWD = [f"worker{n:02d}" for n in range(6)]
MESSAGES = 10


@pytest.fixture
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    if BACKEND != "postgres":
        pytest.skip("restarts a PostgreSQL server")
    found = binaries()
    if found is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    server = PrivatePostgres(found)
    try:
        await server.create()
        yield server
    finally:
        await server.destroy()


async def crowd_on(server: PrivatePostgres) -> tuple[str, WeComSimulator]:
    url = await server.database("safetybot")
    await migrate(url)
    ctx = await open_database(url)
    with ctx:
        for user in CROWD:
            await User.create(id=user, name=user, roles=["worker"])
        await ctx.close_connections()
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY, users=CROWD,
                         per_member_per_minute=10_000)
    await sim.start()
    return url, sim


async def readiness(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"{url}/readyz") as resp:
                return resp.status, await resp.text()
        except aiohttp.ClientError as exc:
            return 0, repr(exc)


async def until_ready(url: str, status: int, timeout: float = 30) -> str:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while True:
            got, body = await readiness(url)
            if got == status:
                return body
            await asyncio.sleep(0.2)


async def says_until_taken(sim: WeComSimulator, user: str, text: str) -> None:
    """As WeCom does with a callback that failed: send it again until it is taken (WeCom
    stops after three retries; the test is more patient than WeCom, since what it checks is
    that nothing acknowledged is lost)."""
    async with asyncio.timeout(60):
        while (await sim.user(user).says(text)).status != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.5)


def all_answered(sim: WeComSimulator) -> bool:
    return all(len(sim.messages_for(u)) + len([s for s in sim.suppressed if s.user == u])
               >= MESSAGES for u in CROWD)


async def check_each_handled_once(url: str, sim: WeComSimulator) -> None:
    ctx = await open_database(url)
    with ctx:
        for user in CROWD:
            rows = await InboxEvent.filter(user_id=user).order_by("id")
            assert [r.status for r in rows] == [InboxStatus.DONE] * MESSAGES, user
            done = [r.processed_at for r in rows]
            assert done == sorted(done), f"{user}'s events were handled out of order"
            delivered = len(sim.messages_for(user))
            assert delivered <= MESSAGES, f"{user} got a reply twice"
        await ctx.close_connections()


async def test_work_resumes_by_itself_after_a_database_restart_while_idle(
        private_pg: PrivatePostgres, tmp_path: Path) -> None:
    url, sim = await crowd_on(private_pg)
    web, web_url = await spawn(["serve", "--no-workers"], url, sim.base_url, tmp_path)
    work, work_url = await spawn(["work"], url, sim.base_url, tmp_path,
                                 log=tmp_path / "work.log")
    sim.callback_url = f"{web_url}/wecom/callback"
    try:
        await private_pg.stop()
        body = await until_ready(work_url, 503)
        assert "database unreachable" in body
        await asyncio.sleep(3)                     # several failed claims, each backing off
        assert work.poll() is None
        await private_pg.start()
        await until_ready(work_url, 200)
        for user in CROWD:
            for n in range(MESSAGES):
                await says_until_taken(sim, user, f"第{n}条")
        await sim.until(lambda: all_answered(sim), timeout=30)
        async with aiohttp.ClientSession() as http, http.get(f"{work_url}/metrics") as resp:
            scraped = await resp.text()
        assert 'safetybot_loop_restarts_total{loop="inbox-worker"} 1.0' in scraped
        assert work.poll() is None
    finally:
        for proc in (web, work):
            await stop(proc)
        await sim.stop()
    await check_each_handled_once(url, sim)
    log = (tmp_path / "work.log").read_text(encoding="utf-8")
    # Said once when it began, once when it ended: not a line a try.
    assert log.count("inbox-worker failed, retrying until it works") == 1
    assert log.count("inbox-worker resumed after") == 1


async def test_nothing_acknowledged_is_lost_or_doubled_when_the_database_stops_under_load(
        private_pg: PrivatePostgres, tmp_path: Path) -> None:
    url, sim = await crowd_on(private_pg)
    web, web_url = await spawn(["serve", "--no-workers"], url, sim.base_url, tmp_path)
    work, work_url = await spawn(["work"], url, sim.base_url, tmp_path)
    sim.callback_url = f"{web_url}/wecom/callback"
    try:
        async def person(user: str) -> None:
            for n in range(MESSAGES):
                await says_until_taken(sim, user, f"第{n}条")
                await asyncio.sleep(0.3)           # a person's pace, not a burst

        async def outage() -> None:
            await asyncio.sleep(1.0)               # mid-conversation for everyone
            await private_pg.stop()
            assert "database unreachable" in await until_ready(work_url, 503)
            await asyncio.sleep(5)                 # down for a while, as people keep writing
            await private_pg.start()

        await asyncio.gather(outage(), *(person(u) for u in CROWD))
        await sim.until(lambda: all_answered(sim), timeout=60)
        await until_ready(work_url, 200)
        assert work.poll() is None and web.poll() is None
    finally:
        for proc in (web, work):
            await stop(proc)
        await sim.stop()
    await check_each_handled_once(url, sim)


# ---------------------------------------------------------------------------------------------
# Parked events put back from the command line


async def test_inbox_retry_reruns_a_parked_event_once(
        db: TortoiseContext, people: None, wecom: WeComSimulator, database_url: str,
        media_dir: Path) -> None:
    await inbox_put(Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                            dedup_key="parked-1", text="帮助"), datetime.now(UTC))
    await InboxEvent.filter(dedup_key="parked-1").update(
        status=InboxStatus.PARKED, attempts=5, last_error="RuntimeError('a bug, since mended')")
    event = await InboxEvent.get(dedup_key="parked-1")

    env = {"SAFETYBOT_DATABASE_URL": database_url}
    listed = await asyncio.to_thread(cli, "inbox", "parked", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"{event.id}\t" in listed.stdout and "wecom:zhangsan" in listed.stdout
    assert "a bug, since mended" in listed.stdout

    put_back = await asyncio.to_thread(cli, "inbox", "retry", str(event.id), env=env)
    assert put_back.returncode == 0 and "1 put back" in put_back.stdout
    again = await asyncio.to_thread(cli, "inbox", "retry", str(event.id), env=env)
    assert again.returncode == 1 and f"not parked: {event.id}" in again.stderr

    svc = Service(service_settings(database_url, wecom.base_url, media_dir))
    await svc.start()
    try:
        await wecom.wait_for("zhangsan")
        await settled()                            # a second run, were there one, is done too
    finally:
        await svc.stop()
    assert len(wecom.messages_for("zhangsan")) == 1
    handled = await InboxEvent.get(id=event.id)
    assert handled.status is InboxStatus.DONE and handled.attempts == 0
