from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0030_dashboard')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Alarm',
            index=Index(fields=['fired_at']),
        ),
        ops.AddIndex(
            model_name='Ticket',
            index=Index(fields=['grade', 'closed_at']),
        ),
    ]
