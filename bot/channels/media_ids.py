"""The platforms' media ids of stored files. A picture or a document is uploaded to a platform
once and then sent by its media id until the id nears its end (WeCom keeps an upload three days,
chat-protocols.md §4.5): a broadcast's map, sent to every group and to each thousand people,
is uploaded once, not once a message and a chunk.

One row per platform and file as uploaded: its hash and, for a document, the name people see
(WeCom shows a file under the name it was uploaded with). The instances share the rows. Two of
them uploading the same file at once is harmless: each sends with the id it got (both are
valid), and the last to record its id wins. A platform that no longer knows an id (it expired
early, or the platform lost it) refuses the send; the dispatcher then drops the id and uploads
the file once more (`PlatformFile.renew`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tortoise import fields
from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from bot.channels import Channel
from models.outgoing import File, Image

log = logging.getLogger(__name__)


class PlatformMedia(Model):
    id = fields.BigIntField(primary_key=True)
    platform = fields.CharField(max_length=16)
    digest = fields.CharField(max_length=64)           # the file's hash in the media store
    filename = fields.CharField(max_length=255, default="")   # a document's; "" for a picture
    media_id = fields.CharField(max_length=255)
    reuse_until = fields.DatetimeField()

    class Meta:
        table = "platform_media"
        unique_together = (("platform", "digest", "filename"),)


def _key(platform: str, message: Image | File) -> dict[str, Any]:
    return {"platform": platform, "digest": message.media,
            "filename": message.filename if isinstance(message, File) else ""}


class PlatformFile:
    """One message's file on one channel, for one attempt: the recorded media id while it may be
    reused, else a fresh upload, recorded for the next messages."""

    def __init__(self, channel: Channel, message: Image | File, now: datetime) -> None:
        self._channel = channel
        self._key = _key(channel.platform, message)
        self._message = message
        self._now = now
        self._media_id = ""
        self.renewed = False

    async def media_id(self) -> str:
        if not self._media_id:
            row = await PlatformMedia.get_or_none(**self._key, reuse_until__gt=self._now)
            self._media_id = row.media_id if row else await self._upload()
        return self._media_id

    async def renew(self) -> str:
        """The platform refused the id: drop it (unless another instance replaced it already)
        and upload the file again, once for this attempt."""
        log.warning("%s no longer knows media id of %s; uploading it again",
                    self._channel.platform, self._message.media)
        await PlatformMedia.filter(**self._key, media_id=self._media_id).delete()
        self.renewed = True
        self._media_id = await self._upload()
        return self._media_id

    async def _upload(self) -> str:
        reuse = self._channel.media_reuse
        assert reuse is not None, f"{self._channel.platform} takes no uploads"
        media_id = await self._channel.upload(self._message)
        values: dict[str, Any] = {"media_id": media_id, "reuse_until": self._now + reuse}
        if not await PlatformMedia.filter(**self._key).update(**values):
            try:
                await PlatformMedia.create(**self._key, **values)
            except IntegrityError:      # another instance recorded its upload meanwhile
                await PlatformMedia.filter(**self._key).update(**values)
        return media_id


def platform_file(channel: Channel, message: object, now: datetime) -> PlatformFile | None:
    """The file a message carries on a channel that takes uploads; None otherwise."""
    if isinstance(message, Image | File) and channel.media_reuse is not None:
        return PlatformFile(channel, message, now)
    return None
