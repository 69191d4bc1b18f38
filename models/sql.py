"""Statements the ORM cannot express in one round trip, the same SQL on PostgreSQL and SQLite:
bulk inserts, and the lease that both queues claim their rows with."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections, fields
from tortoise.models import Model

from models import side


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


async def lease_rows(model: type[Model], candidates: str, owner: str, now: datetime,
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
    return numbered(sql, ("owner", "until", "now", "limit"), dialect)


@functools.cache
def numbered(sql: str, names: tuple[str, ...], dialect: str) -> str:
    """`:name` parameters as the dialect numbers them ($1 … on PostgreSQL, ?1 … on SQLite)."""
    mark = "$" if dialect == "postgres" else "?"
    for n, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"{mark}{n}")
    return sql


async def renew_leases(queue: type[Model], ids: Sequence[int], owner: str,
                       until: datetime) -> None:
    """Extend `owner`'s leases of the rows `ids` (a heartbeat: the work is still going)."""
    await queue.filter(id__in=list(ids), lease_owner=owner).update(lease_until=until)


async def release_leases(owner: str, queues: Sequence[type[Model]]) -> int:
    """A restarted instance takes back what its previous life left half-done."""
    released = 0
    for queue in queues:
        released += await queue.filter(lease_owner=owner).update(lease_owner=None,
                                                                 lease_until=None)
    return released
