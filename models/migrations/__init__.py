"""The schema's history, one migration a file.

SQLite drops a column by rebuilding its table, and tortoise's rebuild loses the table's indexes
(PostgreSQL keeps them): a migration that removes a column makes them again with
`sqlite_indexes_again`."""

from typing import Any


def sqlite_indexes_again(table: str, indexes: dict[str, tuple[str, ...]]) -> Any:
    """A RunPython step: `indexes` (name: columns, the names PostgreSQL has) made again on
    SQLite where missing; going back leaves them."""
    from tortoise.migrations import operations as ops

    async def create(apps: Any, schema_editor: Any) -> None:
        if schema_editor.client.capabilities.dialect == "sqlite":
            await schema_editor.client.execute_script("".join(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{quoted}");'
                for name, columns in indexes.items() if (quoted := '", "'.join(columns))))

    async def keep(apps: Any, schema_editor: Any) -> None:
        """The schema before should have had them too."""

    return ops.RunPython(create, keep)
