"""The database: tortoise configuration, start and stop, migrations and readiness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.migrations.executor import MigrationExecutor
from yarl import URL

from models import DATABASE, MODEL_MODULES, SIDE

APP = "models"
# The platforms' shared rows (tokens, leases, DingTalk's groups) live with the channels, in the
# same app (one migration history).
APP_CONFIG: dict[str, Any] = {"models": [*MODEL_MODULES, "bot.channels.token",
                                         "bot.channels.dingtalk_groups",
                                         "bot.channels.media_ids"],
                              "default_connection": DATABASE, "migrations": "models.migrations"}
ORM = web.AppKey("orm", TortoiseContext)  # the running service's database, in its aiohttp app
# tortoise's default of 5 makes callbacks queue for a connection under load (benchmarks/README.md).
POSTGRES_POOL_SIZE = 10
SIDE_POOL_SIZE = 3  # the inbox claim, the outbox claim and a ticket-number draw at once
# How long a SQLite writer waits for another connection's write (an operator's load-org beside the
# running service) before it fails; `?busy_timeout=` in the URL wins.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The side connection's sessions (`models.SIDE`): the queue claims walk their indexes, whatever
# the planner's statistics of a fast-changing queue table say.
INDEXES_ONLY = {"enable_seqscan": "off", "enable_sort": "off"}


def tortoise_config(url: str) -> dict[str, Any]:
    if url.startswith(("postgres://", "asyncpg://")):
        connections = {DATABASE: _postgres(url),
                       SIDE: _postgres(url, SIDE_POOL_SIZE, INDEXES_ONLY)}
    else:
        connections = {DATABASE: _sqlite(url)}
    return {
        "connections": connections,
        "apps": {APP: APP_CONFIG},
        "use_tz": True,
        "timezone": "UTC",
    }


def _sqlite(url: str) -> dict[str, Any]:
    """tortoise's SQLite client with transactions that take the write lock at BEGIN
    (bot/sqlite.py) and wait for another connection's write."""
    config = expand_db_url(url)
    config["engine"] = "bot.sqlite"
    config["credentials"].setdefault("busy_timeout", SQLITE_BUSY_TIMEOUT_MS)
    return config


def _postgres(url: str, pool: int | None = None,
              settings: dict[str, str] | None = None) -> dict[str, Any]:
    """The service's pool is wider than tortoise's default (`?maxsize=N` still wins), the side
    pool is always `pool` with its own session `settings`; both keep their session on release
    (`_keep_session`)."""
    config = expand_db_url(url)
    credentials = config["credentials"]
    if pool is None:
        credentials.setdefault("maxsize", POSTGRES_POOL_SIZE)
    else:
        credentials.update(minsize=1, maxsize=pool, server_settings=settings or {})
    credentials["reset"] = _keep_session
    return config


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset of a released connection (`UNLISTEN *; RESET ALL; …`, one more
    round trip after every query): we use no LISTEN, session settings, advisory locks or
    cursors. asyncpg still rolls back a transaction left open before calling this."""


def connect_params(url: str) -> dict[str, Any]:
    """`asyncpg.connect` arguments for a PostgreSQL URL, read as tortoise reads it: a unix-socket
    URL (`?host=/var/run/postgresql`) connects where the pool does, and tortoise's pool options
    (`?maxsize=…`), which asyncpg would take for server settings, are left out."""
    credentials = expand_db_url(url)["credentials"]
    return {key: credentials.get(key) for key in ("host", "port", "user", "password", "database")}


def with_database(url: str, name: str) -> str:
    """The same server, login and options (`?host=` for a unix socket), another database: the
    fresh databases of the tests and the benchmarks."""
    parsed = URL(url)
    return str(parsed.with_path(f"/{name}").with_query(parsed.query))


# For `tortoise makemigrations` (see [tool.tortoise] in pyproject.toml); the service never uses it.
TORTOISE_ORM = tortoise_config("sqlite://data/safetybot.sqlite3")


def _prepare(url: str) -> None:
    """SQLite needs its folder to exist before the first connection."""
    if url.startswith("sqlite://") and ":memory:" not in url:
        Path(url.removeprefix("sqlite://").split("?", 1)[0]).parent.mkdir(
            parents=True, exist_ok=True
        )


async def open_database(url: str) -> TortoiseContext:
    """Start the ORM in a context of its own; the caller enters and closes it."""
    _prepare(url)
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=tortoise_config(url))
    return ctx


def activate(ctx: TortoiseContext) -> None:
    """Make `ctx` the ORM of the current task for the rest of its life.

    For tasks that aiohttp creates per connection: their context is their own and dies with them,
    so there is nothing to undo (and `with ctx:` cannot be used there: the context object keeps
    one reset token, which concurrent requests would overwrite)."""
    ctx.__enter__()


async def migrate(url: str) -> None:
    """Apply every migration that is not applied yet."""
    _prepare(url)
    async with TortoiseContext():
        await tortoise_migrate(config=tortoise_config(url))


async def ping(ctx: TortoiseContext) -> None:
    await ctx.db().execute_query("SELECT 1")


async def pending_migrations(ctx: TortoiseContext) -> list[str]:
    """Names of migrations on disk that the database has not applied."""
    executor = MigrationExecutor(ctx.db(), {APP: APP_CONFIG})
    plan = await executor.plan(None)
    return [f"{step.migration.app_label}.{step.migration.name}" for step in plan
            if not step.backward]
