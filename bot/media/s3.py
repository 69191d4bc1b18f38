"""The media store in an S3-compatible bucket, shared by every replica on every host.

Through aiobotocore, so MinIO, Aliyun OSS, Tencent COS and AWS S3 all serve. Two settings keep
it to what every one of them accepts: checksums only where the API requires them (botocore's
newer default, CRC32 trailers in aws-chunked bodies, is refused by OSS and COS), and the
addressing style the operator names (OSS wants virtual-hosted, MinIO path-style).

Every failure leaves here as `MediaMissing` (no such object) or `MediaUnavailable` (the bucket
is unreachable, or refuses: credentials, a missing bucket, throttling, its own errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import IO, TYPE_CHECKING, Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.media import CHUNK, DIGEST, MediaMissing, MediaStore, MediaUnavailable, Spooled, key_of

if TYPE_CHECKING:
    from bot.settings import S3Settings

PART = 8 * 1024 * 1024      # larger files go up in parts of this size (S3's least is 5 MiB)


class S3Store(MediaStore):
    def __init__(self, bucket: str, prefix: str, settings: S3Settings) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._s = settings
        self.url = f"s3://{bucket}/{self._prefix}"
        self._client: Any = None
        self._stack = AsyncExitStack()
        self._opening = asyncio.Lock()

    @classmethod
    def at(cls, url: str, settings: S3Settings) -> S3Store:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{url!r}: names no bucket (s3://bucket/prefix)")
        return cls(bucket, prefix, settings)

    def key(self, digest: str) -> str:
        return self._prefix + key_of(digest)

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with _translated(digest):
            client = await self._open()
            await client.put_object(Bucket=self._bucket, Key=self.key(digest), Body=data)
        return digest

    async def chunks(self, digest: str) -> AsyncGenerator[bytes, None]:
        with _translated(digest):
            client = await self._open()
            answer = await client.get_object(Bucket=self._bucket, Key=self.key(digest))
            async with answer["Body"] as body:
                async for chunk in body.iter_chunks(CHUNK):
                    yield chunk

    async def head(self, digest: str, size: int = 16) -> bytes:
        return await self._first(digest, size) or b""

    async def exists(self, digest: str) -> bool:
        return await self._first(digest, 1) is not None

    async def _first(self, digest: str, size: int) -> bytes | None:
        """The object's first bytes (b"" when it is empty), None when there is none. A ranged
        GET, not HEAD: a HEAD's 404 has no body to tell a missing object from a missing
        bucket, and a wrong bucket must not pass for lost photos."""
        try:
            with _translated(digest):
                client = await self._open()
                try:
                    answer = await client.get_object(Bucket=self._bucket, Key=self.key(digest),
                                                     Range=f"bytes=0-{size - 1}")
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                        return b""              # an empty object has no first byte
                    raise
                async with answer["Body"] as body:
                    return bytes(await body.read())
        except MediaMissing:
            return None

    async def digests(self) -> AsyncIterator[str]:
        with _translated(""):
            client = await self._open()
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix)
            async for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"]).rpartition("/")[2]
                    if DIGEST.fullmatch(name) and item["Key"] == self.key(name):
                        yield name

    async def _keep(self, spooled: Spooled) -> None:
        with _translated(spooled.digest):
            client = await self._open()
            key = self.key(spooled.digest)
            spooled.file.seek(0)
            if spooled.size <= PART:
                # A file object: botocore and aiohttp read it a chunk at a time.
                await client.put_object(Bucket=self._bucket, Key=key, Body=spooled.file,
                                        ContentLength=spooled.size)
                return
            await self._in_parts(client, key, spooled)

    async def _in_parts(self, client: Any, key: str, spooled: Spooled) -> None:
        """A multipart upload, each part read from the spool as it is sent (a part in memory
        would be copied again by aiohttp); abandoned parts are removed."""
        upload = await client.create_multipart_upload(Bucket=self._bucket, Key=key)
        ids = {"Bucket": self._bucket, "Key": key, "UploadId": upload["UploadId"]}
        try:
            parts = []
            for number, start in enumerate(range(0, spooled.size, PART), 1):
                size = min(PART, spooled.size - start)
                answer = await client.upload_part(
                    **ids, PartNumber=number, ContentLength=size,
                    Body=_Window(spooled.file, start, size))
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            await client.complete_multipart_upload(**ids, MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(**ids)
            raise

    async def _open(self) -> Any:
        """The client, made on first use in the running loop and kept until `close`."""
        async with self._opening:
            if self._client is None:
                s = self._s
                config = Config(
                    s3={"addressing_style": s.addressing_style},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    connect_timeout=s.timeout_seconds, read_timeout=s.timeout_seconds,
                    retries={"max_attempts": 2, "mode": "standard"},
                    max_pool_connections=32)
                self._client = await self._stack.enter_async_context(get_session().create_client(
                    "s3", endpoint_url=s.endpoint or None, region_name=s.region,
                    aws_access_key_id=s.access_key_id or None,
                    aws_secret_access_key=s.secret_access_key or None, config=config))
            return self._client

    async def close(self) -> None:
        async with self._opening:
            self._client = None
            await self._stack.aclose()


class _Window(io.RawIOBase):
    """`size` bytes of `fh` from `start`, as a file of their own that can be read and rewound
    (botocore signs the body, aiohttp sends it); closing it leaves `fh` open."""

    def __init__(self, fh: IO[bytes], start: int, size: int) -> None:
        self._fh = fh
        self._start = start
        self._size = size
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}[whence]
        self._at = min(max(base + offset, 0), self._size)
        return self._at

    def read(self, size: int = -1) -> bytes:
        """Straight from the file: RawIOBase's own would fill a buffer, then copy it."""
        left = self._size - self._at
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        self._fh.seek(self._start + self._at)
        data = self._fh.read(wanted)
        self._at += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@contextlib.contextmanager
def _translated(digest: str) -> Iterator[None]:
    """The client's errors as the store's two: missing, or unavailable for now."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "NoSuchKey":
            raise MediaMissing(digest) from None
        raise MediaUnavailable(f"media store refused: {code} {error.get('Message', '')}"
                               .strip()) from None
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise MediaUnavailable(f"media store unreachable: {type(exc).__name__}: {exc}") from None
