"""Async DingTalk API client on aiohttp, for both of DingTalk's API styles.

The new style (`api.dingtalk.com/v1.0/…`, the token in the `x-acs-dingtalk-access-token` header)
says what went wrong with the HTTP status and a JSON `{"code", "message"}`; the old style
(`oapi.dingtalk.com/…?access_token=`, media upload and contacts) answers HTTP 200 with an
`errcode`. One token from `/v1.0/oauth2/accessToken` serves both and is shared by every instance
(`SharedToken`); a refused token is refreshed once, never in a loop (chat-protocols.md §7.3).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from bot import metrics
from bot.channels import Unreachable, Upload
from bot.channels.token import SharedToken
from bot.media import CHUNK
from bot.settings import DingTalkSettings

PLATFORM = "dingtalk"
# Old-style errcodes of a refused token: 40014 不合法的access_token, 42001 expired, 88 / 40001.
LEGACY_TOKEN_ERRORS = frozenset({"40014", "42001", "40001", "88"})
# Old-style errcodes worth another try later: -1 系统繁忙, 90002/90018 call-frequency limits
# (§7.5); 90020 is the month's API quota, which a retry within the month cannot help.
LEGACY_BUSY = {"-1": 1.0, "90002": 20.0, "90018": 20.0}


class DingTalkError(Exception):
    """An answer DingTalk refused: `status` is the HTTP status (200 for an old-style errcode)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"dingtalk {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def token_refused(self) -> bool:
        return (self.status == 401 or self.code == "InvalidAuthentication"
                or (self.status == 200 and self.code in LEGACY_TOKEN_ERRORS))

    @property
    def quota_spent(self) -> bool:
        """The organisation's monthly API quota is used up (§7.5): nothing helps this month."""
        return self.code == "90020" or "ApiCountLimit" in self.code

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, or None when trying again cannot help."""
        if self.status == 429 or "Throttling" in self.code or "flowControl" in self.code:
            return 20.0
        if self.status >= 500:
            return 2.0                      # 504: DingTalk's gateway gave up after 3 s (§7.3)
        return LEGACY_BUSY.get(self.code) if self.status == 200 else None


class DingTalkApi:
    def __init__(self, settings: DingTalkSettings, session: aiohttp.ClientSession, instance: str,
                 clock: Callable[[], datetime]) -> None:
        self._s = settings
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=settings.api_timeout_seconds)
        self._token = SharedToken(f"dingtalk:{settings.client_id}", PLATFORM, self._fetch_token,
                                  instance=instance, clock=clock,
                                  fetch_timeout=settings.api_timeout_seconds)

    async def token(self) -> str:
        return await self._token.get()

    async def _fetch_token(self) -> tuple[str, int]:
        body = await self._json("POST", self._s.api_base, "v1.0/oauth2/accessToken", json={
            "appKey": self._s.client_id, "appSecret": self._s.client_secret})
        return str(body["accessToken"]), int(body.get("expireIn", 7200))

    async def call(self, method: str, path: str, *,
                   json: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A new-style call (`{api_base}/v1.0/{path}`) with the shared token."""
        for attempt in (1, 2):
            token = await self.token()
            try:
                return await self._json(method, self._s.api_base, f"v1.0/{path}", json=json,
                                        headers={"x-acs-dingtalk-access-token": token})
            except DingTalkError as exc:
                if not exc.token_refused or attempt == 2:
                    raise
                await self._token.forget(token)
        raise AssertionError("unreachable")

    async def unsigned(self, method: str, path: str, *, json: Mapping[str, Any] | None = None,
                       headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A new-style call (`{api_base}/v1.0/{path}`) without the app's token: made with
        the app's credentials in the body, or a person's own token in `headers`."""
        return await self._json(method, self._s.api_base, f"v1.0/{path}", json=json,
                                headers=headers)

    async def legacy(self, path: str, *, json: Mapping[str, Any] | None = None,
                     params: Mapping[str, str] | None = None,
                     form: Callable[[], aiohttp.FormData] | None = None) -> dict[str, Any]:
        """An old-style call (`{oapi_base}/{path}?access_token=…`); an errcode raises.
        `form`: makes the multipart body, once for each try."""
        for attempt in (1, 2):
            token = await self.token()
            try:
                body = await self._json("POST", self._s.oapi_base, path, json=json,
                                        data=form() if form else None,
                                        params={**(params or {}), "access_token": token})
                code = str(body.get("errcode", 0))
                if code != "0":
                    metrics.API_ERRORS.labels(PLATFORM, path, code).inc()
                    raise DingTalkError(200, code, str(body.get("errmsg", "")))
                return body
            except DingTalkError as exc:
                if not exc.token_refused or attempt == 2:
                    raise
                await self._token.forget(token)
        raise AssertionError("unreachable")

    async def fetch(self, url: str) -> AsyncIterator[bytes]:
        """A file from a temporary download URL (a robot message's picture), a chunk at a
        time."""
        try:
            async with self._session.get(url, timeout=self._timeout) as resp:
                if resp.status >= 400:
                    raise DingTalkError(resp.status, "download", f"HTTP {resp.status}")
                async for chunk in resp.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(f"download: {exc.__class__.__name__}") from None

    async def upload(self, upload: Upload, kind: str) -> str:
        """media/upload (old style): the media id a robot message can show (§7.3)."""
        body = await self.legacy("media/upload", params={"type": kind}, form=upload.form)
        return str(body["media_id"])

    async def _json(self, method: str, base: str, path: str, *,
                    json: Mapping[str, Any] | None = None,
                    params: Mapping[str, str] | None = None,
                    data: aiohttp.FormData | None = None,
                    headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"{base.rstrip('/')}/{path}"
        try:
            async with self._session.request(method, url, json=json, params=params, data=data,
                                             headers=headers, timeout=self._timeout) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                if resp.status >= 400 or not isinstance(body, dict):
                    answer = body if isinstance(body, dict) else {}
                    code = str(answer.get("code") or f"http{resp.status}")
                    metrics.API_ERRORS.labels(PLATFORM, path, code).inc()
                    raise DingTalkError(resp.status, code, str(answer.get("message", "")))
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            metrics.API_ERRORS.labels(PLATFORM, path, "unreachable").inc()
            # `from None`: aiohttp's message names the URL, whose query may hold the token.
            raise Unreachable(f"{path}: {exc.__class__.__name__}") from None
