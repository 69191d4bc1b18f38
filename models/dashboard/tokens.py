"""Tokens for the JSON API (`safetybot api-token`): shown once when made, kept as a hash,
revocable; each reads only unless it was made to write."""

from __future__ import annotations

import secrets
from datetime import datetime

from tortoise import fields
from tortoise.models import Model

from models.dashboard.accounts import digest

PREFIX = "sbt_"


class ApiToken(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    token_hash = fields.CharField(max_length=64, unique=True)
    writes = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"


async def create_token(name: str, now: datetime, *, writes: bool = False) -> tuple[ApiToken, str]:
    token = PREFIX + secrets.token_urlsafe(32)
    row = await ApiToken.create(name=name, token_hash=digest(token), writes=writes,
                                created_at=now)
    return row, token


async def token_of(token: str, now: datetime) -> ApiToken | None:
    """The live token a request bears (its last use noted)."""
    if not token.startswith(PREFIX):
        return None
    row = await ApiToken.get_or_none(token_hash=digest(token), revoked_at=None)
    if row is not None:
        await ApiToken.filter(id=row.id).update(used_at=now)
    return row


async def revoke_token(token_id: int, now: datetime) -> bool:
    return bool(await ApiToken.filter(id=token_id, revoked_at=None).update(revoked_at=now))


async def all_tokens() -> list[ApiToken]:
    return await ApiToken.all().order_by("id")
