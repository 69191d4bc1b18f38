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

from bot.db import connect_params, migrate, open_database, with_database
from models.org import User
from simulator.wecom import WeComSimulator
from tests.harness import (
    AES_KEY,
    AGENT_ID,
    BACKEND,
    CORP_ID,
    PEOPLE,
    SECRET,
    TOKEN,
    Service,
    service_settings,
)
from tests.s3 import S3Server, new_bucket, s3_server, store_settings

PG_URL = os.environ.get("SAFETYBOT_TEST_DATABASE_URL", "")
TABLES = ("dashboard_session", "dashboard_login_state", "dashboard_admin", "api_token",
          "inspection_answer", "inspection_visit", "inspection_patroller", "inspection_round",
          "inspection_plan", "inspection_route", "inspection_checkpoint", "inspection_checklist",
          "inspection_key", "certificate", "person_record", "person_profile", "contractor",
          "contractor_admission",
          "qualification_check", "training_record", "course", "training_enrolment",
          "training_assignment", "training_pack", "training_progress", "training_attempt",
          "training_answer", "training_practical",
          "emergency_resource_inspection", "emergency_resource",
          "group_chat", "emergency_responder", "emergency_activation", "emergency_plan", "alarm",
          "job_run", "webchat_line", "outbox_delivery", "outbox_message",
          "inbox_event", "platform_token", "platform_lease", "platform_media", "dingtalk_group",
          "audit_event",
          "dialog", "ticket_card",
          "ticket_number", "ticket_counter", "ticket", "area", "org_user", "department")

@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the CI server for this run, dropped afterwards."""
    name = f"safetybot_t_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(**connect_params(PG_URL))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = with_database(PG_URL, name)
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
        raise pytest.UsageError("SAFETYBOT_TEST_BACKEND=postgres needs "
                                "SAFETYBOT_TEST_DATABASE_URL")
    url: str = request.getfixturevalue("postgres_url" if BACKEND == "postgres" else "sqlite_url")
    return url


@pytest.fixture
async def fresh_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the test's own on the run's backend (not migrated), for tests that
    break or rebuild a schema; dropped afterwards."""
    if BACKEND != "postgres":
        yield f"sqlite://{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"safetybot_f_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(**connect_params(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(PG_URL, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


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


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3-compatible server (moto's) for the session; each test has a bucket of its own."""
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
async def bucket(s3: S3Server) -> dict[str, str]:
    """A fresh bucket: the settings overrides that make it the service's media store."""
    return store_settings(s3.endpoint, await new_bucket(s3.endpoint))


# ---------------------------------------------------------------------------------------------
# The platform simulator and the service, both on loopback


@pytest.fixture
async def wecom() -> AsyncIterator[WeComSimulator]:
    sim = WeComSimulator(CORP_ID, AGENT_ID, SECRET, TOKEN, AES_KEY,
                         users=[*PEOPLE, "stranger"])
    await sim.start()
    yield sim
    await sim.stop()


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
