"""Messages in and out: the neutral event and message types, the inbox and the outbox.

Handlers see only these types: an `Inbound` event and the outgoing `Text`, `Markdown`, `Image`,
`Card`, `CardUpdate` and `GroupCreate` values. Channels turn them into a platform's JSON. The
inbox makes every inbound event durable and de-duplicated before it is acknowledged; the outbox
makes every outbound message durable and sent once per idempotency key. Races between workers
and instances are decided by compare-and-set updates, which work on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from tortoise import fields
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Min
from tortoise.models import Model

# ---------------------------------------------------------------------------------------------
# Neutral inbound event


class InboundKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    LOCATION = "location"
    ENTER = "enter"          # the user opened the app's chat
    MENU = "menu"            # an app menu click
    CARD_ACTION = "card_action"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    label: str = ""


@dataclass(frozen=True)
class Inbound:
    """One thing a person did in chat, the same for every platform."""

    platform: str
    user_id: str
    kind: InboundKind
    dedup_key: str
    sent_at: int = 0                      # the platform's CreateTime, epoch seconds
    text: str = ""
    media_id: str = ""                    # the platform's id; expires (WeCom: 3 days)
    media: str = ""                       # our content hash once downloaded
    media_lost: bool = False              # the platform could not give us the file
    location: Location | None = None
    event_key: str = ""                   # menu key or card button key
    task_id: str = ""
    response_code: str = ""               # single-use code to update the clicked card
    selected: dict[str, list[str]] = field(default_factory=dict)
    raw_type: str = ""                    # the platform's own type name, for logs

    def to_payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Inbound:
        values = dict(data)
        values["kind"] = InboundKind(values["kind"])
        if values.get("location"):
            values["location"] = Location(**values["location"])
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# Neutral outgoing messages


@dataclass(frozen=True)
class Text:
    type: ClassVar[str] = "text"
    content: str


@dataclass(frozen=True)
class Markdown:
    type: ClassVar[str] = "markdown"
    content: str


@dataclass(frozen=True)
class Image:
    type: ClassVar[str] = "image"
    media: str                            # content hash in the media store


@dataclass(frozen=True)
class Button:
    text: str
    key: str
    style: int = 1                        # 1 primary … 4; channels map it to their own


@dataclass(frozen=True)
class Selection:
    """A drop-down above a card's buttons; the chosen option id comes back with the click."""

    key: str
    title: str
    options: tuple[tuple[str, str], ...]  # (id, text), at most 10
    selected: str = ""


@dataclass(frozen=True)
class Card:
    """An interactive card; `task_id` is single-use on WeCom, so it names the step and attempt."""

    type: ClassVar[str] = "card"
    task_id: str
    title: str
    description: str = ""                 # a short line under the title
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    body: str = ""                        # a longer text under the fields (≤ 160 characters)
    selection: Selection | None = None


@dataclass(frozen=True)
class CardUpdate:
    """Grey out a card's buttons with a note, for everyone who received it."""

    type: ClassVar[str] = "card_update"
    response_code: str
    replace_text: str


@dataclass(frozen=True)
class GroupCreate:
    type: ClassVar[str] = "group_create"
    chat_id: str
    name: str
    owner: str
    members: tuple[str, ...]


Outgoing = Text | Markdown | Image | Card | CardUpdate | GroupCreate
_OUTGOING: dict[str, type[Outgoing]] = {
    cls.type: cls for cls in (Text, Markdown, Image, Card, CardUpdate, GroupCreate)
}
RATE_LIMITED = frozenset({Text.type, Markdown.type, Image.type, Card.type})
CHAT_PREFIX = "chat:"


def outgoing_to_payload(message: Outgoing) -> dict[str, Any]:
    return {"type": message.type, **dataclasses.asdict(message)}


