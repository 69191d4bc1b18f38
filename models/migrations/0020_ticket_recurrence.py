from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0019_plan_reviewed_on')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Ticket',
            name='recurrence_cause',
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name='Ticket',
            name='recurs',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
