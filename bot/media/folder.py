"""The media store in a local folder: one host's `serve` and `work` share it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path

from bot.media import CHUNK, DIGEST, MediaMissing, MediaStore, Spooled, key_of


class FolderStore(MediaStore):
    """`<root>/ab/cd/<sha256>`. A file is complete before it gets its name (written beside it,
    then renamed): a reader never sees half a file, two writers of the same bytes do not meet,
    and a write that fails (a full disk) leaves nothing behind. Its OSError goes to the caller,
    who waits for the disk (bot/inbox.py)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self.url = f"file://{root}"

    def path(self, digest: str) -> Path:
        return self._root / key_of(digest)

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self.path(digest), data)
        return digest

    async def chunks(self, digest: str) -> AsyncGenerator[bytes, None]:
        try:
            fh = await asyncio.to_thread(self.path(digest).open, "rb")
        except FileNotFoundError:
            raise MediaMissing(digest) from None
        with fh:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk

    async def head(self, digest: str, size: int = 16) -> bytes:
        return await asyncio.to_thread(self._head, self.path(digest), size)

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self.path(digest).is_file)

    async def digests(self) -> AsyncIterator[str]:
        for digest in await asyncio.to_thread(lambda: list(self._walk())):
            yield digest

    def _spool_dir(self) -> str:
        # On the same disk as the objects, so a finished spool is renamed into place.
        return str(self._root / ".incoming")

    async def _keep(self, spooled: Spooled) -> None:
        await asyncio.to_thread(self._place, spooled.path, self.path(spooled.digest))

    def _walk(self) -> Iterator[str]:
        for folder, _, names in os.walk(self._root):
            for name in names:
                if DIGEST.fullmatch(name) and Path(folder) / name == self.path(name):
                    yield name

    @staticmethod
    def _head(path: Path, size: int) -> bytes:
        try:
            with path.open("rb") as fh:
                return fh.read(size)
        except FileNotFoundError:
            return b""

    @staticmethod
    def _place(spool: Path, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(spool, path)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
