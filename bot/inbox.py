"""The inbox worker: one user's events in arrival order, many users in parallel.

Each event is leased (so a second instance leaves it alone), its photo is fetched outside any
transaction, then the handler runs in one transaction together with marking the event done: its
outbox rows and the "done" mark commit together or not at all.

Two kinds of failure are told apart (bot/supervision.py). A bad event (a handler's bug, an
impossible state) is retried a few times with backoff, then parked, so the user's later events
go on. A failure of the environment (database, disk, media store, platform) is not the event's
fault: it is retried for a long time (`environment_retry_minutes`), the person's later events
wait behind it in order, and a person kept waiting over a minute is told once that their
message is safe. `safetybot inbox retry` puts parked events back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta

from bot import metrics
from bot.channels import Channel, MediaGone
from bot.claim_loop import ClaimLoop
from bot.clock import Clock
from bot.media import MediaStore
from bot.settings import Settings
from bot.supervision import cause, environmental, jittered
from handlers.router import Context, Router, Rules
from models import transaction
from models.inbound import Inbound, InboundKind
from models.inbox import (
    InboxEvent,
    InboxStatus,
    LeaseLost,
    inbox_claim,
    inbox_complete,
    inbox_fail,
    inbox_put,
    inbox_update_payload,
    inbox_wait,
)
from models.outbox import enqueue
from models.outgoing import Text

log = logging.getLogger(__name__)

# A person whose message has waited this long on a failing environment is told it is safe.
TELL_AFTER = timedelta(minutes=1)
WAITING = "您的消息已收到。系统暂时遇到故障，恢复后会自动处理，无需重复发送。"
ENVIRONMENT_BACKOFF_MAX = 60.0   # seconds between tries of an event waiting on its environment
# What a person did themselves (not an expiry or a handler's follow-up): worth telling them.
PERSONAL = frozenset(InboundKind) - {InboundKind.EXPIRED, InboundKind.FOLLOW_UP}


class InboxWorker(ClaimLoop[InboxEvent]):
    def __init__(
        self, settings: Settings, *, channels: Mapping[str, Channel], media: MediaStore,
        router: Router, rules: Rules, clock: Clock, instance: str,
        on_handled: Callable[[], None],
    ) -> None:
        super().__init__("inbox-worker", InboxEvent, concurrency=settings.inbox_concurrency,
                         poll_seconds=settings.poll_seconds,
                         batch=settings.inbox_concurrency // 2,
                         lease=timedelta(seconds=settings.lease_seconds), clock=clock,
                         instance=instance)
        self._s = settings
        self._channels = channels
        self._media = media
        self._router = router
        self._rules = rules
        self._on_handled = on_handled

    async def put(self, event: Inbound) -> bool:
        """Store an arriving event; False for a duplicate. Wakes the worker at once."""
        stored = await inbox_put(event, self._clock())
        if stored:
            self.wake()
        return stored

    async def claim(self, limit: int) -> list[InboxEvent]:
        return await inbox_claim(self._instance, self._clock(), self._lease, limit)

    def row(self, item: InboxEvent) -> InboxEvent:
        return item

    async def work(self, row: InboxEvent) -> None:
        ids = {"inbox_id": row.id, "user": row.user_id, "platform": row.platform}
        try:
            event = await self._with_media(row)
            now = self._clock()
            async with transaction():
                ctx = await Context.load(event, now, row.id, self._rules)
                if not await self._router.dispatch(ctx):
                    log.error("no handler for a queued step; it is dropped"
                              if event.kind is InboundKind.FOLLOW_UP
                              else "no handler for the event; it is dropped",
                              extra={"event_key": event.event_key, "inbox_id": row.id})
                await ctx.flush()
                await inbox_complete(row, now)
            metrics.INBOX_HANDLED.labels("done").inc()
            self._on_handled()   # its replies are in the outbox now
        except LeaseLost:
            log.warning("inbox lease lost; another worker has the event", extra=ids)
        except Exception as exc:
            try:
                if environmental(exc):
                    await self._wait_for_environment(row, exc, ids)
                else:
                    await self._failed(row, exc, ids)
            except Exception as again:
                if not environmental(again):
                    raise
                # The database is gone as well: the lease runs out and the event is tried
                # again; the claim loop says once that the database is down.
                log.debug("could not record the failure of inbox event %d: %r", row.id, again)

    async def _failed(self, row: InboxEvent, exc: Exception, ids: dict[str, object]) -> None:
        """A bad event: a few tries with doubling waits, then parked."""
        backoff = min(self._s.inbox_retry_seconds * 2 ** row.attempts, 60.0)
        status = await inbox_fail(row, repr(exc), self._clock(), self._s.inbox_max_attempts,
                                  timedelta(seconds=backoff))
        if status is InboxStatus.PARKED:
            metrics.INBOX_HANDLED.labels("parked").inc()
            log.error("inbox event parked after %d tries", row.attempts + 1, extra=ids,
                      exc_info=exc)
        else:
            metrics.INBOX_HANDLED.labels("retry").inc()
            log.warning("inbox event failed, retrying in %.1fs: %r", backoff, exc, extra=ids)

    async def _wait_for_environment(self, row: InboxEvent, exc: Exception,
                                    ids: dict[str, object]) -> None:
        """Try again later, more slowly the longer it fails, without counting a try; park only
        after `environment_retry_minutes`. The person hears once that their message is safe."""
        now = self._clock()
        since = row.failing_since or now
        failing = (now - since).total_seconds()
        give_up = failing >= self._s.environment_retry_minutes * 60
        retry_in = jittered(min(max(failing / 2, self._s.inbox_retry_seconds),
                                ENVIRONMENT_BACKOFF_MAX))
        status = await inbox_wait(row, cause(exc), since, now + timedelta(seconds=retry_in),
                                  give_up)
        if status is InboxStatus.PARKED:
            metrics.INBOX_HANDLED.labels("parked").inc()
            log.error("inbox event parked: its environment failed for %.0f min: %s",
                      failing / 60, cause(exc), extra=ids)
            return
        metrics.INBOX_HANDLED.labels("waiting").inc()
        log.log(logging.WARNING if row.failing_since is None else logging.DEBUG,
                "inbox event waits for its environment, next try in %.1fs: %s", retry_in,
                cause(exc), extra=ids)
        if row.kind in PERSONAL and now - row.received_at >= TELL_AFTER:
            async with transaction():
                told = await enqueue(f"waiting:{row.id}", Text(WAITING), now=now,
                                     platform=row.platform, to_users=[row.user_id],
                                     sender=(row.user_id, row.platform))
            if told:
                self._on_handled()

    async def _with_media(self, row: InboxEvent) -> Inbound:
        """Copy the photo into our store now: the platform's media id expires."""
        event = row.event
        if not event.media_id or event.media or event.media_lost:
            return event
        channel = self._channels.get(event.platform)
        if channel is None:
            return event
        try:
            # Into the store as it downloads, a chunk at a time.
            digest = await self._media.put_stream(channel.fetch_media(event.media_id))
        except MediaGone as exc:
            log.warning("media could not be fetched: %s", exc, extra={"inbox_id": row.id})
            event = replace(event, media_lost=True)
        else:
            event = replace(event, media=digest)
        await inbox_update_payload(row, event)
        return event

