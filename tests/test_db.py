"""Migrations apply on both databases and the schema holds what the models say."""

from datetime import UTC, datetime

from tortoise.context import TortoiseContext

from bot.db import pending_migrations
from models.messaging import Inbound, InboundKind, InboxEvent, inbox_put


async def test_migrations_are_all_applied(db: TortoiseContext) -> None:
    assert await pending_migrations(db) == []


async def test_inbox_refuses_a_second_copy_of_an_event(db: TortoiseContext) -> None:
    now = datetime.now(UTC)
    event = Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                    dedup_key="wecom:msg:1", text="你好")
    assert await inbox_put(event, now) is True
    assert await inbox_put(event, now) is False
    assert await InboxEvent.all().count() == 1
