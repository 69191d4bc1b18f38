"""Cross-process wake-ups on PostgreSQL. A process that only answers callbacks
(`serve --no-workers`) announces stored events with NOTIFY, and the inbox workers of every
process LISTEN and start at once instead of at their next poll. Polling stays as the fallback,
so a lost notification or a dropped connection only costs the poll interval.

Announcements are coalesced (one per ANNOUNCE_SECONDS per process) and sent off the callback's
path: PostgreSQL serialises the commits of transactions that NOTIFY, so one per insert would
cap the callbacks a second. The listener is one of the supervised loops (bot/supervision.py):
it reconnects with backoff while the database is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from tortoise import connections

from bot.db import connect_params
from bot.supervision import LoopHealth, environmental
from models import DATABASE

log = logging.getLogger(__name__)

CHANNEL = "safetybot_inbox"
ANNOUNCE_SECONDS = 0.02
CONNECT_SECONDS = 10.0


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


async def listen(database_url: str, wake: Callable[[], None], health: LoopHealth) -> None:
    """Hold one connection that listens for announcements; reconnect when it drops."""
    where = connect_params(database_url)
    while True:
        try:
            connection = await asyncpg.connect(**where, timeout=CONNECT_SECONDS)
            try:
                await connection.add_listener(CHANNEL, lambda *_: wake())
                health.succeeded()
                wake()   # events stored while it was away are looked at now
                await _until_lost(connection)
            finally:
                await connection.close(timeout=CONNECT_SECONDS)
        except Exception as exc:
            if not environmental(exc):
                raise
            await asyncio.sleep(health.failed(exc))   # the workers poll meanwhile


async def _until_lost(connection: asyncpg.Connection) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    await lost.wait()
    raise ConnectionError("the wake-up listener's connection was closed")
