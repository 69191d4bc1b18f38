"""The inbox worker: one user's events in arrival order, many users in parallel.

Each event is leased (so a second instance leaves it alone), its photo is fetched outside any
transaction, then the handler runs in one transaction together with marking the event done: its
outbox rows and the "done" mark commit together or not at all. A failing handler is retried with
backoff and, after a bounded number of tries, parked, so the user's later events go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from bot import metrics
from bot.channels import Channel, MediaGone
from bot.claim_loop import ClaimLoop
from bot.media import MediaStore
from bot.settings import Settings
from handlers import handle
from handlers.router import Context, Router, Rules
from models import transaction
from models.messaging import (
    Inbound,
    InboxEvent,
    InboxStatus,
    LeaseLost,
    inbox_claim,
    inbox_complete,
    inbox_fail,
    inbox_put,
    inbox_update_payload,
)

log = logging.getLogger(__name__)


class InboxWorker(ClaimLoop[InboxEvent]):
    def __init__(
        self, settings: Settings, *, channels: Mapping[str, Channel], media: MediaStore,
        router: Router, rules: Rules, clock: Callable[[], datetime], instance: str,
        on_handled: Callable[[], None],
    ) -> None:
        super().__init__(settings.inbox_concurrency, settings.poll_seconds,
                         batch=settings.inbox_concurrency // 2)
        self._s = settings
        self._channels = channels
        self._media = media
        self._router = router
        self._rules = rules
        self._clock = clock
        self._instance = instance
        self._on_handled = on_handled

    async def put(self, event: Inbound) -> bool:
        """Store an arriving event; False for a duplicate. Wakes the worker at once."""
        stored = await inbox_put(event, self._clock())
        if stored:
            self.wake()
        return stored

    async def claim(self, limit: int) -> list[InboxEvent]:
        lease = timedelta(seconds=self._s.lease_seconds)
        return await inbox_claim(self._instance, self._clock(), lease, limit)

    async def work(self, row: InboxEvent) -> None:
        ids = {"inbox_id": row.id, "user": row.user_id, "platform": row.platform}
        try:
            event = await self._with_media(row)
            now = self._clock()
            async with transaction():
                ctx = await Context.load(event, now, row.id, self._rules)
                await handle(self._router, ctx)
                await ctx.flush()
                await inbox_complete(row, now)
            metrics.INBOX_HANDLED.labels("done").inc()
            self._on_handled()   # its replies are in the outbox now
        except LeaseLost:
            log.warning("inbox lease lost; another worker has the event", extra=ids)
        except Exception as exc:
            backoff = min(self._s.inbox_retry_seconds * 2 ** row.attempts, 60.0)
            status = await inbox_fail(row, repr(exc), self._clock(), self._s.inbox_max_attempts,
                                      timedelta(seconds=backoff))
            if status is InboxStatus.PARKED:
                metrics.INBOX_HANDLED.labels("parked").inc()
                log.exception("inbox event parked after %d tries", row.attempts + 1, extra=ids)
            else:
                metrics.INBOX_HANDLED.labels("retry").inc()
                log.warning("inbox event failed, retrying in %.1fs: %r", backoff, exc, extra=ids)

    async def _with_media(self, row: InboxEvent) -> Inbound:
        """Copy the photo into our store now: the platform's media id expires."""
        event = row.event
        if not event.media_id or event.media or event.media_lost:
            return event
        channel = self._channels.get(event.platform)
        if channel is None:
            return event
        try:
            data = await channel.fetch_media(event.media_id)
        except MediaGone as exc:
            log.warning("media could not be fetched: %s", exc, extra={"inbox_id": row.id})
            event = replace(event, media_lost=True)
        else:
            event = replace(event, media=await self._media.put(data))
        await inbox_update_payload(row, event)
        return event
