"""The outbox claim walks a partial index of the unfinished messages in its own order,
(priority DESC, id), in place of (status, priority, next_attempt_at), which had it read every
pending message and sort them on every claim; see `_OUTBOX_DUE` in models/outbox.py."""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops


async def _create(apps: Any, schema_editor: Any) -> None:
    await schema_editor.client.execute_script(
        "CREATE INDEX outbox_due ON outbox_message (priority DESC, id) WHERE done_at IS NULL")


async def _drop(apps: Any, schema_editor: Any) -> None:
    await schema_editor.client.execute_script("DROP INDEX outbox_due")


class Migration(migrations.Migration):
    dependencies = [('models', '0012_ticket_number')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='OutboxMessage', fields=['status', 'priority',
                                                             'next_attempt_at']),
        ops.RunPython(_create, _drop),
    ]
