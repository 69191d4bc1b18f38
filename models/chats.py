"""The group chats the service created on a platform, with their members as last queued.

A roster load must know what to add to a chat and what to remove from it without calling the
platform (it works in the database and queues through the outbox, like everything else), and
WeCom would need a call per chat (`appchat/get`) to say. So each chat keeps its members here as
of the create or update last queued for it; the outbox carries that change out.
"""

from __future__ import annotations

from collections.abc import Collection

from tortoise import fields
from tortoise.models import Model


class GroupChat(Model):
    chat_id = fields.CharField(max_length=32, primary_key=True)
    platform = fields.CharField(max_length=16)
    name = fields.CharField(max_length=50, default="", db_default="")   # as created; shown
    owner = fields.CharField(max_length=64)
    members: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    # Changes queued since the create: the next one's number, and what names its outbox message.
    version = fields.IntField(default=0)
    changed_at = fields.DatetimeField()

    class Meta:
        table = "group_chat"

    @property
    def last_key(self) -> str:
        """The idempotency key of the create or update that gave the members above."""
        return change_key(self.chat_id, self.version)


def change_key(chat_id: str, version: int) -> str:
    """`group:{chat_id}` creates the chat (as it always has); `group:{chat_id}:{n}` is its n-th
    change after that: an update, or the create again when WeCom refused the first. Two loads
    that find the same difference at the same version queue it once."""
    return f"group:{chat_id}" if version == 0 else f"group:{chat_id}:{version}"


async def chat_platforms(chat_ids: Collection[str]) -> dict[str, str]:
    """The platform each known chat lives on."""
    if not chat_ids:
        return {}
    return dict(await GroupChat.filter(chat_id__in=list(chat_ids)).values_list(
        "chat_id", "platform"))
