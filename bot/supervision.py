"""Keeping the background loops alive through failures of their environment.

A database restart, a full disk or an unreachable platform passes; a bug does not. So every
background loop (inbox worker, outbox dispatcher, wake-up listener, scheduler) tells its
`LoopHealth` how each round went: an environmental failure is logged once with its cause and
the loop backs off (capped, jittered) and tries again; anything else ends the loop, and the
`Supervisor` then stops the process with a non-zero exit so that systemd or the orchestrator
starts a fresh one. Never a half-alive process: `/readyz` reports a loop that is failing or
gone (bot/ops.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
from tortoise.exceptions import DBConnectionError

from bot import metrics
from bot.channels import PlatformUnavailable
from bot.media import MediaUnavailable

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5      # seconds before the first retry of a failing loop
BACKOFF_MAX = 15.0       # a loop retries at least this often, so it resumes soon after

# PostgreSQL error classes that are the environment's: connection (08), a read-only replica
# after a failover (25006), serialization and deadlock (40), insufficient resources such as a
# full disk (53), operator intervention such as a shutdown or start-up (57), system I/O (58).
_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
_SQLSTATES = ("25006",)
# SQLite says the same things in words.
_SQLITE_WORDS = ("database is locked", "disk i/o error", "database or disk is full",
                 "unable to open database file", "readonly database")


def environmental(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a failure of what the service runs on: the
    database, the disk, the network or a platform's API. Retrying mends those; it does not
    mend a bug or an impossible event, which get False."""
    for cause in _chain(exc):
        if isinstance(cause, FileNotFoundError):
            continue       # a missing file stays missing: not something that passes
        if isinstance(cause, OSError | TimeoutError | aiohttp.ClientError | DBConnectionError
                      | asyncpg.PostgresConnectionError | asyncpg.InterfaceError
                      | asyncpg.exceptions.InternalClientError | PlatformUnavailable
                      | MediaUnavailable):
            return True
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str) and (state[:2] in _SQLSTATE_CLASSES or state in _SQLSTATES):
            return True
        if isinstance(cause, sqlite3.OperationalError) and any(
                words in str(cause).lower() for words in _SQLITE_WORDS):
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes: tortoise wraps the driver's errors (`raise … from exc`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # `raise … from None` says the context is not the story: it is not followed.
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)


def cause(exc: BaseException) -> str:
    """The innermost error, in a line: what an operator needs to see."""
    *_, inner = _chain(exc)
    return f"{type(inner).__name__}: {inner}".strip().rstrip(":")


@dataclass
class LoopHealth:
    """How one loop is doing: running, failing since when, when it last did its work."""

    name: str
    running: bool = False
    failures: int = 0                   # in the current run of failures
    failing_since: float | None = None  # monotonic
    last_error: str = ""
    last_success: float | None = None   # monotonic

    def succeeded(self) -> None:
        """A round did its work (a claim, a tick, a connection held)."""
        now = time.monotonic()
        if self.failing_since is not None:
            log.warning("%s resumed after %.0f s (%d failed tries)", self.name,
                        now - self.failing_since, self.failures)
            metrics.LOOP_RESTARTS.labels(self.name).inc()
        self.failures = 0
        self.failing_since = None
        self.last_error = ""
        self.last_success = now

    def failed(self, exc: BaseException) -> float:
        """Record an environmental failure; the seconds to wait before trying again. Logged
        once when a run of failures starts, and when the cause changes."""
        reason = cause(exc)
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("%s failed, retrying until it works: %s", self.name, reason)
        elif reason != self.last_error:
            log.warning("%s still failing: %s", self.name, reason)
        self.failures += 1
        self.last_error = reason
        metrics.LOOP_ERRORS.labels(self.name).inc()
        return backoff(self.failures)

    def problem(self) -> str:
        """What /readyz says of this loop, or "" when it is well."""
        if not self.running:
            return f"{self.name} is not running"
        if self.failing_since is not None:
            return (f"{self.name} failing for {time.monotonic() - self.failing_since:.0f} s: "
                    f"{self.last_error}")
        return ""

    def idle_seconds(self) -> float:
        """Seconds since the last round that did its work (-1: none yet)."""
        return -1.0 if self.last_success is None else time.monotonic() - self.last_success


def backoff(failures: int, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> float:
    """Doubling from `first`, at most `cap`, jittered."""
    return jittered(min(cap, first * 2 ** max(failures - 1, 0)))


def jittered(ceiling: float) -> float:
    """A wait drawn from the upper half of `ceiling`, so that instances (or events) that
    failed together do not retry together."""
    return random.uniform(ceiling / 2, ceiling)


class Supervisor:
    """The process's loops: started here, watched here, and the process stopped (non-zero)
    when one ends that should not have."""

    def __init__(self, on_fatal: Callable[[str], None] | None = None) -> None:
        self.loops: dict[str, LoopHealth] = {}
        self.fatal = ""                  # why the process must stop, once a loop has died
        self._on_fatal = on_fatal
        self._stopping = False

    def register(self, health: LoopHealth) -> None:
        """A loop of this process, for /readyz and /metrics; running from now on."""
        self.loops[health.name] = health
        health.running = True

    def start(self, health: LoopHealth, loop: asyncio.Future[None]) -> None:
        """Watch a loop running as a task: it must run until `stopping()`."""
        self.register(health)

        def ended(task: asyncio.Future[None]) -> None:
            health.running = False
            if self._stopping:
                return
            error = None if task.cancelled() else task.exception()
            if error is not None:
                log.critical("%s stopped: %s; stopping the process", health.name, cause(error),
                             exc_info=error)
            else:
                log.critical("%s ended unexpectedly; stopping the process", health.name)
            self.die(f"{health.name} stopped" + (f": {cause(error)}" if error else ""))

        loop.add_done_callback(ended)

    def die(self, reason: str) -> None:
        if self.fatal:
            return
        self.fatal = reason
        if self._on_fatal is not None:
            self._on_fatal(reason)

    def stopping(self) -> None:
        """Shutdown has begun: loops ending now end as they should."""
        self._stopping = True

    def problems(self) -> list[str]:
        found = [p for p in (h.problem() for h in self.loops.values()) if p]
        return [f"stopping: {self.fatal}", *found] if self.fatal else found
