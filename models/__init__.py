"""Tortoise models and the domain rules that change them, one module per domain."""

from tortoise.backends.base.client import TransactionContext
from tortoise.transactions import in_transaction

MODEL_MODULES = ["models.org", "models.messaging", "models.audit", "models.webchat",
                 "models.hazard", "models.dialog", "models.escalation", "models.schedule",
                 "models.emergency", "models.chats"]

DATABASE = "default"  # tortoise's name of the service's database connection


def transaction() -> TransactionContext:
    """A transaction on the service's database. Named, because on PostgreSQL tortoise also holds
    the connection that draws ticket numbers (`models.hazard.NUMBERING`)."""
    return in_transaction(DATABASE)
