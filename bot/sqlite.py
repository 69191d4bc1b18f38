"""SQLite as the service uses it: a transaction takes the write lock when it begins.

tortoise begins SQLite transactions DEFERRED. When a second connection uses the same file (an
operator's `safetybot load-org` while the service runs), a transaction that has read and then
writes fails at once with "database is locked" if the other connection committed in between:
SQLite cannot let it write on a snapshot that is no longer the newest, and no busy timeout
helps. BEGIN IMMEDIATE takes the write lock first, so the second writer waits at its BEGIN
(`busy_timeout`, bot/db.py) instead of failing half-way through its work."""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionalDBClient, TransactionContext
from tortoise.backends.sqlite.client import SqliteClient as TortoiseSqliteClient
from tortoise.backends.sqlite.client import (
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.connection import get_connections
from tortoise.exceptions import OperationalError


class _ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:   # busy for longer than busy_timeout
            raise OperationalError(exc) from exc


class _ImmediateTransactionContext(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        """As tortoise's, but a BEGIN that fails (now it can wait and time out) gives the
        connection back; tortoise's would keep it locked for every later statement."""
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            await self.connection.begin()
        except BaseException:
            self._trxlock.release()
            raise
        self.token = get_connections().set(self.connection_name, self.connection)
        return self.connection


class SqliteClient(TortoiseSqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return _ImmediateTransactionContext(_ImmediateTransaction(self), self._lock)


client_class = SqliteClient  # what tortoise looks for in a configured engine module
