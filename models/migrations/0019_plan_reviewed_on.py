from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0018_dingtalk_groups')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Plan',
            name='reviewed_on',
            field=fields.DateField(null=True),
        ),
    ]
