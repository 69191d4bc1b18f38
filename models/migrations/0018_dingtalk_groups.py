from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0017_platforms')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DingTalkGroup',
            fields=[
                ('chat_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('open_conversation_id', fields.CharField(max_length=128)),
            ],
            options={'table': 'dingtalk_group', 'app': 'models', 'pk_attr': 'chat_id'},
            bases=['Model'],
        ),
    ]
