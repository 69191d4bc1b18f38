"""Tortoise models and the domain rules that change them, one module per domain."""

import contextlib
from collections.abc import AsyncIterator

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient, TransactionContext
from tortoise.transactions import in_transaction

MODEL_MODULES = ["models.org", "models.inbox", "models.outbox", "models.audit",
                 "models.webchat", "models.hazard", "models.dialog", "models.escalation",
                 "models.schedule", "models.emergency", "models.resources", "models.chats",
                 "models.training.records", "models.training.courses",
                 "models.training.learning", "models.training.enrolments",
                 "models.training.practical", "models.people.records",
                 "models.people.certificates", "models.people.profiles",
                 "models.people.checks", "models.inspection.sites",
                 "models.inspection.codes", "models.inspection.rounds",
                 "models.inspection.visits", "models.dashboard.accounts",
                 "models.dashboard.tokens"]

DATABASE = "default"  # tortoise's name of the service's database connection
# On PostgreSQL, a small pool beside the service's (bot/db.py) for short statements that must
# neither wait behind a busy pool nor join the caller's transaction: the queue claims and the
# day's ticket-number draw. Its sessions plan with indexes only, which the claims need whatever
# the statistics say (see `models.sql.lease_rows`). SQLite has one writer at a time anyway,
# so there the service's own connection serves.
SIDE = "side"


def transaction() -> TransactionContext:
    """A transaction on the service's database. Named, because on PostgreSQL tortoise also holds
    the side connection (`SIDE`)."""
    return in_transaction(DATABASE)


def side() -> str:
    """The name of the side connection, or of the service's where there is none (SQLite)."""
    return SIDE if SIDE in connections.db_config else DATABASE


@contextlib.asynccontextmanager
async def atomic() -> AsyncIterator[None]:
    """The caller's transaction if there is one, else a transaction of its own: for statements
    that must commit together but need no savepoint of their own (one round trip less each
    way on every handler's messages)."""
    if isinstance(connections.get(DATABASE), TransactionalDBClient):
        yield
        return
    async with transaction():
        yield
