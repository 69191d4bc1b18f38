"""A real S3-compatible server on loopback for the media store's tests: moto's standalone server
in a process of its own, a fresh bucket per test, and a relay in front of it that can take the
store away (connections refused) and bring it back with everything it held."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from aiobotocore.session import get_session

from tests.harness import free_port

KEYS = {"s3_access_key_id": "test-key", "s3_secret_access_key": "test-secret"}


class S3Server:
    def __init__(self, proc: subprocess.Popen[bytes], endpoint: str) -> None:
        self.proc = proc
        self.endpoint = endpoint


@contextlib.contextmanager
def s3_server(log: Path) -> Iterator[S3Server]:
    """`moto_server` on a free port, until it answers."""
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    with log.open("ab") as out:   # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=out, env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"moto_server did not start: see {log}")
            time.sleep(0.05)
        yield S3Server(proc, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)


async def new_bucket(endpoint: str) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    async with get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=KEYS["s3_access_key_id"],
            aws_secret_access_key=KEYS["s3_secret_access_key"]) as client:
        await client.create_bucket(Bucket=name)
    return name


def store_settings(endpoint: str, bucket: str, prefix: str = "plant") -> dict[str, str]:
    """The service's settings overrides (service_settings, spawn) for a bucket's store."""
    return {"media_url": f"s3://{bucket}/{prefix}", "s3_endpoint": endpoint,
            "s3_addressing_style": "path", "s3_timeout_seconds": "2", **KEYS}


class Relay:
    """A TCP relay on loopback in front of the S3 server: `down()` closes its port and cuts
    the connections open through it, as a store that went away; `up()` opens it again."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self._target = (host, int(port))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        tasks = {asyncio.create_task(pipe(reader, up_writer)),
                 asyncio.create_task(pipe(up_reader, writer))}
        self._pipes |= tasks
        try:
            await asyncio.gather(*tasks)
        finally:
            self._pipes -= tasks
