from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WebChatLine',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.CharField(max_length=64)),
                ('key', fields.CharField(max_length=200)),
                ('from_bot', fields.BooleanField()),
                ('kind', fields.CharField(max_length=16)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('task_id', fields.CharField(default='', max_length=128)),
                ('response_code', fields.CharField(null=True, unique=True, max_length=64)),
                ('code_used', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webchat_line', 'app': 'models', 'unique_together': (('user_id', 'key'),), 'indexes': [Index(fields=['user_id', 'id']), Index(fields=['task_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
