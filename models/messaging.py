"""Messages in and out: the neutral event and message types, the inbox and the outbox.

Handlers see only these types: an `Inbound` event and the outgoing `Text`, `Markdown`, `Image`,
`File`, `Card`, `CardUpdate`, `GroupCreate` and `GroupUpdate` values. Channels turn them into a
platform's JSON.
The inbox makes every inbound event durable and de-duplicated before it is acknowledged; the
outbox makes every outbound message durable and sent once per idempotency key. Races between
workers and instances are decided by compare-and-set updates, which work on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from tortoise import connections, fields
from tortoise.models import Model

from models import atomic, side
from models.markup import clean_text

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
    EXPIRED = "expired"      # the person left a question unanswered (from the scheduler)
    FOLLOW_UP = "follow_up"  # a handler's next step, queued with its decision (`event_key`)
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

    def __post_init__(self) -> None:
        # Whatever a platform or a page sends: PostgreSQL refuses NUL and lone surrogates.
        for name in ("text", "event_key", "task_id", "response_code", "media_id"):
            object.__setattr__(self, name, clean_text(getattr(self, name)))

    def to_payload(self) -> dict[str, Any]:
        # A shallow copy rather than dataclasses.asdict (a deep copy): this runs on every
        # callback, and the location is the only nested dataclass.
        payload = dict(vars(self))
        if self.location is not None:
            payload["location"] = dataclasses.asdict(self.location)
        return payload

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Inbound:
        values = dict(data)
        values["kind"] = InboundKind(values["kind"])
        if values.get("location"):
            values["location"] = Location(**values["location"])
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# Neutral outgoing messages


MESSAGE_BYTES = 2048   # the most a text or markdown may hold: WeCom refuses more (45002)


def fit(lines: Sequence[str], *, room: int = MESSAGE_BYTES, more: str = "……",
        newest_last: bool = False) -> str:
    """As many whole lines as `room` bytes hold, `more` standing for the rest: the first lines,
    or with `newest_last` the last ones (a record read up to now)."""
    text = "\n".join(lines)
    if len(text.encode()) <= room:
        return text
    left = room - len(more.encode())
    kept: list[str] = []
    for line in reversed(lines) if newest_last else lines:
        left -= len(line.encode()) + 1
        if left < 0:
            break
        kept.append(line)
    return "\n".join([more, *reversed(kept)] if newest_last else [*kept, more])


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
class File:
    """A document (a report's ledger); the name is what the person sees and saves it as."""

    type: ClassVar[str] = "file"
    media: str                            # content hash in the media store
    filename: str


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
    """Grey out a card's buttons with a note, for everyone who received it, or only for
    `users` (an emergency card goes to a thousand people; one person's 收到 is theirs alone)."""

    type: ClassVar[str] = "card_update"
    response_code: str
    replace_text: str
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupCreate:
    type: ClassVar[str] = "group_create"
    chat_id: str
    name: str
    owner: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class GroupUpdate:
    """People to add to and remove from a group chat the service created, so that it keeps up
    with the roster; `owner` hands the chat over when its owner is among those removed ("" keeps
    it). Queued to the chat (`to_chat`)."""

    type: ClassVar[str] = "group_update"
    chat_id: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    owner: str = ""


Outgoing = Text | Markdown | Image | File | Card | CardUpdate | GroupCreate | GroupUpdate
_OUTGOING: dict[str, type[Outgoing]] = {
    cls.type: cls
    for cls in (Text, Markdown, Image, File, Card, CardUpdate, GroupCreate, GroupUpdate)
}
RATE_LIMITED = frozenset({Text.type, Markdown.type, Image.type, File.type, Card.type})
CHAT_PREFIX = "chat:"


def outgoing_to_payload(message: Outgoing) -> dict[str, Any]:
    return {"type": message.type, **_plain(message)}


def _plain(value: Any) -> Any:
    """Dataclasses as dicts and tuples as lists, for JSON; like `dataclasses.asdict` without
    its deep copies (a tick renders hundreds of messages)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


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
    if cls is GroupUpdate:
        values["add"] = tuple(values.get("add", ()))
        values["remove"] = tuple(values.get("remove", ()))
    if cls is CardUpdate:
        values["users"] = tuple(values.get("users", ()))
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
    rows = await _lease(InboxEvent, _INBOX_HEADS, owner, now, lease, limit)
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


async def renew_leases(model: type[InboxEvent] | type[OutboxMessage], ids: Sequence[int],
                       owner: str, until: datetime) -> None:
    """Extend `owner`'s leases of the rows `ids` (a heartbeat: the work is still going)."""
    await model.filter(id__in=list(ids), lease_owner=owner).update(lease_until=until)


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
    taken_from = fields.CharField(max_length=64, null=True)  # whose expired lease we took
    created_at = fields.DatetimeField()
    done_at = fields.DatetimeField(null=True)
    result: dict[str, Any] = fields.JSONField(default=dict)  # type: ignore[assignment]
    last_error = fields.TextField(default="")
    # One person's messages of one priority, sent in the order they were queued ("" = no order).
    thread = fields.CharField(max_length=100, default="")

    deliveries: fields.ReverseRelation[OutboxDelivery]

    class Meta:
        table = "outbox_message"
        # Its queue indexes are partial, over the unfinished messages (WHERE done_at IS NULL),
        # which tortoise cannot declare: `outbox_waiting` (thread, id), made by migration 0011,
        # and `outbox_due` (priority DESC, id), by 0013. See `_OUTBOX_DUE`.

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


@dataclass(frozen=True)
class Queued:
    """One message for `enqueue_many`."""

    key: str
    message: Outgoing
    to_users: Sequence[str] = ()
    to_chat: str = ""


async def enqueue(
    key: str, message: Outgoing, *, now: datetime, platform: str,
    to_users: Sequence[str] = (), to_chat: str = "", priority: Priority = Priority.ROUTINE,
) -> bool:
    """Queue a message once per idempotency key; False when the key was queued before.

    Call it inside the transaction that decided to send, so the decision and the message commit
    together.
    """
    return bool(await enqueue_many([Queued(key, message, to_users, to_chat)], now=now,
                                   platform=platform, priority=priority))


async def enqueue_many(items: Sequence[Queued], *, now: datetime, platform: str,
                       priority: Priority = Priority.ROUTINE) -> int:
    """Queue messages in two statements however many there are (a scheduler tick may queue a
    thousand); keys queued before are skipped. Returns how many were new."""
    rows, recipients = [], {}
    for item in items:
        to = _recipients(item.message, item.to_users, item.to_chat)
        recipients[item.key] = (to, item.message.type in RATE_LIMITED and not item.to_chat)
        # A lone person's messages keep their order ("没有找到该区域" before the question asked
        # again); broadcasts and card updates do not wait for anything.
        single = len(to) == 1 and to[0] in item.to_users
        rows.append({
            "idempotency_key": item.key, "platform": platform, "kind": item.message.type,
            "payload": outgoing_to_payload(item.message), "priority": int(priority),
            "status": OutboxStatus.PENDING, "attempts": 0, "next_attempt_at": now,
            "created_at": now, "result": {}, "last_error": "",
            "thread": f"{platform}:{int(priority)}:{to[0]}"[:100] if single else "",
        })
    # The messages and their recipients commit together even when a caller forgot its
    # transaction: a dispatcher woken by the insert must never find a message addressed to
    # nobody.
    async with atomic():
        new = await insert_once(OutboxMessage, rows, unique="idempotency_key")
        await insert_many(OutboxDelivery, [
            {"message_id": message_id, "recipient": r, "rate_limited": recipients[key][1],
             "status": DeliveryStatus.PENDING, "sent_at": None, "error": ""}
            for key, message_id in new.items() for r in recipients[key][0]])
    return len(new)


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


@dataclass(frozen=True)
class Leased:
    """A claimed message with its deliveries still to be sent or confirmed, in the order they
    were queued (read with the claim: one round trip less a message)."""

    message: OutboxMessage
    unsettled: list[Unsettled]


async def outbox_claim(owner: str, now: datetime, lease: timedelta, limit: int) -> list[Leased]:
    """Lease due messages, emergencies first, then oldest first. A message waits while an
    earlier one of its thread is unfinished."""
    agg, array = _JSON_ARRAYS[connections.get(side()).capabilities.dialect]
    rows = await _lease(OutboxMessage, _OUTBOX_DUE, owner, now, lease, limit,
                        returning=f"*, {_UNSETTLED.format(agg=agg, array=array)} AS unsettled")
    to_time = OutboxDelivery._meta.fields_map["sent_at"].to_python_value
    leased = []
    for row in rows:
        waiting = sorted(json.loads(row.pop("unsettled") or "[]"))
        leased.append(Leased(OutboxMessage._init_from_db(**row), [
            Unsettled(int(id_), str(recipient), bool(rate_limited), DeliveryStatus(status),
                      None if sent_at is None else to_time(sent_at))
            for id_, recipient, rate_limited, status, sent_at in waiting]))
    return leased


# A message's unsettled deliveries as one JSON array of [id, recipient, rate_limited, status,
# sent_at] (NULL when there are none), returned with its claim; the dialects name the JSON
# functions differently.
_UNSETTLED = """(
        SELECT {agg}({array}(d.id, d.recipient, d.rate_limited, d.status, d.sent_at))
        FROM outbox_delivery d WHERE d.message_id = "outbox_message".id
          AND d.status IN ('pending', 'sending', 'uncertain'))"""
_JSON_ARRAYS = {"postgres": ("json_agg", "json_build_array"),
                "sqlite": ("json_group_array", "json_array")}


# Unfinished is asked as `done_at IS NULL` (set exactly when a message leaves `pending`) rather
# than by status: only the partial indexes answer that. `outbox_due` (priority DESC, id) gives
# the candidates in the claim's order, so the walk stops once `limit` are found, however many
# wait; `outbox_waiting` (thread, id) answers the head check with one probe per candidate. Asked
# by status, a planner without fresh statistics scanned every pending message for every
# candidate (27 ms a claim with 200 replies queued), then every pending message and a sort for
# each claim (0.8 ms, a quarter of PostgreSQL's time in the report benchmark).
_OUTBOX_DUE = """
    SELECT id FROM outbox_message m
    WHERE done_at IS NULL AND status = 'pending' AND next_attempt_at <= :now
      AND (lease_until IS NULL OR lease_until < :now)
      AND (thread = '' OR NOT EXISTS (
          SELECT 1 FROM outbox_message e
          WHERE e.thread = m.thread AND e.done_at IS NULL AND e.id < m.id))
    ORDER BY priority DESC, id LIMIT :limit {lock}"""


@dataclass(frozen=True)
class Unsettled:
    """One unsettled delivery, read as plain values: a card to 1,000 people makes 1,000."""

    id: int
    recipient: str
    rate_limited: bool
    status: DeliveryStatus
    sent_at: datetime | None


async def take(message_id: int, now: datetime, since: datetime, limit: int) -> set[int]:
    """Hand over (`sending` as of `now`) a message's pending deliveries, except to members who
    were handed `limit` messages or more since `since`; returns the ids handed over. One
    statement, the count and the change together."""
    db = OutboxDelivery._meta.db
    field = OutboxDelivery._meta.fields_map["sent_at"]
    sql = _numbered(_TAKE, ("message", "now", "since", "skip"), db.capabilities.dialect)
    rows = await db.execute_query_dict(sql, [
        message_id, field.to_db_value(now, OutboxDelivery),
        field.to_db_value(since, OutboxDelivery), limit - 1])
    return {int(row["id"]) for row in rows}


# A member's history: already-handed deliveries (sending, uncertain) count like sent ones. The
# nth latest of them since the window opened, or nothing when there are fewer than n.
_NTH_LATEST = """(
            SELECT h.sent_at FROM outbox_delivery h
            WHERE h.recipient = d.recipient AND h.rate_limited AND h.sent_at >= :since
              AND h.status IN ('sending', 'uncertain', 'sent')
            ORDER BY h.sent_at DESC LIMIT 1 OFFSET :skip)"""

_TAKE = f"""
    UPDATE outbox_delivery AS d SET status = 'sending', sent_at = :now
    WHERE d.message_id = :message AND d.status = 'pending'
      AND (NOT d.rate_limited OR {_NTH_LATEST} IS NULL)
    RETURNING id"""


async def finish(message_id: int, owner: str, status: DeliveryStatus, error: str,
                 result: dict[str, Any], attempts: int, now: datetime) -> None:
    """The usual end of an attempt: every unsettled recipient settled alike and the message
    done, if `owner` still holds its lease. One statement on PostgreSQL; on SQLite two, which
    need not commit together: a message left pending with nobody unsettled is done on its next
    claim."""
    meta = OutboxMessage._meta
    dialect = meta.db.capabilities.dialect
    params = [message_id, status.value, error, owner,
              meta.fields_map["done_at"].to_db_value(now, OutboxMessage),
              meta.fields_map["result"].to_db_value(result, OutboxMessage), attempts]
    names = ("message", "status", "error", "owner", "now", "result", "attempts")
    if dialect == "postgres":
        await meta.db.execute_query(
            _numbered(f"WITH settled AS ({_SETTLE_ALL}) {_DONE}", names, dialect), params)
        return
    await meta.db.execute_query(_numbered(_SETTLE_ALL, names, dialect), params[:3])
    await meta.db.execute_query(_numbered(_DONE, names, dialect), params)


_SETTLE_ALL = """
    UPDATE outbox_delivery SET status = :status, error = :error
    WHERE message_id = :message AND status IN ('pending', 'sending', 'uncertain')"""

_DONE = """
    UPDATE outbox_message SET status = 'done', done_at = :now, result = :result,
        attempts = :attempts, lease_owner = NULL, lease_until = NULL
    WHERE id = :message AND lease_owner = :owner"""


async def at_limit(message_id: int, since: datetime, limit: int) -> dict[str, datetime]:
    """The members among a message's pending rate-limited recipients who were handed `limit`
    messages or more since `since`, each with the oldest of their last `limit` (their next
    slot opens a window after it). Usually nobody: one query with an index probe per member,
    instead of every member's history read into Python."""
    db = OutboxDelivery._meta.db
    field = OutboxDelivery._meta.fields_map["sent_at"]
    sql = _numbered(_AT_LIMIT, ("message", "since", "skip"), db.capabilities.dialect)
    rows = await db.execute_query_dict(
        sql, [message_id, field.to_db_value(since, OutboxDelivery), limit - 1])
    return {str(row["recipient"]): field.to_python_value(row["nth"]) for row in rows}


_AT_LIMIT = f"""
    SELECT recipient, nth FROM (
        SELECT d.recipient, {_NTH_LATEST} AS nth
        FROM outbox_delivery d
        WHERE d.message_id = :message AND d.status = 'pending' AND d.rate_limited) AS members
    WHERE nth IS NOT NULL"""


@dataclass(frozen=True)
class Undelivered:
    """A message that some recipients never got: the platform refused it for good, or it
    stayed retryable past every attempt."""

    message: OutboxMessage
    recipients: list[str]
    error: str


async def outbox_parked(limit: int) -> list[Undelivered]:
    """Messages with failed deliveries, the newest first."""
    ids = await OutboxDelivery.filter(status=DeliveryStatus.FAILED).distinct().order_by(
        "-message_id").limit(limit).values_list("message_id", flat=True)
    failed: dict[int, list[OutboxDelivery]] = {}
    for d in await OutboxDelivery.filter(message_id__in=list(ids),
                                         status=DeliveryStatus.FAILED).order_by("id"):
        failed.setdefault(d.message_id, []).append(d)  # type: ignore[attr-defined]
    messages = await OutboxMessage.filter(id__in=list(failed)).order_by("-id")
    return [Undelivered(m, [d.recipient for d in failed[m.id]], failed[m.id][0].error)
            for m in messages]


async def outbox_retry(ids: Sequence[int] | None, now: datetime) -> list[int]:
    """Send the failed deliveries of these messages (every such message when `ids` is None)
    again, as if just queued; the message ids put back."""
    failed = OutboxDelivery.filter(status=DeliveryStatus.FAILED)
    if ids is not None:
        failed = failed.filter(message_id__in=list(ids))
    found: list[int] = sorted(set(
        await failed.values_list("message_id", flat=True)))  # type: ignore[arg-type]
    if found:
        async with atomic():
            await OutboxDelivery.filter(message_id__in=found, status=DeliveryStatus.FAILED
                                        ).update(status=DeliveryStatus.PENDING, sent_at=None,
                                                 error="")
            await OutboxMessage.filter(id__in=found).update(
                status=OutboxStatus.PENDING, done_at=None, attempts=0, next_attempt_at=now,
                lease_owner=None, lease_until=None, last_error="")
    return found


class PlatformToken(Model):
    """An access token shared by every instance, refreshed by one of them at a time."""

    key = fields.CharField(max_length=128, primary_key=True)
    token = fields.CharField(max_length=600, default="")
    expires_at = fields.DatetimeField()
    refresh_owner = fields.CharField(max_length=64, null=True)
    refresh_until = fields.DatetimeField(null=True)

    class Meta:
        table = "platform_token"


# ---------------------------------------------------------------------------------------------
# Statements the ORM cannot express in one round trip; the same SQL on PostgreSQL and SQLite


async def insert_once(model: type[Model], rows: Sequence[dict[str, Any]], unique: str
                      ) -> dict[str, int]:
    """Multi-row INSERT … ON CONFLICT (`unique`) DO NOTHING, a batch a statement: the new rows'
    ids by their `unique` value, a value already taken left out. A repeat is a no-op rather
    than an error, which leaves a PostgreSQL transaction usable. Every column must be given:
    the database does not know the models' defaults."""
    if not rows:
        return {}
    meta = model._meta
    db = meta.db
    columns, records = _records(model, rows)
    key = meta.fields_db_projection[unique]
    new: dict[str, int] = {}
    for start in range(0, len(records), INSERT_BATCH):
        batch = records[start:start + INSERT_BATCH]
        sql = _insert_sql(meta.db_table, columns, key, len(batch), db.capabilities.dialect)
        for found in await db.execute_query_dict(sql, [v for row in batch for v in row]):
            new[str(found[key])] = int(found["id"])
    return new


async def insert_many(model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """Many new rows at once, without the ORM's per-object work (a tick writes a thousand audit
    events, an emergency ten thousand responders and deliveries). PostgreSQL takes them as one
    binary COPY, in the caller's transaction; SQLite as multi-row INSERTs. Every column must
    be given."""
    if not rows:
        return
    meta = model._meta
    db = meta.db
    columns, records = _records(model, rows)
    if db.capabilities.dialect == "postgres":
        async with db.acquire_connection() as connection:
            await connection.copy_records_to_table(meta.db_table, records=records,
                                                   columns=list(columns))
        return
    for start in range(0, len(records), INSERT_BATCH):
        batch = records[start:start + INSERT_BATCH]
        sql = _insert_sql(meta.db_table, columns, None, len(batch), db.capabilities.dialect)
        await db.execute_query(sql, [v for row in batch for v in row])


def _records(model: type[Model], rows: Sequence[dict[str, Any]]
             ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Column names and the rows as database values. Plain columns go as they are; only JSON,
    enum and time columns need the field's own conversion (done for every value, it was half
    the time of a 10,000-row insert)."""
    meta = model._meta
    names = tuple(rows[0])
    columns = tuple(meta.fields_db_projection[name] for name in names)
    # asyncpg takes aware datetimes as they are; SQLite needs the field's own conversion.
    plain = _PLAIN_FIELDS + ((fields.DatetimeField,)
                             if meta.db.capabilities.dialect == "postgres" else ())
    convert = [None if type(meta.fields_map[name]) in plain
               else meta.fields_map[name].to_db_value for name in names]
    records = [tuple(row[name] if to_db is None else to_db(row[name], model)
                     for name, to_db in zip(names, convert, strict=True)) for row in rows]
    return columns, records


_PLAIN_FIELDS = (fields.CharField, fields.TextField, fields.IntField, fields.BigIntField,
                 fields.SmallIntField, fields.BooleanField)
INSERT_BATCH = 500     # rows per statement: 13 columns stay far below SQLite's 32,766 variables


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...], unique: str | None, count: int,
                dialect: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    numbers = iter(range(1, len(columns) * count + 1))
    mark = "$" if dialect == "postgres" else "?"
    values = ", ".join("(" + ", ".join(f"{mark}{next(numbers)}" for _ in columns) + ")"
                       for _ in range(count))
    if unique is None:
        return f'INSERT INTO "{table}" ({names}) VALUES {values}'
    return (f'INSERT INTO "{table}" ({names}) VALUES {values} '
            f'ON CONFLICT ("{unique}") DO NOTHING RETURNING "id", "{unique}"')


async def _lease(model: type[Model], candidates: str, owner: str, now: datetime,
                 lease: timedelta, limit: int, returning: str = "*") -> list[dict[str, Any]]:
    """Lease the rows that `candidates` selects, in one statement; returns what `returning`
    names of them, oldest first.

    PostgreSQL locks the candidates with SKIP LOCKED, so instances claiming at the same moment
    take different rows instead of waiting for each other. SQLite runs one statement at a
    time. On both, the update re-checks that each row is still pending and unleased, so a row
    is leased by one owner at a time (compare-and-set). A row whose lease ran out (its owner
    died) keeps that owner's name in `taken_from`, for the log.

    A queue table fills faster than its statistics follow (a burst of ten thousand 收到, or
    autovacuum off): believing a few pending rows, the planner would probe the head check with
    a sequential scan per candidate, quadratic in the backlog (20 s for 10,000 waiting). So on
    PostgreSQL the claim runs on the side connection, whose sessions plan with indexes only
    (`models.SIDE`): the indexes answer both sides in arrival order, so the walk stops at
    `limit` (inbox: 0.9 ms with 10,000 waiting and no statistics at all), in one round trip."""
    db = connections.get(side())
    sql = _lease_sql(model._meta.db_table, candidates, db.capabilities.dialect, returning)
    field = model._meta.fields_map["lease_until"]
    params = [owner, field.to_db_value(now + lease, model), field.to_db_value(now, model), limit]
    return sorted(await db.execute_query_dict(sql, params), key=lambda row: int(row["id"]))


@functools.cache
def _lease_sql(table: str, candidates: str, dialect: str, returning: str) -> str:
    if dialect == "postgres":
        # The candidates are picked once, in a materialized step: left to the planner, an
        # `IN (SELECT … LIMIT … FOR UPDATE)` on a table whose statistics lag may be run again
        # for every row of the outer scan (a claim that ran for minutes in the emergency
        # benchmark). They are then found by key (`= ANY`): joined, they were matched against
        # every pending row.
        sql = f"""
    WITH picked AS MATERIALIZED ({candidates.format(lock="FOR UPDATE SKIP LOCKED")})
    UPDATE "{table}" SET taken_from = lease_owner, lease_owner = :owner, lease_until = :until
    WHERE id = ANY(ARRAY(SELECT id FROM picked))
      AND status = 'pending' AND (lease_until IS NULL OR lease_until < :now)
    RETURNING {returning}"""
    else:
        sql = f"""
    UPDATE "{table}" SET taken_from = lease_owner, lease_owner = :owner, lease_until = :until
    WHERE id IN ({candidates.format(lock="")})
      AND status = 'pending' AND (lease_until IS NULL OR lease_until < :now)
    RETURNING {returning}"""
    return _numbered(sql, ("owner", "until", "now", "limit"), dialect)


@functools.cache
def _numbered(sql: str, names: tuple[str, ...], dialect: str) -> str:
    """`:name` parameters as the dialect numbers them ($1 … on PostgreSQL, ?1 … on SQLite)."""
    mark = "$" if dialect == "postgres" else "?"
    for n, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"{mark}{n}")
    return sql
