"""The media store, in a local folder and in an S3-compatible bucket (moto's server on loopback):
the same contract for both, large files a chunk at a time, and a bucket that goes away while a
worker reports (the photo waits, the worker is told once, it is handled when the bucket is back,
nothing lost)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.context import TortoiseContext

from bot import logs
from bot.media import CHUNK, MediaMissing, MediaStore, MediaUnavailable
from bot.media.folder import FolderStore
from bot.media.s3 import PART, S3Store
from bot.settings import S3Settings
from bot.supervision import environmental
from models.outbox import DeliveryStatus, OutboxDelivery, OutboxMessage
from models.outgoing import Image
from simulator.photos import photo
from tests.harness import cli
from tests.integration.test_outbox import make_world
from tests.integration.test_resilience import photo_waits_then_is_handled
from tests.s3 import KEYS, Relay, S3Server, new_bucket, store_settings


def bucket_store(endpoint: str, bucket: str) -> S3Store:
    return S3Store.at(f"s3://{bucket}/plant", S3Settings(
        endpoint=endpoint, addressing_style="path", timeout_seconds=2,
        access_key_id=KEYS["s3_access_key_id"], secret_access_key=KEYS["s3_secret_access_key"]))


@pytest.fixture(params=["folder", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStore]:
    if request.param == "folder":
        yield FolderStore(tmp_path / "media")
        return
    s3: S3Server = request.getfixturevalue("s3")
    bucket = bucket_store(s3.endpoint, await new_bucket(s3.endpoint))
    yield bucket
    await bucket.close()


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def test_bytes_are_kept_under_their_hash_once(store: MediaStore) -> None:
    data = photo(1)
    digest = await store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert await store.put(data) == digest                  # the same bytes: the same object
    assert await store.put_stream(pieces(data)) == digest
    assert await store.get(digest) == data
    assert await store.exists(digest) and await store.is_image(digest)
    assert [d async for d in store.digests()] == [digest]
    document = await store.put(b"%PDF-1.4 a document")
    assert not await store.is_image(document)
    assert sorted([d async for d in store.digests()]) == sorted([digest, document])


async def test_a_large_file_goes_in_and_out_a_chunk_at_a_time(store: MediaStore) -> None:
    data = os.urandom(PART + PART // 2)         # over one part: a multipart upload on S3
    digest = await store.put_stream(pieces(data))
    assert digest == hashlib.sha256(data).hexdigest()
    read = hashlib.sha256()
    sizes = []
    async for chunk in store.chunks(digest):
        read.update(chunk)
        sizes.append(len(chunk))
    assert read.hexdigest() == digest
    assert max(sizes) <= CHUNK and sum(sizes) == len(data)
    if isinstance(store, FolderStore):      # the spool was renamed into place, nothing left
        assert os.listdir(store.path(digest).parents[2] / ".incoming") == []


async def test_a_missing_object_is_told_apart(store: MediaStore) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not await store.exists(absent)
    assert await store.head(absent) == b"" and not await store.is_image(absent)
    with pytest.raises(MediaMissing) as missing:
        await store.get(absent)
    assert not environmental(missing.value)          # waiting does not bring it back


async def test_a_store_that_is_down_or_refuses_is_an_environmental_failure(
        s3: S3Server) -> None:
    relay = Relay(s3.endpoint)                        # never opened: connections refused
    down = bucket_store(relay.endpoint, "media-down")
    absent = bucket_store(s3.endpoint, "media-nobody-made-this")
    try:
        for store, words in ((down, "unreachable"), (absent, "NoSuchBucket")):
            with pytest.raises(MediaUnavailable, match=words) as failed:
                await store.put(photo(2))
            assert environmental(failed.value)
            with pytest.raises(MediaUnavailable):
                await store.exists("0" * 64)
        assert KEYS["s3_secret_access_key"] not in str(failed.value)
    finally:
        for store in (down, absent):
            await store.close()


async def test_the_bucket_down_while_a_worker_reports_makes_the_photo_wait(
        db: TortoiseContext, database_url: str, media_dir: Path, s3: S3Server) -> None:
    """张三's photo meets a bucket that went away: the event waits (no tries counted, nothing
    parked), after a minute he is told once, and when the bucket is back the photo is stored
    there whole and the report goes on."""
    relay = Relay(s3.endpoint)
    bucket = await new_bucket(s3.endpoint)
    try:
        handled = await photo_waits_then_is_handled(
            database_url, media_dir, "media store unreachable", relay.up,
            **store_settings(relay.endpoint, bucket))
    finally:
        await relay.down()
    store = bucket_store(s3.endpoint, bucket)
    assert await store.is_image(handled.event.media)
    assert [d async for d in store.digests()] == [handled.event.media]
    await store.close()
    assert os.listdir(media_dir) == []         # nothing went to the local folder


async def test_migrate_refuses_bad_targets_and_names_what_it_could_not_copy(
        media_dir: Path, bucket: dict[str, str]) -> None:
    """Nothing is switched by the command; a damaged file in the folder is named and kept out
    of the bucket, the rest is copied, and a second run copies nothing twice."""
    folder = FolderStore(media_dir)
    good = [await folder.put(photo(n)) for n in (11, 12)]
    damaged = await folder.put(photo(13))
    folder.path(damaged).write_bytes(b"\xff\xd8\xff half a photo")
    env = {"SAFETYBOT_MEDIA_DIR": str(media_dir),
           **{f"SAFETYBOT_{k.upper()}": v for k, v in bucket.items() if k != "media_url"}}

    for target, words in (("ftp://host/media", "a media store is s3://bucket/prefix or file"),
                          (f"file://{media_dir}", "is the store in use")):
        refused = cli("media", "migrate", "--to", target, env=env)
        assert refused.returncode == 2 and words in refused.stderr

    nowhere = cli("media", "migrate", "--to", "s3://media-nobody-made-this/plant", env=env)
    assert nowhere.returncode == 1
    assert "NoSuchBucket" in nowhere.stderr
    assert f"keep SAFETYBOT_MEDIA_URL=file://{media_dir}" in nowhere.stderr

    for copied, present in ((2, 0), (0, 2)):
        run = cli("media", "migrate", "--to", bucket["media_url"], env=env)
        assert run.returncode == 1
        assert f"{copied} copied and verified, {present} already in" in run.stdout
        assert f"{damaged}: damaged in the source" in run.stderr
        assert KEYS["s3_secret_access_key"] not in run.stdout + run.stderr
    store = bucket_store(bucket["s3_endpoint"], bucket["media_url"].split("/")[2])
    assert sorted([d async for d in store.digests()]) == sorted(good)
    await store.close()


async def test_a_photo_to_send_waits_in_the_outbox_while_the_bucket_is_away(
        db: TortoiseContext, database_url: str, media_dir: Path, s3: S3Server) -> None:
    """Nobody is marked as sent to, nothing is given up; it goes when the bucket is back."""
    relay = Relay(s3.endpoint)
    await relay.up()
    store = bucket_store(relay.endpoint, await new_bucket(s3.endpoint))
    data = photo(21)
    digest = await store.put(data)
    await relay.down()
    async for world in make_world(database_url, media_dir, store):
        await world.send("photo", Image(digest, about="HZ-20261207-0001"), "zhangsan")
        await world.drain()
        assert world.sim.messages_for("zhangsan") == []
        [delivery] = await OutboxDelivery.filter(message__idempotency_key="photo")
        assert delivery.status is DeliveryStatus.PENDING
        message = await OutboxMessage.get(idempotency_key="photo")
        assert message.attempts == 0

        await relay.up()
        world.clock.advance(world.settings.lease_seconds + 1)     # the attempt's lease ran out
        await world.drain()
        [received] = world.sim.messages_for("zhangsan")
        assert world.sim.media[received.body["image"]["media_id"]].data == data
    await store.close()
    await relay.down()


async def test_the_bucket_s_keys_stay_out_of_the_logs_even_at_debug(
        s3: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quieted = ("botocore", "aiobotocore", "tortoise", "asyncpg.pool", "apscheduler",
               "aiohttp.access")
    store = bucket_store(s3.endpoint, await new_bucket(s3.endpoint))
    try:
        logs.configure("DEBUG")
        root.addHandler(caplog.handler)
        digest = await store.put(photo(31))
        assert await store.exists(digest)
        # botocore writes each request's headers, the key id among them, at DEBUG.
        assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)
    finally:
        await store.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in quieted:
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert KEYS["s3_access_key_id"] not in caplog.text
    assert KEYS["s3_secret_access_key"] not in caplog.text
