"""The world the tests run in: a real database, migrated once per run and emptied before each
test. `SAFETYBOT_TEST_BACKEND=postgres` runs on a fresh database created on the server named by
SAFETYBOT_TEST_DATABASE_URL; otherwise a fresh SQLite file. `make test` runs the suite once on each
(one process per backend: tortoise caches compiled queries per model, per process)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from tortoise.context import TortoiseContext

from bot.db import migrate, open_database

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
