"""Cross-process wake-ups on PostgreSQL. A process that only answers callbacks
(`serve --no-workers`) announces stored events with NOTIFY, and the inbox workers of every
process LISTEN and start at once instead of at their next poll. Polling stays as the fallback,
so a lost notification or a dropped connection only costs the poll interval.

Announcements are coalesced (one per ANNOUNCE_SECONDS per process) and sent off the callback's
path: PostgreSQL serialises the commits of transactions that NOTIFY, so one per insert would
cap the callbacks a second."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from tortoise import connections

from bot.db import connect_params
from models import DATABASE

log = logging.getLogger(__name__)

CHANNEL = "safetybot_inbox"
ANNOUNCE_SECONDS = 0.02
RETRY_SECONDS = 5.0


class Announcer:
    """Coalesces "new events are in the inbox" into at most one NOTIFY per interval."""

    def __init__(self) -> None:
        self._pending: asyncio.Task[None] | None = None

    def poke(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._announce())

    async def _announce(self) -> None:
        await asyncio.sleep(ANNOUNCE_SECONDS)
        try:
            await connections.get(DATABASE).execute_query(f"SELECT pg_notify('{CHANNEL}', '')")
        except Exception as exc:   # the workers' poll picks the events up anyway
            log.warning("could not announce new inbox events: %r", exc)


async def listen(database_url: str, wake: Callable[[], None]) -> None:
    """Hold one connection that listens for announcements; reconnect when it drops."""
    where = connect_params(database_url)
    while True:
        try:
            connection = await asyncpg.connect(**where)
            try:
                await _until_lost(connection, wake)
            finally:
                await connection.close()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("wake-up listener failed; polling meanwhile: %r", exc)
        await asyncio.sleep(RETRY_SECONDS)


async def _until_lost(connection: asyncpg.Connection, wake: Callable[[], None]) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    await connection.add_listener(CHANNEL, lambda *_: wake())
    await lost.wait()
    log.warning("wake-up listener lost its connection; reconnecting")
