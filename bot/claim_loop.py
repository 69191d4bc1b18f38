"""The loop the inbox worker and the outbox dispatcher share: claim due rows, work on each in a
task of its own up to a limit, and sleep until woken or until the next poll.

While there is a backlog (the last claim got all it asked for), it claims again only once
`batch` slots are free, so short work (an inbox event of a few milliseconds) is not outweighed
by a claim per row; work that mostly waits on the network (an outbox send) claims as soon as a
slot is free, since a slot left idle costs more than a claim. When the queue is short it claims
at once, so a lone event is not kept waiting.

A claimed row is leased for a short time, renewed by a heartbeat while its work runs, so the
rows of a process that died go to another within seconds while a slow handler keeps its own.
A claim that fails on the environment (the database restarting) is retried with backoff until
it works (bot/supervision.py); any other failure ends the loop."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Generic, TypeVar

from bot.clock import Clock
from bot.supervision import LoopHealth, environmental
from models.inbox import InboxEvent
from models.outbox import OutboxMessage
from models.sql import renew_leases

log = logging.getLogger(__name__)
Claimed = TypeVar("Claimed")
QueueRow = InboxEvent | OutboxMessage
HEARTBEATS_PER_LEASE = 3   # a lease is renewed this often within its length


class ClaimLoop(ABC, Generic[Claimed]):
    def __init__(self, name: str, queue: type[QueueRow], *, concurrency: int,
                 poll_seconds: float, batch: int, lease: timedelta,
                 clock: Clock, instance: str) -> None:
        self.health = LoopHealth(name)
        self._queue = queue
        self._instance = instance
        self._concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._batch = max(1, min(batch, concurrency))
        self._lease = lease
        self._clock = clock
        self._backlog = False
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running: dict[asyncio.Task[None], int] = {}   # work in flight -> its row's id

    @abstractmethod
    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to `limit` rows that are due now, until now + the lease."""

    @abstractmethod
    async def work(self, item: Claimed) -> None:
        """Finish one claimed row; must not raise (it logs and records its own failures)."""

    @abstractmethod
    def row(self, item: Claimed) -> QueueRow:
        """The queue row that was claimed."""

    def wake(self) -> None:
        """New work is there: look now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Claim and work until `stop()`, then let the work in flight finish. A cancellation
        cancels the work in flight with it (a query cut off mid-way holds its connection until
        the server confirms, so shutdown stops first and cancels only what outstays it)."""
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"{self.health.name}-heartbeat")
        try:
            while not self._stopped.is_set():
                self._wakeup.clear()
                try:
                    started = await self._claim_and_start()
                except Exception as exc:
                    if not environmental(exc):
                        raise
                    await self._pause(self.health.failed(exc))
                    continue
                self.health.succeeded()
                if not started:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for's inner task can
                    # swallow a cancellation that lands as the event is set, and shutdown hangs.
                    try:
                        async with asyncio.timeout(self._poll_seconds):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
            await asyncio.gather(*list(self._running))
        finally:
            heartbeat.cancel()
            for task in [heartbeat, *self._running]:
                task.cancel()
            await asyncio.gather(heartbeat, *self._running, return_exceptions=True)

    def stop(self) -> None:
        """Claim nothing more; `run()` returns once the work in flight is done."""
        self._stopped.set()
        self._wakeup.set()

    async def run_once(self) -> int:
        """Work on what is due now and wait for it to finish; for tests and one-shot callers."""
        started = await self._claim_and_start()
        await asyncio.gather(*list(self._running))
        return started

    async def _pause(self, seconds: float) -> None:
        """Back off, but not past a `stop()`."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopped.wait()
        except TimeoutError:
            pass

    async def _claim_and_start(self) -> int:
        free = self._concurrency - len(self._running)
        if free <= 0 or (self._backlog and free < self._batch):
            return 0
        claimed = await self.claim(free)
        self._backlog = len(claimed) == free
        busy = set(self._running.values())
        started = 0
        for item in claimed:
            row = self.row(item)
            if row.id in busy:
                continue   # still ours and in flight here (its lease had run out): leave it be
            if row.taken_from and row.taken_from != self._instance:
                log.warning("took over %s %d from %s, whose lease ran out",
                            self._queue._meta.db_table.replace("_", " "), row.id,
                            row.taken_from, extra={"row": row.id})
            task = asyncio.create_task(self.work(item))
            self._running[task] = row.id
            task.add_done_callback(self._finished)
            started += 1
        return started

    async def _heartbeat(self) -> None:
        """Renew the leases of the work in flight, a few times a lease. A renewal that fails
        leaves the leases to expire, and the rows go to whoever claims them next."""
        every = self._lease.total_seconds() / HEARTBEATS_PER_LEASE
        while True:
            await asyncio.sleep(every)
            held = list(self._running.values())
            if not held:
                continue
            try:
                await renew_leases(self._queue, held, self._instance,
                                   self._clock() + self._lease)
            except Exception as exc:
                if not environmental(exc):
                    log.exception("%s could not renew its leases", self.health.name)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wakeup.set()   # a finished row may unblock the next (a person's next event)
        if not task.cancelled() and task.exception() is not None:
            # Its lease expires and the row is claimed again; say why it went wrong.
            log.error("%s failed outside its own error handling", self.health.name,
                      exc_info=task.exception())
