"""Cross-process wake-ups on PostgreSQL: a row stored by one process (a callback in
`serve --no-workers`, a reply queued by a handler) is announced with NOTIFY, and the inbox
worker and outbox dispatcher of every other process LISTEN and start at once. Polling stays as
the fallback, so a lost notification or a dropped connection only costs the poll interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


async def listen(database_url: str, wakers: Mapping[str, Callable[[], None]]) -> None:
    """Hold one connection that listens on each channel; reconnect when it drops."""
    dsn = _dsn(database_url)
    while True:
        try:
            connection = await asyncpg.connect(dsn)
            try:
                await _until_lost(connection, wakers)
            finally:
                await connection.close()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("wake-up listener failed; polling meanwhile: %r", exc)
        await asyncio.sleep(RETRY_SECONDS)


async def _until_lost(connection: asyncpg.Connection,
                      wakers: Mapping[str, Callable[[], None]]) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    for channel, wake in wakers.items():
        await connection.add_listener(channel, _waker(wake))
    await lost.wait()
    log.warning("wake-up listener lost its connection; reconnecting")


def _waker(wake: Callable[[], None]) -> Callable[..., None]:
    def on_notify(*_: object) -> None:
        wake()

    return on_notify


def _dsn(database_url: str) -> str:
    """asyncpg takes the URL without tortoise's pool options (`?maxsize=…`)."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
