from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0014_colleagues_index')]

    initial = False

    operations = [
        ops.AddField(
            model_name='GroupChat',
            name='name',
            field=fields.CharField(default='', db_default='', max_length=50),
        ),
    ]
