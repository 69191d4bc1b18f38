"""What the instances share about a platform: its access tokens, one row per app refreshed by one
instance at a time (a lease on the row), and leases on work only one instance may do at a time
(holding DingTalk's Stream connection)."""

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


class PlatformLease(Model):
    """Work only one instance may do at a time: `owner` holds it until `until`, renewing it
    while alive; once it runs out another instance takes it over."""

    key = fields.CharField(max_length=128, primary_key=True)
    owner = fields.CharField(max_length=64, default="")
    until = fields.DatetimeField()

    class Meta:
        table = "platform_lease"
