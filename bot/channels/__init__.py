"""Platform channels: one module per platform, each a plug-in that the app loops over.

A platform module declares a `Plugin`: its name, when it is switched on, its `Limits`, and how it
connects in an app (`Connector`): the HTTP routes the platform calls (or a stream the service
opens to it, as DingTalk's Stream mode), and the `Channel` that renders and sends. The registry
(`bot/channels/registry.py`) lists the plug-ins in order. The dispatcher and the inbox worker
speak to every platform through `Channel`; nothing outside this package knows a platform's JSON
or error codes, and nothing here knows the handlers.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web

from bot import metrics
from bot.clock import Clock
from bot.media import content_type
from models.inbound import Inbound
from models.outgoing import File, Image, Limits, Outgoing

if TYPE_CHECKING:   # both import this package
    from bot.media import MediaStore
    from bot.settings import Settings

Sink = Callable[[Inbound], Awaitable[bool]]   # stores an inbound event; False for a duplicate


class Verdict(StrEnum):
    SENT = "sent"
    INVALID = "invalid"   # the platform refuses this recipient for good
    RETRY = "retry"       # try again after `delay` seconds
    FAILED = "failed"     # a permanent error; do not try again


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    detail: str = ""      # the platform's error code and message, for the record
    delay: float = 0.0
    uncertain: bool = False  # the platform may have carried out the call (a timeout)
    media_gone: bool = False  # the platform no longer knows the media id the message named

    @classmethod
    def sent(cls) -> Outcome:
        return cls(Verdict.SENT)

    @classmethod
    def unreachable(cls, exc: Exception) -> Outcome:
        """A timeout or a broken connection: tried again soon, and it may have gone through."""
        return cls(Verdict.RETRY, str(exc), 2.0, uncertain=True)


@dataclass(frozen=True)
class Delivery:
    """What happened to one attempt: an outcome per recipient, and what the platform returned."""

    outcomes: dict[str, Outcome]
    result: dict[str, Any]


class MediaGone(Exception):
    """The platform no longer has the file (expired or unknown media id)."""


class UploadRefused(Exception):
    """The platform did not take a file: what becomes of each delivery that was to carry it."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class PlatformUnavailable(Exception):
    """The platform is busy or down for now: what was asked can be asked again later."""


class Unreachable(PlatformUnavailable):
    """A timeout or a broken connection: the request may or may not have been carried out."""


class CodeRefused(Exception):
    """A web login's code the platform does not take: forged, used, or expired."""


class NotMember(Exception):
    """A web login's code names someone who is not a member of the organisation."""


class Channel(Protocol):
    """A platform's sending half: renders neutral messages within `limits` and delivers them."""

    platform: str
    limits: Limits
    # How long a file uploaded to the platform may be sent by its media id (bot/channels/
    # media_ids.py); None for a platform that takes no uploads (the web chat serves the store).
    media_reuse: timedelta | None

    async def upload(self, message: Image | File) -> str:
        """Upload the stored file of a picture or document: its media id. Raises UploadRefused
        when the platform does not take it."""
        ...

    def fetch_media(self, media_id: str) -> AsyncIterator[bytes]:
        """Download an inbound file a chunk at a time; raises MediaGone when it cannot ever
        succeed."""
        ...

    async def deliver(self, key: str, message: Outgoing, recipients: Sequence[str],
                      duplicate_check: float = 0.0, batch: str = "", media_id: str = ""
                      ) -> Delivery:
        """Send to these recipients (at most `limits.recipients_per_call`); never raises for
        platform errors, reports them instead. A picture or document goes by `media_id`, its
        upload to this platform (`upload`).

        `duplicate_check`: when positive, an earlier attempt may have reached them within this
        many seconds, so ask the platform to drop a copy sent within them (the dispatcher sizes
        it from `limits.duplicate_check_seconds`). `batch`: set when the message already
        reached others (these recipients waited for their rate limit, or come in a later call);
        the same for every attempt at these recipients.
        """
        ...


@dataclass(frozen=True)
class Edges:
    """What the app lends a platform: where inbound events go and what both halves share."""

    settings: Settings
    sink: Sink
    media: MediaStore
    clock: Clock
    instance: str          # this process's name, the same after a restart (token leases)
    max_upload: int        # the largest request body the app accepts


