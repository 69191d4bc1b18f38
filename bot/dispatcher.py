"""The outbox dispatcher: sends queued messages, emergencies first, within the platform's limits.

Each message goes through the channel of its platform, and within that channel's `Limits`: the
per-person rate, the people one call may name, the platform's duplicate check. Per recipient, a
delivery is reserved (`sending`) before the call and settled right after the answer, so a crash
can repeat at most the one call in flight; on WeCom plain messages carry its duplicate check and
cards a single-use task id, so even that repeat reaches nobody twice (the web chat writes a
keyed line once). The per-person limit is kept by queueing: a recipient at the limit waits for
the window to move. A platform without one (the web chat) hands everybody over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta

from bot import metrics
from bot.channels import Channel, Delivery, Outcome, UploadRefused, Verdict
from bot.channels.media_ids import PlatformFile, platform_file
from bot.claim_loop import ClaimLoop
from bot.media import MediaStore
from bot.settings import Settings
from bot.supervision import cause, environmental
from models.outbox import (
    UNSETTLED,
    DeliveryStatus,
    Leased,
    OutboxDelivery,
    OutboxMessage,
    OutboxStatus,
    Unsettled,
    at_limit,
    finish,
    outbox_claim,
    take,
)
from models.outgoing import File, Image, Outgoing, Text

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=1)
MAX_BACKOFF = 300.0
DUPLICATE_MARGIN_SECONDS = 5      # clock slack around the first attempt
_SETTLED = {Verdict.SENT: DeliveryStatus.SENT, Verdict.INVALID: DeliveryStatus.INVALID,
            Verdict.FAILED: DeliveryStatus.FAILED}


class Dispatcher(ClaimLoop[Leased]):
    def __init__(
        self, settings: Settings, *, channels: Mapping[str, Channel], media: MediaStore,
        clock: Callable[[], datetime], instance: str,
    ) -> None:
        super().__init__("outbox-dispatcher", OutboxMessage,
                         concurrency=settings.outbox_concurrency,
                         poll_seconds=settings.poll_seconds, batch=1,
                         lease=timedelta(seconds=settings.lease_seconds), clock=clock,
                         instance=instance)
        self._s = settings
        self._channels = channels
        self._media = media
        self._counting = MemberTurns()

    async def claim(self, limit: int) -> list[Leased]:
        return await outbox_claim(self._instance, self._clock(), self._lease, limit)

    def row(self, item: Leased) -> OutboxMessage:
        return item.message

    async def work(self, leased: Leased) -> None:
        try:
            await self._attempt(leased.message, leased.unsettled)
        except Exception as exc:
            ids = {"outbox_id": leased.message.id}
            if environmental(exc):
                # The database went away mid-attempt: the lease runs out and it is retried.
                log.warning("outbox attempt interrupted, retried later: %s", cause(exc),
                            extra=ids)
            else:
                log.exception("outbox attempt crashed; the lease will expire and it is "
                              "retried", extra=ids)

    async def _attempt(self, msg: OutboxMessage, waiting: list[Unsettled]) -> None:
        now = self._clock()
        channel = self._channels.get(msg.platform)
        if channel is None:
            outcome = Outcome(Verdict.FAILED, f"no {msg.platform} channel configured")
            await self._settle(msg, Delivery({d.recipient: outcome for d in waiting}, {}),
                               waiting, 0, now)
            return
        message = await self._sendable(msg)       # before anyone is marked as being sent to
        limit = channel.limits.per_person_per_minute
        ready, free_at = await self._reserve(msg.id, waiting, now, limit)
        delivery = Delivery({}, {})
        if ready:
            delivery = await self._deliver(channel, msg, message, ready, now)
        await self._settle(msg, delivery, ready, len(waiting) - len(ready), now, free_at)

    async def _sendable(self, msg: OutboxMessage) -> Outgoing:
        """The message, or, for a photo or file the media store no longer has, a note that
        says so: the rest of what a person was sent still makes sense without it. A store
        that cannot be reached raises: the message waits, its lease runs out, and it is
        tried again (an environmental failure, counted as no attempt)."""
        message = msg.message
        if not isinstance(message, Image | File) or await self._media.exists(message.media):
            return message
        log.error("%s %s is missing from the media store; sent a note instead", message.type,
                  message.media, extra={"outbox_id": msg.id, "ticket": message.about})
        return Text(missing_note(message))

    async def _deliver(self, channel: Channel, msg: OutboxMessage, message: Outgoing,
                       ready: list[Unsettled], now: datetime) -> Delivery:
        """As many calls as the channel's `recipients_per_call` needs (in the order queued);
        a call after the first names a send of its own (`batch`: a card's task id is single-use
        on WeCom), by its first delivery, so a repeat of it is named the same."""
        limits = channel.limits
        size = limits.recipients_per_call or len(ready)
        media = platform_file(channel, message, now)    # one upload serves every call
        outcomes: dict[str, Outcome] = {}
        result: dict[str, object] = {}
        for n, start in enumerate(range(0, len(ready), size)):
            chunk = ready[start:start + size]
            batch = _batch(msg, chunk) if n == 0 else str(chunk[0].id)
            delivery = await self._call(
                channel, msg.idempotency_key, message, [d.recipient for d in chunk],
                _duplicate_check(chunk, now, limits.duplicate_check_seconds, msg.id), batch,
                media)
            outcomes |= delivery.outcomes
            result = _merge(result, delivery.result)
        return Delivery(outcomes, result)

    @staticmethod
    async def _call(channel: Channel, key: str, message: Outgoing, recipients: list[str],
                    duplicate_check: float, batch: str, media: PlatformFile | None
                    ) -> Delivery:
        """One send; a picture or document goes by its media id on the platform, uploaded
        once more when the platform no longer knows the one recorded (once an attempt)."""
        try:
            media_id = await media.media_id() if media else ""
        except UploadRefused as exc:
            return Delivery(dict.fromkeys(recipients, exc.outcome), {})
        delivery = await channel.deliver(key, message, recipients, duplicate_check, batch,
                                         media_id)
        gone = [r for r, o in delivery.outcomes.items() if o.media_gone]
        if media is None or media.renewed or not gone:
            return delivery
        try:
            again = await channel.deliver(key, message, gone, duplicate_check, batch,
                                          await media.renew())
        except UploadRefused as exc:
            again = Delivery(dict.fromkeys(gone, exc.outcome), {})
        return Delivery(delivery.outcomes | again.outcomes,
                        _merge(delivery.result, again.result))

    async def _reserve(
        self, message_id: int, waiting: list[Unsettled], now: datetime, limit: int | None
    ) -> tuple[list[Unsettled], datetime | None]:
        """Hand over the recipients below their per-minute `limit` (None: everybody); say when
        the others are free.

        Only messages to members count against the limit. Between the count and the hand-over
        (one statement), no other attempt of this process may hand the same member a message,
        so an attempt waits for the earlier ones that share a member; cards to different
        thousands of responders count at the same time. A message to group chats or a card
        update goes straight on."""
        if all(d.status is not DeliveryStatus.PENDING for d in waiting):
            return waiting, None      # a repeat of an attempt whose deliveries were handed
        if limit is None:
            taken = await take(message_id, now, now - WINDOW, None)
            return [d for d in waiting
                    if d.status is not DeliveryStatus.PENDING or d.id in taken], None
        members = frozenset(d.recipient for d in waiting
                            if d.rate_limited and d.status is DeliveryStatus.PENDING)
        async with self._counting.turn(members):
            taken = await take(message_id, now, now - WINDOW, limit)
        ready = [d for d in waiting if d.status is not DeliveryStatus.PENDING or d.id in taken]
        if len(ready) == len(waiting):
            return ready, None
        full = await at_limit(message_id, now - WINDOW, limit)  # who waits, and until when
        return ready, min((oldest + WINDOW for oldest in full.values()), default=None)

    async def _settle(
        self, msg: OutboxMessage, delivery: Delivery, tried: list[Unsettled],
        untried: int, now: datetime, free_at: datetime | None = None,
    ) -> None:
        """Record each tried recipient's outcome and finish or reschedule the message.

        Recipients with the same outcome are updated together (usually the whole message is
        settled alike and done, in one statement: `finish`), and what is left unsettled is
        counted here rather than in the database: `untried` waited for their rate limit, and
        while we hold the message's lease nobody else changes its deliveries."""
        retry_in = 0.0
        left = untried
        changes: dict[tuple[tuple[str, object], ...], list[int]] = {}
        verdicts: Counter[Verdict] = Counter()
        for d in tried:
            outcome = delivery.outcomes.get(d.recipient, Outcome(Verdict.RETRY, "no answer", 2.0))
            verdicts[outcome.verdict] += 1
            error = outcome.detail[:200]
            if outcome.verdict is Verdict.RETRY:
                retry_in = max(retry_in, outcome.delay)
                left += 1
                if outcome.uncertain or d.status is DeliveryStatus.UNCERTAIN:
                    # Maybe delivered: it keeps counting against the member's limit.
                    change: dict[str, object] = {"status": DeliveryStatus.UNCERTAIN,
                                                 "error": error}
                else:
                    change = {"status": DeliveryStatus.PENDING, "sent_at": None, "error": error}
            else:
                change = {"status": _SETTLED[outcome.verdict], "error": error}
                if outcome.verdict is not Verdict.SENT:
                    log.warning("delivery refused: %s", outcome.detail,
                                extra={"outbox_id": msg.id, "recipient": d.recipient})
            changes.setdefault(tuple(change.items()), []).append(d.id)
        for verdict, count in verdicts.items():
            metrics.OUTBOX_SENT.labels(msg.platform, verdict.value).inc(count)
        result = _merge(msg.result, delivery.result)
        attempts = msg.attempts + (1 if retry_in else 0)
        if len(changes) == 1 and not left:
            # The usual case: one final outcome for every unsettled recipient, and done.
            [change_items] = changes
            change = dict(change_items)
            await finish(msg.id, self._instance, DeliveryStatus(str(change["status"])),
                         str(change["error"]), result, attempts, self._clock())
            return
        for change_items, ids in changes.items():
            await OutboxDelivery.filter(id__in=ids).update(**dict(change_items))
        if left and attempts >= self._s.outbox_max_attempts:
            await OutboxDelivery.filter(message_id=msg.id, status__in=UNSETTLED).update(
                status=DeliveryStatus.FAILED, error="gave up after repeated retryable errors"
            )
            log.error("outbox message abandoned after %d attempts", attempts,
                      extra={"outbox_id": msg.id})
            left = 0
        fields: dict[str, object] = {"result": result, "attempts": attempts,
                                     "lease_owner": None, "lease_until": None}
        if left:
            due = free_at or now
            if retry_in:
                backoff = min(max(retry_in, 0.5 * 4 ** (attempts - 1)), MAX_BACKOFF)
                retry_at = now + timedelta(seconds=backoff)
                due = min(due, retry_at) if free_at else retry_at
            fields.update(next_attempt_at=due, last_error=_first_error(delivery))
        else:
            fields.update(status=OutboxStatus.DONE, done_at=self._clock())
        await OutboxMessage.filter(id=msg.id, lease_owner=self._instance).update(**fields)


