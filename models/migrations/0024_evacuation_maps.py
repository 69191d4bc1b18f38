from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0023_resource_ledger')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PlatformMedia',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('platform', fields.CharField(max_length=16)),
                ('digest', fields.CharField(max_length=64)),
                ('filename', fields.CharField(default='', max_length=255)),
                ('media_id', fields.CharField(max_length=255)),
                ('reuse_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'platform_media', 'app': 'models', 'unique_together': (('platform', 'digest', 'filename'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Activation',
            name='board_map',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Area',
            name='map_digest',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
