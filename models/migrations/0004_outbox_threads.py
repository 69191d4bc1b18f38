from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_hazard_tickets')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OutboxMessage',
            name='thread',
            field=fields.CharField(default='', max_length=100),
        ),
        ops.AddIndex(
            model_name='OutboxMessage',
            index=Index(fields=['thread', 'status', 'id']),
        ),
    ]