# A connection the service opens to the platform to receive (DingTalk's Stream mode): it runs
# until cancelled, stores what arrives through the sink and tells `health` how it goes (a
# failure of the environment is waited out; a bug ends it, and the process with it).
class Health(Protocol):
    """What a stream tells its supervisor (bot/supervision.py `LoopHealth` is one)."""

    def succeeded(self) -> None: ...

    def failed(self, exc: BaseException) -> float:
        """Record a failure; the seconds to wait before trying again."""
        ...


Stream = Callable[["aiohttp.ClientSession", Health], Coroutine[Any, Any, None]]


class Connector(Protocol):
    """A platform connected in one app; its inbound and sending halves share its state."""

    def routes(self) -> Sequence[web.AbstractRouteDef]:
        """The HTTP endpoints the platform (or the person's browser) calls; none for a stream."""
        ...

    def stream(self) -> Stream | None:
        """The connection to open where callbacks are answered; None for a platform that
        calls us."""
        ...

    def channel(self, session: aiohttp.ClientSession) -> Channel:
        """The sending half, for processes that run the outbox dispatcher."""
        ...


@dataclass(frozen=True)
class Plugin:
    """One platform as the app sees it: adding a platform is adding one of these (in its own
    module) to the registry."""

    platform: str                                   # the name stored with events and messages
    enabled: Callable[[Settings], bool]             # connected with these settings
    limits: Callable[[Settings], Limits]            # the same as its channel's `limits`
    connect: Callable[[Edges], Connector]


@dataclass(frozen=True)
class Upload:
    """A stored photo or document as a platform's media upload takes it, read from a temporary
    file a chunk at a time while it is sent."""

    file: IO[bytes]
    filename: str
    content_type: str

    def form(self) -> aiohttp.FormData:
        """The body of WeCom's and DingTalk's media/upload, made anew for each try (aiohttp
        closes the file it sent): the field `media`, its file name as raw UTF-8 as browsers
        send it (RFC 7578): aiohttp would percent-encode it, and a 隐患台账 would reach people
        named %E9%9A%90….xlsx."""
        handle = os.fdopen(os.dup(self.file.fileno()), "rb")
        handle.seek(0)
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("media", handle, filename=self.filename, content_type=self.content_type)
        return form


@asynccontextmanager
async def upload_of(message: Image | File, media: MediaStore) -> AsyncIterator[Upload]:
    """The file, spooled from the store (a bucket's object is never whole in memory), its name
    (a photo's after its kind, a document's as people see it) and its MIME type."""
    with tempfile.TemporaryFile() as fh:
        head = b""
        async for chunk in media.chunks(message.media):
            head = head or chunk[:16]
            await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(fh.seek, 0)
        if isinstance(message, Image):
            kind = content_type(head)
            yield Upload(fh, "photo." + ("png" if kind == "image/png" else "jpg"), kind)
        else:
            kind = mimetypes.guess_type(message.filename)[0] or "application/octet-stream"
            yield Upload(fh, message.filename, kind)


async def platform_upload(message: Image | File, media: MediaStore,
                          upload: Callable[[Upload], Awaitable[str]],
                          refused: type[Exception], outcome: Callable[[Any], Outcome]) -> str:
    """A channel's `upload`: the stored file sent by `upload`, its media id. The platform's
    error (`refused`, judged by `outcome`) or a timeout becomes UploadRefused: an upload that
    timed out only costs another one, nobody was sent anything."""
    try:
        async with upload_of(message, media) as spooled:
            return await upload(spooled)
    except refused as exc:
        raise UploadRefused(outcome(exc)) from exc
    except Unreachable as exc:
        raise UploadRefused(Outcome(Verdict.RETRY, str(exc), 2.0)) from exc


class Counted:
    """One callback in the metrics, its time and its outcome: what the handler sets as
    `result` (stored, duplicate …), the status it was refused with, or "error"."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.result = "error"
        self._started = time.perf_counter()

    def __enter__(self) -> Counted:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        if isinstance(exc, web.HTTPException):
            self.result = str(exc.status)
        metrics.CALLBACKS.labels(self.platform, self.result).inc()
        metrics.CALLBACK_SECONDS.labels(self.platform).observe(
            time.perf_counter() - self._started)


async def read_limited(request: web.Request, limit: int) -> bytes:
    """A callback's body, at most `limit` bytes: 413 beyond, whether or not Content-Length was
    honest."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)
