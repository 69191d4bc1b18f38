"""What the instances share about a platform: its access tokens, one row per app refreshed by one
instance at a time (a lease on the row), and leases on work only one instance may do at a time
(holding DingTalk's Stream connection)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model

from bot import metrics
from bot.channels import Unreachable

log = logging.getLogger(__name__)


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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REFRESH_MARGIN = timedelta(minutes=5)     # refresh this long before the platform's expiry

# What fetches a fresh token from the platform: the token and its lifetime in seconds.
Fetch = Callable[[], Awaitable[tuple[str, int]]]


class SharedToken:
    """One platform app's access token, shared by every instance through its row: one instance
    refreshes while the others wait for its result, so the token API is never stormed
    (chat-protocols.md §8.3)."""

    def __init__(self, key: str, platform: str, fetch: Fetch, *, instance: str,
                 clock: Callable[[], datetime], fetch_timeout: float) -> None:
        self._key = key
        self._platform = platform
        self._fetch = fetch
        self._instance = instance
        self._clock = clock
        self._cached: tuple[str, datetime] | None = None
        self._refreshing = asyncio.Lock()
        # How long one instance may hold the refresh: its fetch times out well before, so a
        # holder that died frees it soon and the others are not kept waiting for long.
        self._refresh_lease = timedelta(seconds=2 * fetch_timeout)

    async def get(self) -> str:
        now = self._clock()
        if self._cached and self._cached[1] - now > REFRESH_MARGIN:
            return self._cached[0]
        async with self._refreshing:
            return await self._shared()

    async def forget(self, token: str) -> None:
        """The token was refused: make sure nobody uses it again (unless already replaced)."""
        self._cached = None
        await PlatformToken.filter(key=self._key, token=token).update(expires_at=EPOCH)

    async def _shared(self) -> str:
        deadline = self._clock() + 2 * self._refresh_lease   # past a dead holder's lease
        while True:
            now = self._clock()
            row = await PlatformToken.get_or_none(key=self._key)
            if row and row.token and row.expires_at - now > REFRESH_MARGIN:
                self._cached = (row.token, row.expires_at)
                return row.token
            if await self._claim_refresh(now):
                return await self._refresh(now)
            if row and row.token and row.expires_at > now:
                return row.token          # another instance is refreshing; this one still works
            if now > deadline:
                raise Unreachable("timed out waiting for another instance's token refresh")
            await asyncio.sleep(0.05)

    async def _claim_refresh(self, now: datetime) -> bool:
        await PlatformToken.get_or_create(key=self._key, defaults={"expires_at": EPOCH})
        # The claim also re-checks staleness: another instance may have stored a fresh token
        # between our read and this update, and must not be followed by a second fetch.
        won = await (
            PlatformToken.filter(key=self._key, expires_at__lte=now + REFRESH_MARGIN)
            .filter(Q(refresh_until__isnull=True) | Q(refresh_until__lt=now))
            .update(refresh_owner=self._instance, refresh_until=now + self._refresh_lease)
        )
        return bool(won)

    async def _refresh(self, now: datetime) -> str:
        try:
            token, lifetime = await self._fetch()
        except BaseException:
            await PlatformToken.filter(key=self._key, refresh_owner=self._instance).update(
                refresh_owner=None, refresh_until=None
            )
            raise
        expires_at = now + timedelta(seconds=lifetime)
        await PlatformToken.filter(key=self._key).update(
            token=token, expires_at=expires_at, refresh_owner=None, refresh_until=None
        )
        metrics.TOKEN_REFRESHES.labels(self._platform).inc()
        log.info("%s access token refreshed", self._platform,
                 extra={"expires_at": expires_at.isoformat()})
        self._cached = (token, expires_at)
        return token


async def hold_lease(key: str, owner: str, now: datetime, length: timedelta) -> bool:
    """Take the lease, or renew it when `owner` holds it; False while another holds it."""
    await PlatformLease.get_or_create(key=key, defaults={"until": EPOCH})
    taken = await (PlatformLease.filter(key=key)
                   .filter(Q(owner=owner) | Q(until__lt=now))
                   .update(owner=owner, until=now + length))
    return bool(taken)


async def release_lease(key: str, owner: str) -> None:
    """Give the lease up at once (a clean stop), so another instance need not wait it out."""
    await PlatformLease.filter(key=key, owner=owner).update(owner="", until=EPOCH)
