from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

async def media_of_earlier_lines(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """Lines written before the column existed show their photo or file to their person too."""
    if schema_editor.client.capabilities.dialect == "postgres":
        media = "payload->>'media'"
    else:
        media = "json_extract(payload, '$.media')"
    await schema_editor.client.execute_script(
        f"UPDATE webchat_line SET media = {media} "
        "WHERE kind IN ('image', 'file') AND media = ''")


class Migration(migrations.Migration):
    dependencies = [('models', '0015_group_chat_name')]

    initial = False

    operations = [
        ops.AddField(
            model_name='InboxEvent',
            name='taken_from',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='InboxEvent',
            name='failing_since',
            field=fields.DatetimeField(null=True),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='taken_from',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='WebChatLine',
            name='media',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddIndex(
            model_name='WebChatLine',
            index=Index(fields=['user_id', 'media']),
        ),
        ops.RunPython(media_of_earlier_lines, ops.RunPython.noop),
    ]
