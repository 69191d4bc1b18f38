"""The platforms' access tokens, one row per app, shared by every instance and refreshed by one
of them at a time (a lease on the row)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class PlatformToken(Model):
    """An access token shared by every instance, refreshed by one of them at a time."""

    key = fields.CharField(max_length=128, primary_key=True)
    token = fields.CharField(max_length=600, default="")
    expires_at = fields.DatetimeField()
    refresh_owner = fields.CharField(max_length=64, null=True)
    refresh_until = fields.DatetimeField(null=True)

    class Meta:
        table = "platform_token"