def outgoing_from_payload(payload: dict[str, Any]) -> Outgoing:
    values = {k: v for k, v in payload.items() if k != "type"}
    cls = _OUTGOING[payload["type"]]
    if cls is Card:
        values["fields"] = tuple(tuple(pair) for pair in values.get("fields", ()))
        values["buttons"] = tuple(Button(**b) for b in values.get("buttons", ()))
        if values.get("selection"):
            pick = values["selection"]
            values["selection"] = Selection(**{**pick, "options": tuple(
                tuple(option) for option in pick["options"])})
    if cls is GroupCreate:
        values["members"] = tuple(values["members"])
    return cls(**values)


class Priority(IntEnum):
    """Emergency messages go ahead of every routine one."""

    ROUTINE = 0
    URGENT = 50
    EMERGENCY = 100


# ---------------------------------------------------------------------------------------------
# Inbox


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
    last_error = fields.TextField(default="")
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbox_event"
        indexes = (("status", "platform", "user_id", "id"),)

    @property
    def event(self) -> Inbound:
        return Inbound.from_payload(self.payload)


async def inbox_put(event: Inbound, now: datetime) -> bool:
    """Store an event once; False when its dedup key was seen before (a platform retry)."""
    try:
        await InboxEvent.create(
            dedup_key=event.dedup_key, platform=event.platform, user_id=event.user_id,
            kind=event.kind.value, payload=event.to_payload(), received_at=now,
            next_attempt_at=now,
        )
    except IntegrityError:
        return False
    return True


async def inbox_claim(owner: str, now: datetime, lease: timedelta, limit: int) -> list[InboxEvent]:
    """Lease the oldest unfinished event of up to `limit` users.

    Only a user's oldest pending event can be claimed, so one user's events run in arrival order
    on any number of instances, while different users run in parallel.
    """
    heads = (
        await InboxEvent.filter(status=InboxStatus.PENDING)
        .annotate(head=Min("id"))
        .group_by("platform", "user_id")
        .values_list("head", flat=True)
    )
    if not heads:
        return []
    ready = await (
        InboxEvent.filter(id__in=list(heads), next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("id")
        .limit(limit)
    )
    claimed = []
    for row in ready:
        won = await (
            InboxEvent.filter(id=row.id, status=InboxStatus.PENDING)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_owner=owner, lease_until=now + lease)
        )
        if won:
            row.lease_owner = owner
            claimed.append(row)
    return claimed


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


async def inbox_update_payload(row: InboxEvent, event: Inbound) -> None:
    """Keep what was learnt about an event (its downloaded photo) across retries."""
    row.payload = event.to_payload()
    await InboxEvent.filter(id=row.id).update(payload=row.payload)


async def release_leases(owner: str) -> int:
    """A restarted instance takes back what its previous life left half-done."""
    inbox = await InboxEvent.filter(lease_owner=owner).update(lease_owner=None, lease_until=None)
    outbox = await OutboxMessage.filter(lease_owner=owner).update(
        lease_owner=None, lease_until=None
    )
    return inbox + outbox


# ---------------------------------------------------------------------------------------------
# Outbox


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"          # every recipient is settled: sent, invalid or failed


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"    # handed to the platform; counts against the member's rate limit
    UNCERTAIN = "uncertain"  # the call timed out: maybe delivered; repeated with a duplicate check
    SENT = "sent"
    INVALID = "invalid"    # the platform named the recipient invalid or unlicensed
    FAILED = "failed"      # a permanent error; the reason is kept


UNSETTLED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.UNCERTAIN)


