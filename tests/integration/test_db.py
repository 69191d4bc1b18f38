"""Migrations apply on both databases and the schema holds what the models say."""

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext
from tortoise.exceptions import OperationalError
from tortoise.migrations.api import migrate as tortoise_migrate

from bot.db import migrate, open_database, pending_migrations, tortoise_config
from models import transaction
from models.inbound import Inbound, InboundKind
from models.inbox import InboxEvent, inbox_put
from models.org import User


async def test_migrations_are_all_applied(db: TortoiseContext) -> None:
    assert await pending_migrations(db) == []


async def test_migrations_apply_over_a_database_that_has_rows(fresh_url: str) -> None:
    """A plant upgrading keeps its data: a column added NOT NULL gets a database default
    (0015 failed on PostgreSQL over existing group chats before it had one), and the web chat's
    earlier photo lines learn which photo they show."""
    config = tortoise_config(fresh_url)
    async with TortoiseContext():
        await tortoise_migrate(config=config, target="models.0014_colleagues_index")
    ctx = await open_database(fresh_url)
    with ctx:
        now = datetime.now(UTC)
        await ctx.db().execute_query(
            "INSERT INTO webchat_line (user_id, key, from_bot, kind, payload, task_id, "
            "code_used, created_at) VALUES ('zhangsan', 'k1', FALSE, 'text', '{}', '', FALSE, "
            f"'{now.isoformat()}'), ('zhangsan', 'k2', FALSE, 'image', "
            f"'{{\"media\": \"{'ab' * 32}\"}}', '', FALSE, '{now.isoformat()}')")
        await ctx.db().execute_query(
            "INSERT INTO group_chat (chat_id, platform, owner, members, version, changed_at) "
            f"VALUES ('emergency01', 'wecom', 'zhouwei', '[]', 0, '{now.isoformat()}')")
        await ctx.close_connections()
    await migrate(fresh_url)
    ctx = await open_database(fresh_url)
    with ctx:
        assert await pending_migrations(ctx) == []
        lines = await ctx.db().execute_query_dict("SELECT media FROM webchat_line ORDER BY id")
        chat = await ctx.db().execute_query_dict("SELECT name FROM group_chat")
        await ctx.close_connections()
    # A photo shown before the upgrade is still served to its person (the column is filled).
    assert lines == [{"media": ""}, {"media": "ab" * 32}] and chat == [{"name": ""}]


async def test_every_index_a_model_declares_is_there(db: TortoiseContext, database_url: str
                                                     ) -> None:
    """Every report, list and tick reads through the models' declared indexes. On SQLite a
    migration that drops a column rebuilds the table without them (0009 lost the ticket's,
    0022 the activation's): each such migration makes them again."""
    sqlite = database_url.startswith("sqlite")
    for model in Tortoise.apps["models"].values():
        meta = model._meta
        wanted = {tuple(meta.fields_db_projection.get(f, f) for f in index)
                  for index in meta.indexes if isinstance(index, tuple)}
        if not wanted:
            continue
        if sqlite:
            names = [r["name"] for r in await db.db().execute_query_dict(
                f'PRAGMA index_list("{meta.db_table}")')]
            have = {tuple(c["name"] for c in await db.db().execute_query_dict(
                f'PRAGMA index_info("{name}")')) for name in names}
        else:
            have = {tuple(c.strip().strip('"') for c in re.search(
                r"\((.*)\)", row["indexdef"]).group(1).split(","))  # type: ignore[union-attr]
                for row in await db.db().execute_query_dict(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = $1", [meta.db_table])}
        assert wanted <= have, f"{meta.db_table}: missing {sorted(wanted - have)}"


async def test_inbox_refuses_a_second_copy_of_an_event(db: TortoiseContext) -> None:
    now = datetime.now(UTC)
    event = Inbound(platform="wecom", user_id="zhangsan", kind=InboundKind.TEXT,
                    dedup_key="wecom:msg:1", text="你好")
    assert await inbox_put(event, now) is True
    assert await inbox_put(event, now) is False
    assert await InboxEvent.all().count() == 1


async def test_a_transaction_that_read_before_another_connection_wrote_still_writes(
    db: TortoiseContext, database_url: str
) -> None:
    """Two connections to one database, as an operator's load-org beside the running service: the
    second writer waits for the first transaction instead of failing it half-way (SQLite)."""
    await User.bulk_create([User(id="zhangsan", name="张三", roles=["worker"]),
                            User(id="lisi", name="李四", roles=["worker"])])
    other = await open_database(database_url)
    try:
        async with transaction():
            assert (await User.get(id="zhangsan")).name == "张三"   # read first
            with other:
                rename = asyncio.ensure_future(
                    User.filter(id="lisi").update(name="李四（二车间）"))
            await asyncio.sleep(0.2)   # time enough for the other connection to commit
            await User.filter(id="zhangsan").update(name="张三（一车间）")
        await rename
    finally:
        await other.close_connections()

    assert {u.id: u.name for u in await User.all()} == {
        "zhangsan": "张三（一车间）", "lisi": "李四（二车间）"}


async def test_a_sqlite_transaction_kept_waiting_too_long_fails_and_frees_its_connection(
    tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'two.sqlite3'}?busy_timeout=100"
    first, second = await open_database(url), await open_database(url)
    try:
        await first.db().execute_script("CREATE TABLE note (text TEXT)")
        with first:
            async with transaction() as writing:
                await writing.execute_query("INSERT INTO note VALUES ('first')")
                with second, pytest.raises(OperationalError, match="locked"):
                    async with transaction():
                        pytest.fail("began while the other connection was writing")
        with second:
            async with transaction() as writing:
                await writing.execute_query("INSERT INTO note VALUES ('second')")
            _, rows = await second.db().execute_query("SELECT text FROM note")
    finally:
        await first.close_connections()
        await second.close_connections()

    assert [row["text"] for row in rows] == ["first", "second"]
