"""Async WeCom API client on aiohttp (wechatpy's client is synchronous).

The access token is shared by every instance through the `platform_token` row: one instance
refreshes while the others wait for its result, so gettoken is never stormed. A call that meets
an invalid or expired token refreshes and retries once, never in a loop. Error codes are mapped
to what the caller should do (chat-protocols.md §4.6).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from tortoise.expressions import Q

from bot import metrics
from bot.channels import PlatformUnavailable
from bot.channels.token import PlatformToken
from bot.settings import WeComSettings

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REFRESH_MARGIN = timedelta(minutes=5)     # refresh this long before WeCom's expiry


class WeComError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"wecom errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, or None when trying again cannot help."""
        if self.errcode == -1:
            return 0.5                    # 系统繁忙: a few spaced retries (0.5 s, 2 s, 8 s …)
        if self.errcode == 45009:
            return 60.0                   # API frequency limit: a minute-long ban
        if self.errcode == 45033:
            return 5.0                    # too many concurrent calls
        return None


class Unreachable(PlatformUnavailable):
    """A timeout or a broken connection: the request may or may not have been carried out."""


class WeComApi:
    def __init__(
        self, settings: WeComSettings, session: aiohttp.ClientSession, instance: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._s = settings
        self._session = session
        self._instance = instance
        self._clock = clock
        self._key = f"wecom:{settings.corp_id}:{settings.agent_id}"
        self._cached: tuple[str, datetime] | None = None
        self._refreshing = asyncio.Lock()
        self._timeout = aiohttp.ClientTimeout(total=settings.api_timeout_seconds)
        # How long one instance may hold the refresh: its gettoken times out well before, so a
        # holder that died frees it soon and the others are not kept waiting for long.
        self._refresh_lease = timedelta(seconds=2 * settings.api_timeout_seconds)

    # -- token ------------------------------------------------------------------------------

    async def token(self) -> str:
        now = self._clock()
        if self._cached and self._cached[1] - now > REFRESH_MARGIN:
            return self._cached[0]
        async with self._refreshing:
            return await self._shared_token()

    async def _shared_token(self) -> str:
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
        # between our read and this update, and must not be followed by a second gettoken.
        won = await (
            PlatformToken.filter(key=self._key, expires_at__lte=now + REFRESH_MARGIN)
            .filter(Q(refresh_until__isnull=True) | Q(refresh_until__lt=now))
            .update(refresh_owner=self._instance, refresh_until=now + self._refresh_lease)
        )
        return bool(won)

    async def _refresh(self, now: datetime) -> str:
        try:
            data = await self._request(
                "GET", "gettoken",
                params={"corpid": self._s.corp_id, "corpsecret": self._s.secret},
            )
        except BaseException:
            await PlatformToken.filter(key=self._key, refresh_owner=self._instance).update(
                refresh_owner=None, refresh_until=None
            )
            raise
        if not isinstance(data, dict):
            raise WeComError(-1, "gettoken answered with a file, not JSON")
        token = str(data["access_token"])
        expires_at = now + timedelta(seconds=int(data.get("expires_in", 7200)))
        await PlatformToken.filter(key=self._key).update(
            token=token, expires_at=expires_at, refresh_owner=None, refresh_until=None
        )
        metrics.TOKEN_REFRESHES.labels("wecom").inc()
        log.info("wecom access token refreshed", extra={"expires_at": expires_at.isoformat()})
        self._cached = (token, expires_at)
        return token

    async def _forget(self, token: str) -> None:
        """The token was refused: make sure nobody uses it again (unless already replaced)."""
        self._cached = None
        await PlatformToken.filter(key=self._key, token=token).update(expires_at=EPOCH)

    # -- calls ------------------------------------------------------------------------------

    async def call(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, data: aiohttp.FormData | None = None,
    ) -> dict[str, Any]:
        """A business call with the shared token; one refresh and retry on a token error."""
        body = await self._with_token(method, path, json=json, params=params, data=data)
        if not isinstance(body, dict):
            raise WeComError(-1, f"{path} answered with a file, not JSON")
        return body

    async def download(self, media_id: str) -> bytes:
        """media/get: the file, or a JSON error body (told apart by Content-Type, §4.5)."""
        body = await self._with_token("GET", "media/get", params={"media_id": media_id})
        if isinstance(body, dict):
            raise WeComError(-1, "media/get answered JSON without an errcode")
        return body

    async def _with_token(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, data: aiohttp.FormData | None = None,
    ) -> dict[str, Any] | bytes:
        for attempt in (1, 2):
            token = await self.token()
            try:
                return await self._request(
                    method, path, params={**(params or {}), "access_token": token},
                    json=json, data=data,
                )
            except WeComError as exc:
                if exc.errcode not in TOKEN_ERRORS or attempt == 2:
                    raise
                await self._forget(token)
        raise AssertionError("unreachable")

    async def _request(
        self, method: str, path: str, *, params: Mapping[str, str],
        json: Mapping[str, Any] | None = None, data: aiohttp.FormData | None = None,
    ) -> dict[str, Any] | bytes:
        url = f"{self._s.api_base.rstrip('/')}/cgi-bin/{path}"
        try:
            async with self._session.request(
                method, url, params=params, json=json, data=data, timeout=self._timeout
            ) as resp:
                resp.raise_for_status()
                if resp.content_type not in ("application/json", "text/plain"):
                    return await resp.read()          # a file from media/get
                body: dict[str, Any] = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            metrics.API_ERRORS.labels("wecom", path, "unreachable").inc()
            # `from None`: aiohttp's message names the URL, whose query holds the access token.
            raise Unreachable(f"{path}: {exc.__class__.__name__}") from None
        errcode = int(body.get("errcode", 0))
        if errcode:
            metrics.API_ERRORS.labels("wecom", path, str(errcode)).inc()
            raise WeComError(errcode, str(body.get("errmsg", "")))
        return body

    async def upload(self, data: bytes, filename: str, content_type: str,
                     kind: str = "image") -> str:
        # The name as raw UTF-8, as browsers and requests send it (RFC 7578): aiohttp would
        # percent-encode it, and a 隐患台账 would reach people named %E9%9A%90….xlsx.
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("media", data, filename=filename, content_type=content_type)
        body = await self.call("POST", "media/upload", params={"type": kind}, data=form)
        return str(body["media_id"])
