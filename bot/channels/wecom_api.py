"""Async WeCom API client on aiohttp (wechatpy's client is synchronous).

The access token is shared by every instance (`SharedToken`), so gettoken is never stormed. A call
that meets an invalid or expired token refreshes and retries once, never in a loop. Error codes
are mapped to what the caller should do (chat-protocols.md §4.6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp

from bot import metrics
from bot.channels import Unreachable, Upload
from bot.channels.token import SharedToken
from bot.media import CHUNK
from bot.settings import WeComSettings

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
Form = Callable[[], aiohttp.FormData]


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


class WeComApi:
    def __init__(
        self, settings: WeComSettings, session: aiohttp.ClientSession, instance: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._s = settings
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=settings.api_timeout_seconds)
        self._token = SharedToken(f"wecom:{settings.corp_id}:{settings.agent_id}", "wecom",
                                  self._fetch_token, instance=instance, clock=clock,
                                  fetch_timeout=settings.api_timeout_seconds)

    async def token(self) -> str:
        return await self._token.get()

    async def _fetch_token(self) -> tuple[str, int]:
        data = await self._request(
            "GET", "gettoken", params={"corpid": self._s.corp_id, "corpsecret": self._s.secret})
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    # -- calls ------------------------------------------------------------------------------

    async def call(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, form: Form | None = None,
    ) -> dict[str, Any]:
        """A business call with the shared token; one refresh and retry on a token error.
        `form`: makes the multipart body, once for each try."""
        return await self._with_token(method, path, json=json, params=params, form=form)

    async def download(self, media_id: str) -> AsyncIterator[bytes]:
        """media/get, a chunk at a time: the file, or a JSON error body (told apart by
        Content-Type, §4.5)."""
        for attempt in (1, 2):
            token = await self.token()
            try:
                async with self._exchange("GET", "media/get", params={
                        "media_id": media_id, "access_token": token}) as answer:
                    if isinstance(answer, dict):
                        raise WeComError(-1, "media/get answered JSON without an errcode")
                    async for chunk in answer.content.iter_chunked(CHUNK):
                        yield chunk
                    return
            except WeComError as exc:
                await self._refused(exc, token, attempt)

    async def _with_token(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, form: Form | None = None,
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            token = await self.token()
            try:
                return await self._request(
                    method, path, params={**(params or {}), "access_token": token},
                    json=json, data=form() if form else None,
                )
            except WeComError as exc:
                await self._refused(exc, token, attempt)
        raise AssertionError("unreachable")

    async def _refused(self, exc: WeComError, token: str, attempt: int) -> None:
        """A token error on the first try forgets the token, to try once more with a fresh
        one; any other error, or a second refusal, is the caller's."""
        if exc.errcode not in TOKEN_ERRORS or attempt == 2:
            raise exc
        await self._token.forget(token)

    async def _request(
        self, method: str, path: str, *, params: Mapping[str, str],
        json: Mapping[str, Any] | None = None, data: aiohttp.FormData | None = None,
    ) -> dict[str, Any]:
        async with self._exchange(method, path, params=params, json=json, data=data) as answer:
            if not isinstance(answer, dict):
                raise WeComError(-1, f"{path} answered with a file, not JSON")
            return answer

    @asynccontextmanager
    async def _exchange(
        self, method: str, path: str, *, params: Mapping[str, str],
        json: Mapping[str, Any] | None = None, data: aiohttp.FormData | None = None,
    ) -> AsyncIterator[dict[str, Any] | aiohttp.ClientResponse]:
        """One request: its JSON answer, checked for an errcode, or the open response of a
        file (media/get), read by the caller while this holds the connection."""
        url = f"{self._s.api_base.rstrip('/')}/cgi-bin/{path}"
        try:
            async with self._session.request(
                method, url, params=params, json=json, data=data, timeout=self._timeout
            ) as resp:
                resp.raise_for_status()
                if resp.content_type not in ("application/json", "text/plain"):
                    yield resp
                    return
                body: dict[str, Any] = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            metrics.API_ERRORS.labels("wecom", path, "unreachable").inc()
            # `from None`: aiohttp's message names the URL, whose query holds the access token.
            raise Unreachable(f"{path}: {exc.__class__.__name__}") from None
        errcode = int(body.get("errcode", 0))
        if errcode:
            metrics.API_ERRORS.labels("wecom", path, str(errcode)).inc()
            raise WeComError(errcode, str(body.get("errmsg", "")))
        yield body

    async def upload(self, upload: Upload, kind: str = "image") -> str:
        body = await self.call("POST", "media/upload", params={"type": kind}, form=upload.form)
        return str(body["media_id"])
