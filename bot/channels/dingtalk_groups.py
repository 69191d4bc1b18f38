"""The DingTalk scene groups (场景群) the service created for the plans: our chat id and the
group's id on DingTalk (`openConversationId`), which DingTalk chooses. WeCom takes our chat id as
its own; DingTalk does not, so the channel keeps the pair, shared by every instance."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class DingTalkGroup(Model):
    chat_id = fields.CharField(max_length=32, primary_key=True)
    open_conversation_id = fields.CharField(max_length=128)

    class Meta:
        table = "dingtalk_group"


async def remember_group(chat_id: str, open_conversation_id: str) -> None:
    await DingTalkGroup.update_or_create(
        chat_id=chat_id, defaults={"open_conversation_id": open_conversation_id})


async def conversation_of(chat_id: str) -> str | None:
    """The group's DingTalk id, or None when the service never created it."""
    row = await DingTalkGroup.get_or_none(chat_id=chat_id)
    return row.open_conversation_id if row else None
