"""What the WeCom and DingTalk simulators do alike, written once.

The machinery, not the protocol: an aiohttp server on loopback and the client session that posts
callbacks to our service; recording what people received and waiting for it; the queue of faults
`fail_next`/`hang_next` plant in the next calls of a path; an access token reused while valid; a
sliding minute of sends per person. How a platform answers (WeCom's errcode inside HTTP 200,
DingTalk's HTTP statuses), its crypto, Stream gateway and cards stay in its own module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Self, TypeAlias, TypeVar

import aiohttp
from aiohttp import web

Clock: TypeAlias = Callable[[], float]

RATE_WINDOW = 60.0                # per-person send limits count a sliding minute


# Each platform module subclasses Delivered and Media under the same names, so that its records
# stay types of their own (`wecom.Delivered` is not `dingtalk.Delivered`), their fields written
# once.

@dataclass(frozen=True)
class Delivered:
    """One message that reached one person's client."""

    user: str
    msgtype: str
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class Media:
    """An upload, or a file a person sent; `created_at` in the platform's own unit."""

    data: bytes
    content_type: str
    filename: str
    created_at: int
    kind: str = "image"          # the `type` it was uploaded as


@dataclass(frozen=True)
class Fault:
    """What `fail_next` or `hang_next` planted in one call; a platform adds how it fails."""

    hang: float = 0.0            # seconds the answer is held back


@dataclass(frozen=True)
class UploadRules:
    """What a platform's media/upload takes, and the errcodes it answers otherwise."""

    limits: Mapping[str, int]            # each `type` and the most bytes it takes
    more_than: int                       # the bytes a file must exceed
    error: Callable[[int], Exception]    # the platform's errcode error
    bad_type: int
    no_file: int
    bad_size: int


ItemT = TypeVar("ItemT", bound=Delivered)
FaultT = TypeVar("FaultT", bound=Fault)


