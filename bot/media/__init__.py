"""Photos and files, stored by content hash: a platform's media id expires (WeCom: 3 days), the
evidence on a ticket must not.

Two stores keep them the same way (`ab/cd/<sha256>`): a local folder (`folder.py`, one host) and
an S3-compatible bucket (`s3.py`: MinIO, Aliyun OSS, Tencent COS, AWS S3), which every replica on
every host shares. `SAFETYBOT_MEDIA_URL` chooses (`open_store`). Large files go through a chunk
at a time: an upload is spooled to a temporary file while it is hashed, a download is read in
chunks.

Two failures are told apart for the callers: `MediaMissing` (the object is not there; it will not
appear by waiting) and `MediaUnavailable` (the store is down or refuses: an environmental failure,
waited out as a database restart is, bot/supervision.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from bot.settings import Settings

CHUNK = 256 * 1024          # bytes read or written at a time
DIGEST = re.compile(r"[0-9a-f]{64}")

_SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF8": "image/gif",
    b"#!AMR": "audio/amr",
}


class MediaMissing(FileNotFoundError):
    """The store has no object of this hash."""


class MediaDamaged(Exception):
    """An object's bytes do not hash to its name."""


class MediaUnavailable(Exception):
    """The store cannot be reached or refuses the request for now."""


def content_type(data: bytes) -> str:
    """The type the bytes say they are, not what a header claims."""
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    return "application/octet-stream"


def key_of(digest: str) -> str:
    """Where an object lives under the store's root: `ab/cd/<digest>` keeps folders small."""
    return f"{digest[:2]}/{digest[2:4]}/{digest}"


class Spooled:
    """An incoming file written to a temporary file as it arrives, hashed on the way."""

    def __init__(self, path: Path, fh: IO[bytes]) -> None:
        self.path = path
        self.file = fh
        self.size = 0
        self._sha = hashlib.sha256()

    @property
    def digest(self) -> str:
        return self._sha.hexdigest()

    async def write(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)
        await asyncio.to_thread(self.file.write, chunk)


class MediaStore(ABC):
    """Content-addressed storage: `put` returns the SHA-256 it is kept under."""

    url: str    # where, as the operator wrote it (no secrets)

    @abstractmethod
    async def put(self, data: bytes) -> str:
        """Keep bytes already in memory (a chart, a small photo)."""

    @abstractmethod
    def chunks(self, digest: str) -> AsyncGenerator[bytes, None]:
        """The object a chunk at a time; MediaMissing when there is none."""

    @abstractmethod
    async def head(self, digest: str, size: int = 16) -> bytes:
        """The first bytes of the object, or b"" when there is none."""

    @abstractmethod
    async def exists(self, digest: str) -> bool: ...

    @abstractmethod
    def digests(self) -> AsyncIterator[str]:
        """Every object's hash, in no particular order."""

    @abstractmethod
    async def _keep(self, spooled: Spooled) -> None:
        """Store a finished spool under its digest (its file is flushed, at its end; it may
        be renamed away)."""

    def _spool_dir(self) -> str | None:
        """Where uploads are spooled (None: the system's temporary folder, `TMPDIR`)."""
        return None

    async def put_stream(self, chunks: AsyncIterable[bytes], expected: str = "") -> str:
        """Keep a file as it arrives, holding one chunk in memory: spooled to a temporary
        file while it is hashed, then stored under the hash. `expected`: a copy's hash; bytes
        that hash otherwise are damaged, and are refused (MediaDamaged) before they are kept."""
        folder = self._spool_dir()
        if folder:
            await asyncio.to_thread(os.makedirs, folder, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=folder, prefix=".spool-")
        try:
            with os.fdopen(fd, "w+b") as fh:
                spooled = Spooled(Path(name), fh)
                async for chunk in chunks:
                    await spooled.write(chunk)
                await asyncio.to_thread(fh.flush)
                if expected and spooled.digest != expected:
                    raise MediaDamaged(f"{expected}: the bytes hash to {spooled.digest}")
                await self._keep(spooled)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, name)
        return spooled.digest

    async def get(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(digest)])

    async def is_image(self, digest: str) -> bool:
        """Sniffed from the stored bytes: a file's name or header can say anything."""
        return content_type(await self.head(digest)).startswith("image/")

    async def close(self) -> None:  # noqa: B027 - a folder has nothing to let go of
        """Let go of connections (a bucket's client)."""


def open_store(settings: Settings) -> MediaStore:
    """The store `SAFETYBOT_MEDIA_URL` names: `s3://bucket/prefix`, `file:///folder`, or, when
    it is unset, the folder `SAFETYBOT_MEDIA_DIR`."""
    return store_at(settings.media_url or f"file://{settings.media_dir}", settings)


def store_at(url: str, settings: Settings) -> MediaStore:
    from bot.media.folder import FolderStore
    from bot.media.s3 import S3Store

    if url.startswith("s3://"):
        return S3Store.at(url, settings.s3)
    if url.startswith("file://"):
        return FolderStore(Path(unquote(url.removeprefix("file://"))))
    raise ValueError(f"{url!r}: a media store is s3://bucket/prefix or file:///folder")


@contextlib.asynccontextmanager
async def opened(store: MediaStore) -> AsyncIterator[MediaStore]:
    """A store used for one command, closed afterwards."""
    try:
        yield store
    finally:
        await store.close()
