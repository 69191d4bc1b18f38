"""Each group chat the service created keeps its members, so that a roster load can add and remove
people (`appchat/update`). The chats created before are taken from their `appchat/create` in the
outbox (key `group:{chat_id}`), whose members are what WeCom was asked for."""

import functools
from json import dumps, loads
from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def _created_chats(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    mark = "$" if client.capabilities.dialect == "postgres" else "?"
    rows = await client.execute_query_dict(
        "SELECT platform, payload, created_at FROM outbox_message WHERE kind = 'group_create' "
        "ORDER BY id")
    insert = ('INSERT INTO group_chat (chat_id, platform, owner, members, version, changed_at) '
              f'VALUES ({mark}1, {mark}2, {mark}3, {mark}4, 0, {mark}5) '
              'ON CONFLICT (chat_id) DO NOTHING')
    for row in rows:
        chat = row["payload"]
        chat = loads(chat) if isinstance(chat, str) else chat
        await client.execute_query(insert, [
            chat["chat_id"], row["platform"], chat["owner"],
            dumps(chat["members"], separators=(",", ":")), row["created_at"]])


class Migration(migrations.Migration):
    dependencies = [('models', '0009_escalation_level_from_alarms')]

    initial = False

    operations = [
        ops.CreateModel(
            name='GroupChat',
            fields=[
                ('chat_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('platform', fields.CharField(max_length=16)),
                ('owner', fields.CharField(max_length=64)),
                ('members', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('version', fields.IntField(default=0)),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'group_chat', 'app': 'models', 'pk_attr': 'chat_id'},
            bases=['Model'],
        ),
        ops.RunPython(_created_chats, ops.RunPython.noop),
    ]
