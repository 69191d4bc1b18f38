"""Room on each ticket page for updated rows (PostgreSQL fillfactor 90): a ticket is updated
several times in its life, and an update that fits its page and changes no indexed column is a
HOT update that leaves the ticket table's nine indexes alone (the escalation level a tick
raises on a thousand tickets at once, for one). SQLite has no such setting."""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops


async def _fillfactor(apps: Any, schema_editor: Any) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("ALTER TABLE ticket SET (fillfactor = 90)")


async def _default(apps: Any, schema_editor: Any) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("ALTER TABLE ticket RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [('models', '0007_inbox_arrival_index')]

    initial = False

    operations = [ops.RunPython(_fillfactor, _default)]