class MemberTurns:
    """Attempts that share a member take turns, in the order they asked; the others go at once."""

    def __init__(self) -> None:
        self._holders: list[tuple[frozenset[str], asyncio.Event]] = []

    @contextlib.asynccontextmanager
    async def turn(self, members: frozenset[str]) -> AsyncIterator[None]:
        earlier = [done for held, done in self._holders if not held.isdisjoint(members)]
        mine = (members, asyncio.Event())
        self._holders.append(mine)
        try:
            for done in earlier:
                await done.wait()
            yield
        finally:
            self._holders.remove(mine)
            mine[1].set()


def missing_note(message: Image | File) -> str:
    what = "照片" if isinstance(message, Image) else f"文件《{message.filename}》"
    about = f"{message.about} 的" if message.about else ""
    return f"（{about}{what}在存储中缺失，未能发送，已记录。请联系管理员核查。）"


def _repeat_after(ready: list[Unsettled], now: datetime) -> float:
    """Seconds since an attempt that may have gone through: a delivery still `sending` was
    interrupted by a crash, an `uncertain` one by a timeout. 0 when this is a first attempt."""
    earlier = [d.sent_at for d in ready if d.status is not DeliveryStatus.PENDING and d.sent_at]
    return max((now - min(earlier)).total_seconds(), 1.0) if earlier else 0.0


