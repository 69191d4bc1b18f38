"""Moving a plant's media to another store, and finding tickets whose photos are gone.

`copy_all` is what `safetybot media migrate` runs: every object the target lacks is copied a
chunk at a time, then read back from the target and hashed; the service is switched over by
the operator afterwards (`SAFETYBOT_MEDIA_URL`), only when every object is there. A second run
copies only what arrived since. `missing_photos` is `safetybot check-media`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.media import MediaDamaged, MediaMissing, MediaStore, MediaUnavailable
from models.hazard import Status, photo_references

CONCURRENCY = 8     # objects copied at once


@dataclass
class Copied:
    copied: int = 0
    present: int = 0                      # already in the target: not copied again
    failed: dict[str, str] = field(default_factory=dict)   # digest → why


async def copy_all(source: MediaStore, target: MediaStore,
                   progress: Callable[[int, int], None] = lambda done, total: None) -> Copied:
    have = {digest async for digest in target.digests()}
    todo = [digest async for digest in source.digests() if digest not in have]
    report = Copied(present=len(have))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(digest: str) -> None:
        async with gate:
            try:
                await target.put_stream(source.chunks(digest), expected=digest)
                if await _hash(target, digest) != digest:
                    report.failed[digest] = "read back from the target, it differs"
                else:
                    report.copied += 1
            except MediaDamaged as exc:
                report.failed[digest] = f"damaged in the source ({exc}); not copied"
            except (MediaMissing, MediaUnavailable, OSError) as exc:
                report.failed[digest] = f"{type(exc).__name__}: {exc}"
            progress(report.copied + len(report.failed), len(todo))

    await asyncio.gather(*(one(digest) for digest in todo))
    return report


async def _hash(store: MediaStore, digest: str) -> str:
    sha = hashlib.sha256()
    async for chunk in store.chunks(digest):
        sha.update(chunk)
    return sha.hexdigest()


@dataclass(frozen=True)
class Missing:
    ticket: str
    status: Status
    before: int        # 整改前 photos missing
    after: int         # 整改后 photos missing


async def missing_photos(store: MediaStore) -> tuple[int, list[Missing]]:
    """How many photos the tickets name, and the tickets with any missing from `store`."""
    tickets = await photo_references()
    wanted = {digest for _, _, before, after in tickets for digest in (*before, *after)}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def there(digest: str) -> tuple[str, bool]:
        async with gate:
            return digest, await store.exists(digest)

    present = dict(await asyncio.gather(*(there(digest) for digest in wanted)))
    missing = []
    for label, status, before, after in tickets:
        gone = (sum(not present[d] for d in before), sum(not present[d] for d in after))
        if any(gone):
            missing.append(Missing(label, status, *gone))
    return len(wanted), missing
