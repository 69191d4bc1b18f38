"""The loop the inbox worker and the outbox dispatcher share: claim due rows, work on each in a
task of its own up to a limit, and sleep until woken or until the next poll.

While there is a backlog (the last claim got all it asked for), it claims again only once
`batch` slots are free, so short work (an inbox event of a few milliseconds) is not outweighed
by a claim per row; work that mostly waits on the network (an outbox send) claims as soon as a
slot is free, since a slot left idle costs more than a claim. When the queue is short it claims
at once, so a lone event is not kept waiting."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Claimed = TypeVar("Claimed")


class ClaimLoop(ABC, Generic[Claimed]):
    def __init__(self, concurrency: int, poll_seconds: float, batch: int) -> None:
        self._concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._batch = max(1, min(batch, concurrency))
        self._backlog = False
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False

    @abstractmethod
    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to `limit` rows that are due now."""

    @abstractmethod
    async def work(self, item: Claimed) -> None:
        """Finish one claimed row; must not raise (it logs and records its own failures)."""

    def wake(self) -> None:
        """New work is there: look now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Claim and work until `stop()`, then let the work in flight finish. A cancellation
        cancels the work in flight with it (a query cut off mid-way holds its connection until
        the server confirms, so shutdown stops first and cancels only what outstays it)."""
        try:
            while not self._stopping:
                self._wakeup.clear()
                if not await self._claim_and_start():
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for's inner task can
                    # swallow a cancellation that lands as the event is set, and shutdown hangs.
                    try:
                        async with asyncio.timeout(self._poll_seconds):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
            await asyncio.gather(*list(self._running))
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def stop(self) -> None:
        """Claim nothing more; `run()` returns once the work in flight is done."""
        self._stopping = True
        self._wakeup.set()

    async def run_once(self) -> int:
        """Work on what is due now and wait for it to finish; for tests and one-shot callers."""
        started = await self._claim_and_start()
        await asyncio.gather(*list(self._running))
        return started

    async def _claim_and_start(self) -> int:
        free = self._concurrency - len(self._running)
        if free <= 0 or (self._backlog and free < self._batch):
            return 0
        claimed = await self.claim(free)
        self._backlog = len(claimed) == free
        for item in claimed:
            task = asyncio.create_task(self.work(item))
            self._running.add(task)
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wakeup.set()   # a finished row may unblock the next (a person's next event)
        if not task.cancelled() and task.exception() is not None:
            # Its lease expires and the row is claimed again; say why it went wrong.
            log.error("%s failed outside its own error handling", type(self).__name__,
                      exc_info=task.exception())
