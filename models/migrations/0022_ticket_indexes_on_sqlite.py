"""The ticket table's indexes again on SQLite. Migration 0009 removed a column, which tortoise
does on SQLite by rebuilding the table, and the rebuilt table lost every index 0003 and 0005 had
made: since then the digest, the risk status, the ticket lists and the monthly report scanned
the whole table there (benchmarks/README.md, tick benchmark, run M4). PostgreSQL kept them."""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

# As 0003 and 0005 made them (the same names as on PostgreSQL).
INDEXES = {
    "idx_ticket_status_0ffdcc": ("status", "area_id", "category"),
    "idx_ticket_owner_i_ec480e": ("owner_id", "status"),
    "idx_ticket_reviewe_9c4df2": ("reviewer_id", "status"),
    "idx_ticket_reporte_7cc62c": ("reporter_id", "status"),
    "idx_ticket_status_e5b795": ("status", "armed"),
    "idx_ticket_created_ad5b9c": ("created_at",),
    "idx_ticket_closed__ee38b3": ("closed_at",),
}


async def _create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.client.capabilities.dialect == "sqlite":
        await schema_editor.client.execute_script("".join(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "ticket" ("{quoted}");'
            for name, columns in INDEXES.items() if (quoted := '", "'.join(columns))))


async def _keep(apps: Any, schema_editor: Any) -> None:
    """Going back leaves them: the schema before this one should have had them too."""


class Migration(migrations.Migration):
    dependencies = [('models', '0021_area_cameras')]

    initial = False

    operations = [ops.RunPython(_create, _keep)]
