"""The outbox's head check (is an earlier message of this thread unfinished?) gets a partial index
of the unfinished messages by thread, in place of (thread, status, id); see `_OUTBOX_DUE` in
models/outbox.py for why it is keyed on `done_at IS NULL`."""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops


async def _create(apps: Any, schema_editor: Any) -> None:
    await schema_editor.client.execute_script(
        "CREATE INDEX outbox_waiting ON outbox_message (thread, id) WHERE done_at IS NULL")


async def _drop(apps: Any, schema_editor: Any) -> None:
    await schema_editor.client.execute_script("DROP INDEX outbox_waiting")


class Migration(migrations.Migration):
    dependencies = [('models', '0010_group_chats')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='OutboxMessage', fields=['thread', 'status', 'id']),
        ops.RunPython(_create, _drop),
    ]
