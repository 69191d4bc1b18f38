"""The outbox queue: every outgoing message durable and sent once per idempotency key, with the
per-person rate window and each recipient's delivery settled apart. Races between workers and
instances are decided by compare-and-set updates, which work on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise import connections, fields
from tortoise.models import Model

from models import atomic, side
from models.chats import chat_platforms
from models.org import addresses
from models.outgoing import (
    CHAT_PREFIX,
    RATE_LIMITED,
    Card,
    CardUpdate,
    GroupCreate,
    GroupUpdate,
    Outgoing,
    Priority,
    outgoing_from_payload,
    outgoing_to_payload,
)
from models.sql import insert_many, insert_once, lease_rows, numbered


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
    sender: tuple[str, str] | None = None,
) -> bool:
    """Queue a message once per idempotency key; False when the key was queued before.

    Call it inside the transaction that decided to send, so the decision and the message commit
    together.
    """
    return bool(await enqueue_many([Queued(key, message, to_users, to_chat)], now=now,
                                   platform=platform, priority=priority, sender=sender))


async def enqueue_many(items: Sequence[Queued], *, now: datetime, platform: str,
                       priority: Priority = Priority.ROUTINE,
                       sender: tuple[str, str] | None = None) -> int:
    """Queue messages in two statements however many there are (a scheduler tick may queue a
    thousand); keys queued before are skipped. Returns how many were new.

    Each recipient is reached on their own platform (`models.org.addresses`): `platform` for
    people without one and for chats the service does not know; `sender` (person, platform),
    the person whose event is being handled, where they wrote from. A message whose people sit
    on two platforms becomes one message per platform: the first keeps the key, the others
    add `|platform` to it."""
    people = {u for item in items for u in (*item.to_users, *_named_in(item.message)) if u}
    if sender:
        people.add(sender[0])
    where = await addresses(people, platform, sender) if people else {}
    chats = await chat_platforms({_chat_of(item) for item in items} - {""})
    rows, recipients = [], {}
    for item in items:
        for key, on, message, to in _by_platform(item, where, chats, platform, sender):
            recipients[key] = (to, message.type in RATE_LIMITED and not item.to_chat)
            # A lone person's messages keep their order ("没有找到该区域" before the question
            # asked again), and so do a group chat's (an emergency's map after its text, the
            # close after the start); messages to many and card updates wait for nothing.
            single = len(to) == 1 and not to[0].startswith("card:")
            rows.append({
                "idempotency_key": key, "platform": on, "kind": message.type,
                "payload": outgoing_to_payload(message), "priority": int(priority),
                "status": OutboxStatus.PENDING, "attempts": 0, "next_attempt_at": now,
                "created_at": now, "result": {}, "last_error": "",
                "thread": f"{on}:{int(priority)}:{to[0]}"[:100] if single else "",
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


def _named_in(message: Outgoing) -> tuple[str, ...]:
    """The people a message names inside it (a group's members), reached by their ids there."""
    if isinstance(message, GroupCreate):
        return (message.owner, *message.members)
    if isinstance(message, GroupUpdate):
        return (message.owner, *message.add, *message.remove)
    return ()


def _chat_of(item: Queued) -> str:
    message = item.message
    return message.chat_id if isinstance(message, GroupCreate | GroupUpdate) else item.to_chat


def _by_platform(item: Queued, where: dict[str, tuple[str, str]], chats: dict[str, str],
                 home: str, sender: tuple[str, str] | None
                 ) -> list[tuple[str, str, Outgoing, list[str]]]:
    """(key, platform, message, recipients there) for each platform `item` goes to."""
    message = item.message
    if isinstance(message, CardUpdate):
        # A click's card is updated where it was clicked, with the ids people have there.
        on = sender[1] if sender else home
        ids = tuple(where[u][1] if u in where else u for u in message.users)
        return [(item.key, on, replace(message, users=ids), [f"card:{message.response_code}"])]
    if chat := _chat_of(item):
        if isinstance(message, Card):
            raise ValueError("cards cannot go to group chats; send each person a card")
        on = chats.get(chat, home)

        def ids_there(people: Sequence[str]) -> tuple[str, ...]:
            """A group lives on one platform: its members there, by their ids there (the
            others hear of its news in their own messages)."""
            return tuple(where[p][1] for p in people if p in where and where[p][0] == on)

        if isinstance(message, GroupCreate):
            [owner] = ids_there([message.owner]) or [message.owner]
            message = replace(message, owner=owner, members=ids_there(message.members))
        elif isinstance(message, GroupUpdate):
            owner = (ids_there([message.owner]) or [message.owner])[0] if message.owner else ""
            message = replace(message, add=ids_there(message.add),
                              remove=ids_there(message.remove), owner=owner)
        return [(item.key, on, message, [CHAT_PREFIX + chat])]
    users = list(dict.fromkeys(u for u in item.to_users if u))
    if not users:
        raise ValueError("a message needs at least one recipient")
    grouped: dict[str, list[str]] = {}
    for user in users:
        on, there = where.get(user, (home, user))
        grouped.setdefault(on, []).append(there)
    order = sorted(grouped, key=lambda p: (p != home, p))
    return [(item.key if n == 0 else f"{item.key}|{on}", on, message, grouped[on])
            for n, on in enumerate(order)]


async def all_queued(keys: Collection[str]) -> bool:
    """Whether every one of these idempotency keys was queued before: a job that sends a set
    of messages once learns it before building them (a month's chart and ledger)."""
    return await OutboxMessage.filter(idempotency_key__in=list(keys)).count() == len(keys)


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
    rows = await lease_rows(OutboxMessage, _OUTBOX_DUE, owner, now, lease, limit,
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


async def take(message_id: int, now: datetime, since: datetime, limit: int | None
               ) -> set[int]:
    """Hand over (`sending` as of `now`) a message's pending deliveries, except to members who
    were handed `limit` messages or more since `since`; returns the ids handed over. One
    statement, the count and the change together.

    With no limit (the platform has none) every pending delivery is handed over, and none
    counts against a limit afterwards: the same person's id on a platform with a limit is
    not held back by what they were sent here."""
    db = OutboxDelivery._meta.db
    field = OutboxDelivery._meta.fields_map["sent_at"]
    if limit is None:
        sql = numbered(_TAKE_ALL, ("message", "now"), db.capabilities.dialect)
        rows = await db.execute_query_dict(
            sql, [message_id, field.to_db_value(now, OutboxDelivery)])
        return {int(row["id"]) for row in rows}
    sql = numbered(_TAKE, ("message", "now", "since", "skip"), db.capabilities.dialect)
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

_TAKE_ALL = """
    UPDATE outbox_delivery SET status = 'sending', sent_at = :now, rate_limited = FALSE
    WHERE message_id = :message AND status = 'pending'
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
            numbered(f"WITH settled AS ({_SETTLE_ALL}) {_DONE}", names, dialect), params)
        return
    await meta.db.execute_query(numbered(_SETTLE_ALL, names, dialect), params[:3])
    await meta.db.execute_query(numbered(_DONE, names, dialect), params)


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
    sql = numbered(_AT_LIMIT, ("message", "since", "skip"), db.capabilities.dialect)
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
