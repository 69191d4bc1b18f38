"""The world the tests run in: a real database, migrated once per run and emptied before each
test. `SAFETYBOT_TEST_BACKEND=postgres` runs on a fresh database created on the server named by
SAFETYBOT_TEST_DATABASE_URL; otherwise a fresh SQLite file. `make test` runs the suite once on each
(one process per backend: tortoise caches compiled queries per model, per process)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from tortoise.context import TortoiseContext

from bot.app import create_app
from bot.db import migrate, open_database
from bot.settings import Settings, load_settings
from models.org import User
from simulator.wecom import WeComSimulator

PG_URL = os.environ.get("SAFETYBOT_TEST_DATABASE_URL", "")
BACKEND = os.environ.get("SAFETYBOT_TEST_BACKEND", "sqlite")
TABLES = ("outbox_delivery", "outbox_message", "inbox_event", "platform_token", "audit_event",
          "area", "org_user", "department")

def _server_and_name(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base, name.split("?", 1)[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the CI server for this run, dropped afterwards."""
    server, admin_db = _server_and_name(PG_URL)
    name = f"safetybot_t_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/{admin_db}".replace("postgres://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = f"{server}/{name}"
    asyncio.run(migrate(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite://{tmp_path_factory.mktemp('db') / 'safetybot.sqlite3'}"
    asyncio.run(migrate(url))
    return url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    if BACKEND == "postgres" and not PG_URL:
        raise pytest.UsageError("SAFETYBOT_TEST_BACKEND=postgres needs SAFETYBOT_TEST_DATABASE_URL")
    url: str = request.getfixturevalue("postgres_url" if BACKEND == "postgres" else "sqlite_url")
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[TortoiseContext]:
    """An empty, migrated database with the ORM active in this test's context."""
    ctx = await open_database(database_url)
    with ctx:
        await empty_tables(ctx, database_url)
        yield ctx
        await ctx.close_connections()


async def empty_tables(ctx: TortoiseContext, url: str) -> None:
    conn = ctx.db()
    if url.startswith("sqlite"):
        for table in TABLES:
            await conn.execute_script(f'DELETE FROM "{table}"')
    else:
        await conn.execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"
        )


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    return path


# ---------------------------------------------------------------------------------------------
# The platform simulator and the service, both on loopback


CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
SECRET = "test-secret-not-real"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
PEOPLE = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def wecom() -> AsyncIterator[WeComSimulator]:
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY,
                         users=[*PEOPLE, "stranger"])
    await sim.start()
    yield sim
    await sim.stop()


def service_settings(database_url: str, api_base: str, media_dir: Path, **overrides: Any
                     ) -> Settings:
    env = {
        "SAFETYBOT_DATABASE_URL": database_url, "SAFETYBOT_PORT": str(free_port()),
        "SAFETYBOT_MEDIA_DIR": str(media_dir), "SAFETYBOT_POLL_SECONDS": "0.05",
        "SAFETYBOT_INBOX_RETRY_SECONDS": "0.05",
        "SAFETYBOT_WECOM_CORP_ID": CORP_ID, "SAFETYBOT_WECOM_AGENT_ID": str(AGENT_ID),
        "SAFETYBOT_WECOM_SECRET": SECRET, "SAFETYBOT_WECOM_TOKEN": TOKEN,
        "SAFETYBOT_WECOM_AES_KEY": AES_KEY, "SAFETYBOT_WECOM_API_BASE": api_base,
        "SAFETYBOT_WECOM_API_TIMEOUT_SECONDS": "1",
    }
    env.update({f"SAFETYBOT_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env)


class Service:
    """The real app on a real port; `start()` again after `stop()` is a restart."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    async def start(self, workers: bool = True) -> None:
        kwargs = {"clock": self.clock} if self.clock else {}
        self.app = create_app(self.settings, workers=workers, **kwargs)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.settings.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def people(db: TortoiseContext) -> None:
    for user_id, name in PEOPLE.items():
        await User.create(id=user_id, name=name, roles=["worker"])


@pytest.fixture
async def service(db: TortoiseContext, people: None, wecom: WeComSimulator,
                  database_url: str, media_dir: Path) -> AsyncIterator[Service]:
    svc = Service(service_settings(database_url, wecom.base_url, media_dir))
    await svc.start()
    wecom.callback_url = f"{svc.url}/wecom/callback"
    yield svc
    await svc.stop()
