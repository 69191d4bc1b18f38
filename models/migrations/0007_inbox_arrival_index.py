from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_emergency')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='InboxEvent',
            index=Index(fields=['status', 'id']),
        ),
    ]
