"""The inbox queue: every inbound event durable and de-duplicated before it is acknowledged, then
claimed by one worker at a time, one person's events in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.inbound import Inbound
from models.sql import insert_once, lease_rows


class InboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    PARKED = "parked"     # failed too often; kept for an operator, the user's later events go on


class InboxEvent(Model):
    id = fields.BigIntField(primary_key=True)
    dedup_key = fields.CharField(max_length=200, unique=True)
    platform = fields.CharField(max_length=16)
    user_id = fields.CharField(max_length=64)
    kind = fields.CharField(max_length=16)
    payload: dict[str, Any] = fields.JSONField()  # type: ignore[assignment]
    received_at = fields.DatetimeField()
    status = fields.CharEnumField(InboxStatus, max_length=8, default=InboxStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    taken_from = fields.CharField(max_length=64, null=True)  # whose expired lease we took
    # When the environment (database, disk, platform) started failing this event: it is
    # retried until `environment_retry_minutes` past this, not parked after a few tries.
    failing_since = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbox_event"
        indexes = (("status", "platform", "user_id", "id"), ("status", "id"))

    @property
    def event(self) -> Inbound:
        return Inbound.from_payload(self.payload)


async def inbox_put(event: Inbound, now: datetime) -> bool:
    """Store an event once; False when its dedup key was seen before (a platform retry)."""
    stored = await insert_once(InboxEvent, [{
        "dedup_key": event.dedup_key, "platform": event.platform, "user_id": event.user_id,
        "kind": event.kind.value, "payload": event.to_payload(), "received_at": now,
        "status": InboxStatus.PENDING, "attempts": 0, "next_attempt_at": now, "last_error": "",
    }], unique="dedup_key")
    return bool(stored)


async def inbox_claim(owner: str, now: datetime, lease: timedelta, limit: int) -> list[InboxEvent]:
    """Lease the oldest unfinished event of up to `limit` users.

    Only a user's oldest pending event (its head) can be claimed, so one user's events run in
    arrival order on any number of instances, while different users run in parallel.
    """
    rows = await lease_rows(InboxEvent, _INBOX_HEADS, owner, now, lease, limit)
    return [InboxEvent._init_from_db(**row) for row in rows]


# Each person's oldest pending event: pending events in arrival order (the (status, id) index),
# keeping those with no earlier pending event of the same person (one probe of the
# (status, platform, user_id, id) index each). A claim reads about as many rows as it takes, so
# a backlog of thousands of people waiting costs no more per claim than a few (the earlier
# form visited every waiting person on every claim).
_INBOX_HEADS = """
    SELECT e.id FROM inbox_event e
    WHERE e.status = 'pending' AND e.next_attempt_at <= :now
      AND (e.lease_until IS NULL OR e.lease_until < :now)
      AND NOT EXISTS (SELECT 1 FROM inbox_event p
                      WHERE p.status = 'pending' AND p.platform = e.platform
                        AND p.user_id = e.user_id AND p.id < e.id)
    ORDER BY e.id LIMIT :limit {lock}"""


class LeaseLost(Exception):
    """Another worker took the row over (our lease expired); our work must roll back."""


async def inbox_complete(row: InboxEvent, now: datetime) -> None:
    """Mark done; call inside the handler's transaction so its effects and this commit together."""
    won = await InboxEvent.filter(
        id=row.id, status=InboxStatus.PENDING, lease_owner=row.lease_owner
    ).update(status=InboxStatus.DONE, processed_at=now, lease_owner=None, lease_until=None)
    if not won:
        raise LeaseLost(f"inbox event {row.id}")


async def inbox_fail(
    row: InboxEvent, error: str, now: datetime, max_attempts: int, backoff: timedelta
) -> InboxStatus:
    """Count a failed try: retry later, or park after `max_attempts`."""
    attempts = row.attempts + 1
    status = InboxStatus.PARKED if attempts >= max_attempts else InboxStatus.PENDING
    await InboxEvent.filter(id=row.id, lease_owner=row.lease_owner).update(
        status=status, attempts=attempts, last_error=error[:2000], next_attempt_at=now + backoff,
        lease_owner=None, lease_until=None,
    )
    return status


async def inbox_wait(row: InboxEvent, error: str, since: datetime, retry_at: datetime,
                     give_up: bool) -> InboxStatus:
    """A failure of the environment (database, disk, platform), not of the event: try again at
    `retry_at` without counting a try, or park the event when it has failed since `since` for
    longer than anyone should wait (`give_up`)."""
    status = InboxStatus.PARKED if give_up else InboxStatus.PENDING
    await InboxEvent.filter(id=row.id, lease_owner=row.lease_owner).update(
        status=status, failing_since=since, last_error=error[:2000], next_attempt_at=retry_at,
        lease_owner=None, lease_until=None,
    )
    return status


async def inbox_lag(now: datetime) -> float:
    """Seconds the oldest pending event has waited (0 when none waits); by the (status, id)
    index."""
    first = await InboxEvent.filter(status=InboxStatus.PENDING).order_by("id").first(
        ).values_list("received_at", flat=True)
    return (now - first).total_seconds() if isinstance(first, datetime) else 0.0


async def inbox_parked(limit: int) -> list[InboxEvent]:
    """Parked events, the newest first."""
    return await InboxEvent.filter(status=InboxStatus.PARKED).order_by("-id").limit(limit)


async def inbox_retry(ids: Sequence[int] | None, now: datetime) -> list[int]:
    """Put parked events back in the queue as if they had just arrived (every parked one when
    `ids` is None); the ids put back. Each is handled once more, in its person's order."""
    parked = InboxEvent.filter(status=InboxStatus.PARKED)
    if ids is not None:
        parked = parked.filter(id__in=list(ids))
    found: list[int] = list(await parked.values_list("id", flat=True))  # type: ignore[arg-type]
    if found:
        await InboxEvent.filter(id__in=found, status=InboxStatus.PARKED).update(
            status=InboxStatus.PENDING, attempts=0, failing_since=None, next_attempt_at=now,
            lease_owner=None, lease_until=None)
    return sorted(found)



async def inbox_update_payload(row: InboxEvent, event: Inbound) -> None:
    """Keep what was learnt about an event (its downloaded photo) across retries."""
    row.payload = event.to_payload()
    await InboxEvent.filter(id=row.id).update(payload=row.payload)