class PlatformSimulator(ABC, Generic[ItemT, FaultT]):
    """A platform served on loopback: lifecycle, what people received, faults, token, rate.

    A subclass builds its `web.Application` (`_application`), names the API paths faults may be
    planted in (`_api_paths`), makes its tokens (`_new_token`) and sets the class attributes
    below.
    """

    _fault_type: type[FaultT]                # a fault that does nothing, when called bare
    _callback_timeout: aiohttp.ClientTimeout
    _not_started: str                        # the RuntimeErrors of a misused simulator
    _no_callback_url: str

    def __init__(self, clock: Clock, token_ttl: int) -> None:
        self.token_ttl = token_ttl
        self.base_url = ""
        self.callback_url = ""
        self.latency = 0.0                       # seconds added to every API answer
        self.calls: dict[str, int] = {}
        self.token_fetches = 0
        self.delivered: list[ItemT] = []
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._faults: dict[str, deque[FaultT]] = {}
        self._inboxes: dict[str, list[ItemT]] = {}
        self._recent: dict[str, deque[float]] = {}
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @abstractmethod
    def _application(self) -> web.Application:
        """The server's routes, built at each start."""

    @abstractmethod
    def _api_paths(self) -> list[str]:
        """The paths `fail_next` and `hang_next` accept, as `calls` counts them."""

    @abstractmethod
    def _new_token(self) -> str: ...

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = self._application()
        self._closing.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession(timeout=self._callback_timeout)
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()             # wakes handlers held by hang_next
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults ---------------------------------------------------------------------------

    def hang_next(self, path: str, seconds: float, times: int = 1) -> None:
        """Carry out the call but hold the answer: the client's ambiguous timeout."""
        self._queue_faults(path, self._fault_type(hang=seconds), times)

    def _queue_faults(self, path: str, fault: FaultT, times: int) -> None:
        known = self._api_paths()
        if path not in known:
            raise ValueError(f"unknown API path {path!r}; known: {', '.join(known)}")
        self._faults.setdefault(path, deque()).extend([fault] * times)

    def _take_fault(self, name: str) -> FaultT:
        """The first step of every API call: count it, and take the fault planted in it."""
        self.calls[name] = self.calls.get(name, 0) + 1
        queued = self._faults.get(name)
        return queued.popleft() if queued else self._fault_type()

    async def _pause(self, seconds: float) -> None:
        """Hold an answer `seconds`, or until the simulator stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._closing.wait()

    # -- what people received -------------------------------------------------------------

    def messages_for(self, user: str) -> list[ItemT]:
        """What `user` received, in arrival order."""
        return list(self._inboxes.get(self._inbox_key(user), []))

    async def wait_for(self, user: str, count: int = 1,
                       timeout: float = 5.0) -> list[ItemT]:  # noqa: ASYNC109
        """`user`'s messages once there are at least `count` of them."""
        inbox = self._inboxes.setdefault(self._inbox_key(user), [])
        await self.until(lambda: len(inbox) >= count, timeout,
                         lambda: f"{user} received {len(inbox)} of {count} messages")
        return list(inbox)

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0,  # noqa: ASYNC109
                    explain: Callable[[], str] = lambda: "condition not met") -> None:
        """Wait until `condition()` holds, re-checked whenever the simulator records something."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(condition)
        except TimeoutError:
            raise TimeoutError(f"{explain()} after {timeout} s") from None

    async def _recorded(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _inbox_key(self, user: str) -> str:
        """The inbox a user id names; exact unless the platform folds case."""
        return user

    def _add_to_inbox(self, item: ItemT) -> None:
        self.delivered.append(item)
        self._inboxes.setdefault(self._inbox_key(item.user), []).append(item)

    def _within_rate(self, who: str, now: float, most: int) -> bool:
        """Count a send to `who` in the sliding minute, unless `most` are there already."""
        recent = self._recent.setdefault(who, deque())
        while recent and now - recent[0] >= RATE_WINDOW:
            recent.popleft()
        if len(recent) >= most:
            return False
        recent.append(now)
        return True

    # -- the access token -----------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, int]:
        """The same token while it is valid, a new one after; with its seconds left."""
        now = self._clock()
        if self._token is None or now >= self._token_expires:
            self.expire_tokens()
            self._token = self._new_token()
            self._token_expires = now + self.token_ttl
        self.token_fetches += 1
        return self._token, math.ceil(self._token_expires - now)

    def _token_valid(self, token: str) -> bool:
        return bool(token) and token == self._token and self._clock() < self._token_expires

    def expire_tokens(self) -> None:
        """Either platform may invalidate a token before its expires_in (WeCom §4.1) or
        expireIn (DingTalk)."""
        self._token = None

    # -- calling our service --------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(self._not_started)
        return self._session

    def _callback(self) -> str:
        if not self.callback_url:
            raise RuntimeError(self._no_callback_url)
        return self.callback_url


async def read_upload(request: web.Request,
                      rules: UploadRules) -> tuple[str, web.FileField, bytes]:
    """media/upload's `type` and its multipart `media` file, with the file's bytes."""
    kind = request.query.get("type", "")
    if kind not in rules.limits:
        raise rules.error(rules.bad_type)
    form = await request.post()
    part = form.get("media")
    if not isinstance(part, web.FileField):
        raise rules.error(rules.no_file)
    data = part.file.read()
    if not rules.more_than < len(data) <= rules.limits[kind]:
        raise rules.error(rules.bad_size)
    return kind, part, data


async def json_object(request: web.Request,
                      invalid: Callable[[], Exception]) -> dict[str, Any]:
    """The request's body, which must be a JSON object; else the platform's `invalid()`."""
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise invalid() from None
    if not isinstance(body, dict):
        raise invalid()
    return body


def json_answer(answer: dict[str, Any], status: int = 200) -> web.Response:
    """An answer as JSON, its non-ASCII text left unescaped."""
    return web.json_response(answer, status=status,
                             dumps=partial(json.dumps, ensure_ascii=False))