def _duplicate_check(ready: list[Unsettled], now: datetime, longest: int | None,
                     message_id: int) -> float:
    """How far back to ask the platform to drop a copy: on a repeat only, and only as far back
    as the first attempt (a wider check would also drop a person's legitimate repeats of the
    same words), within the longest the platform takes. 0: a first attempt, or a platform that
    has no such check."""
    repeat = _repeat_after(ready, now)
    if not repeat or longest is None:
        return 0.0
    window = math.ceil(repeat) + DUPLICATE_MARGIN_SECONDS
    if window > longest:
        log.warning("repeating a send from %.0f s ago, beyond the %d s the platform can check "
                    "for a duplicate: it may arrive twice", repeat, longest,
                    extra={"outbox_id": message_id})
    return float(min(window, longest))


def _batch(msg: OutboxMessage, ready: list[Unsettled]) -> str:
    """Names a send to people the message reached others before (the channel recorded what an
    earlier send answered; these waited for their rate limit): a card needs a task id of its own
    for them. Named by its first delivery, it is the same when a timed-out attempt is repeated."""
    return str(min(d.id for d in ready)) if msg.result else ""


def _merge(old: dict[str, object], new: dict[str, object]) -> dict[str, object]:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *value]  # type: ignore[misc]
        else:
            merged[key] = value
    return merged


def _first_error(delivery: Delivery) -> str:
    return next((o.detail for o in delivery.outcomes.values() if o.detail), "")
