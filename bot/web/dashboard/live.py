"""Live updates by server-sent events: one loop a process watches the database's change mark
(`models.dashboard.overview.change_mark`) while anyone is watching, and every open page is told
when it moves; the page then fetches its figures again (`/dashboard/api/overview`, cached a
moment per kind of viewer, so two hundred screens cost one query each change)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from models.dashboard.overview import change_mark

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


class Live:
    def __init__(self, poll: float = POLL_SECONDS) -> None:
        self.poll = poll
        self.version = 0
        self._changed = asyncio.Condition()
        self._watchers = 0
        self._loop: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        mark: tuple[int, int] | None = None
        while self._watchers:
            now: tuple[int, int] | None
            try:
                now = await change_mark()
            except Exception:       # the database away: the pages keep what they show
                log.warning("live updates: could not read the change mark", exc_info=True)
                now = mark
            if mark is not None and now != mark:
                async with self._changed:
                    self.version += 1
                    self._changed.notify_all()
            mark = now
            await asyncio.sleep(self.poll)

    async def _moved_from(self, seen: int) -> None:
        """Until the version moves from `seen`, or a heartbeat is due."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version != seen),
                                       HEARTBEAT_SECONDS)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        self._watchers += 1
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._watch(), name="dashboard-live")
        seen = self.version
        try:
            await response.write(b"retry: 3000\n\n")
            while True:
                await self._moved_from(seen)
                if self.version != seen:
                    seen = self.version
                    await response.write(f"event: change\ndata: {seen}\n\n".encode())
                else:
                    await response.write(b": still here\n\n")
        except ConnectionResetError:      # the page went away
            pass
        finally:
            self._watchers -= 1
        return response