class OutboxMessage(Model):
    id = fields.BigIntField(primary_key=True)
    idempotency_key = fields.CharField(max_length=200, unique=True)
    platform = fields.CharField(max_length=16)
    kind = fields.CharField(max_length=16)
    payload: dict[str, Any] = fields.JSONField()  # type: ignore[assignment]
    priority = fields.IntField(default=Priority.ROUTINE)
    status = fields.CharEnumField(OutboxStatus, max_length=8, default=OutboxStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    done_at = fields.DatetimeField(null=True)
    result: dict[str, Any] = fields.JSONField(default=dict)  # type: ignore[assignment]
    last_error = fields.TextField(default="")

    deliveries: fields.ReverseRelation[OutboxDelivery]

    class Meta:
        table = "outbox_message"
        indexes = (("status", "priority", "next_attempt_at"),)

    @property
    def message(self) -> Outgoing:
        return outgoing_from_payload(self.payload)


class OutboxDelivery(Model):
    """One recipient of one message: a member, a group chat (`chat:ID`) or a card update."""

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[OutboxMessage] = fields.ForeignKeyField(
        "models.OutboxMessage", related_name="deliveries", on_delete=fields.CASCADE
    )
    recipient = fields.CharField(max_length=64)
    rate_limited = fields.BooleanField(default=False)
    status = fields.CharEnumField(DeliveryStatus, max_length=9, default=DeliveryStatus.PENDING)
    sent_at = fields.DatetimeField(null=True)
    error = fields.CharField(max_length=200, default="")

    class Meta:
        table = "outbox_delivery"
        unique_together = (("message", "recipient"),)
        indexes = (("recipient", "sent_at"),)


async def enqueue(
    key: str, message: Outgoing, *, now: datetime, platform: str,
    to_users: Sequence[str] = (), to_chat: str = "", priority: Priority = Priority.ROUTINE,
) -> bool:
    """Queue a message once per idempotency key; False when the key was queued before.

    Call it inside the transaction that decided to send, so the decision and the message commit
    together.
    """
    recipients = _recipients(message, to_users, to_chat)
    if await OutboxMessage.exists(idempotency_key=key):
        return False
    try:
        row = await OutboxMessage.create(
            idempotency_key=key, platform=platform, kind=message.type,
            payload=outgoing_to_payload(message), priority=int(priority), next_attempt_at=now,
            created_at=now,
        )
    except IntegrityError:
        return False
    limited = message.type in RATE_LIMITED and not to_chat
    await OutboxDelivery.bulk_create(
        [OutboxDelivery(message=row, recipient=r, rate_limited=limited) for r in recipients]
    )
    return True


def _recipients(message: Outgoing, to_users: Sequence[str], to_chat: str) -> list[str]:
    if isinstance(message, GroupCreate):
        return [CHAT_PREFIX + message.chat_id]
    if isinstance(message, CardUpdate):
        return [f"card:{message.response_code}"]
    if to_chat:
        if isinstance(message, Card):
            raise ValueError("cards cannot go to group chats; send each person a card")
        return [CHAT_PREFIX + to_chat]
    users = list(dict.fromkeys(u for u in to_users if u))
    if not users:
        raise ValueError("a message needs at least one recipient")
    return users


async def outbox_claim(owner: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """Lease due messages, emergencies first, then oldest first; returns their ids."""
    due = await (
        OutboxMessage.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("-priority", "id")
        .limit(limit)
        .only("id")
    )
    claimed: list[int] = []
    for message_id in (row.id for row in due):
        won = await (
            OutboxMessage.filter(id=message_id, status=OutboxStatus.PENDING)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_owner=owner, lease_until=now + lease)
        )
        if won:
            claimed.append(message_id)
    return claimed


async def recent_sends(recipients: Iterable[str], since: datetime) -> dict[str, list[datetime]]:
    """When each member was handed rate-limited messages since `since`, oldest first."""
    rows = await OutboxDelivery.filter(
        recipient__in=list(recipients), rate_limited=True, sent_at__gte=since,
        status__in=[DeliveryStatus.SENDING, DeliveryStatus.UNCERTAIN, DeliveryStatus.SENT],
    ).order_by("sent_at").values_list("recipient", "sent_at")
    times: dict[str, list[datetime]] = {}
    for recipient, sent_at in rows:
        times.setdefault(recipient, []).append(sent_at)
    return times


class PlatformToken(Model):
    """An access token shared by every instance, refreshed by one of them at a time."""

    key = fields.CharField(max_length=128, primary_key=True)
    token = fields.CharField(max_length=600, default="")
    expires_at = fields.DatetimeField()
    refresh_owner = fields.CharField(max_length=64, null=True)
    refresh_until = fields.DatetimeField(null=True)

    class Meta:
        table = "platform_token"
