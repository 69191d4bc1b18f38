"""Photos and files, stored by content hash: a platform's media id expires (WeCom: 3 days), the
evidence on a ticket must not."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

_SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF8": "image/gif",
    b"#!AMR": "audio/amr",
}


def content_type(data: bytes) -> str:
    """The type the bytes say they are, not what a header claims."""
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    return "application/octet-stream"


class MediaStore:
    """A local folder; `ab/cd/<sha256>` keeps directories small."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, digest: str) -> Path:
        return self._root / digest[:2] / digest[2:4] / digest

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self.path(digest), data)
        return digest

    async def get(self, digest: str) -> bytes:
        return await asyncio.to_thread(self.path(digest).read_bytes)

    async def is_image(self, digest: str) -> bool:
        """Sniffed from the stored bytes: a file's name or header can say anything."""
        head = await asyncio.to_thread(self._head, self.path(digest))
        return content_type(head).startswith("image/")

    @staticmethod
    def _head(path: Path) -> bytes:
        try:
            with path.open("rb") as fh:
                return fh.read(16)
        except FileNotFoundError:
            return b""

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """Into a temporary file of its own beside the target, then renamed: a reader never
        sees half a file, two writers of the same bytes do not meet, and a write that fails
        (a full disk) leaves nothing behind. The OSError goes to the caller, who waits for
        the disk (bot/inbox.py)."""
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
