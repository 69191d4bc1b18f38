from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0016_supervision')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PlatformLease',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=128)),
                ('owner', fields.CharField(default='', max_length=64)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'platform_lease', 'app': 'models', 'pk_attr': 'key', 'table_description': 'Work only one instance may do at a time: `owner` holds it until `until`, renewing it'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='User',
            name='platform',
            field=fields.CharField(default='', db_default='', max_length=16),
        ),
        ops.AddField(
            model_name='User',
            name='platform_id',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='User',
            name='source',
            field=fields.CharField(default='roster', db_default='roster', max_length=16),
        ),
        ops.AddIndex(
            model_name='User',
            index=Index(fields=['platform', 'platform_id']),
        ),
    ]
