"""The plant-wide resource ledger (应急物资台账) and its inspections. Plans now name resource
kinds; the resources their rows held (free-text tables, from before the ledger) cannot be read as
kinds, so they are emptied: the plan files must be moved to the ledger anyway, as load-plans says,
and loading them writes the kinds."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from models.resources import Result
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0022_emergency_review')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Resource',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('kind', fields.CharField(max_length=32)),
                ('name', fields.CharField(max_length=100)),
                ('quantity', fields.FloatField()),
                ('unit', fields.CharField(max_length=8)),
                ('area_id', fields.CharField(null=True, max_length=32)),
                ('place', fields.CharField(default='', max_length=100)),
                ('latitude', fields.FloatField(null=True)),
                ('longitude', fields.FloatField(null=True)),
                ('keeper', fields.CharField(max_length=64)),
                ('phone', fields.CharField(default='', max_length=32)),
                ('interval_days', fields.IntField(null=True)),
                ('expires_on', fields.DateField(null=True)),
                ('reading_name', fields.CharField(default='', max_length=16)),
                ('reading_unit', fields.CharField(default='', max_length=8)),
                ('reading_min', fields.FloatField(null=True)),
                ('reading_max', fields.FloatField(null=True)),
                ('inspected_on', fields.DateField(null=True)),
                ('result', fields.CharField(default='', max_length=4)),
                ('added_on', fields.DateField()),
                ('active', fields.BooleanField(default=True)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'emergency_resource', 'app': 'models', 'indexes': [Index(fields=['kind', 'active']), Index(fields=['keeper', 'active'])], 'pk_attr': 'code'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Inspection',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('resource', fields.ForeignKeyField('models.Resource', source_field='resource_id', db_constraint=True, to_field='code', related_name='inspections', on_delete=OnDelete.RESTRICT)),
                ('by', fields.CharField(max_length=64)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('result', fields.CharEnumField(description='OK: 正常\nFAILED: 异常', enum_type=Result, max_length=4)),
                ('reading', fields.FloatField(null=True)),
                ('note', fields.CharField(default='', max_length=200)),
            ],
            options={'table': 'emergency_resource_inspection', 'app': 'models', 'indexes': [Index(fields=['resource_id', 'at'])], 'pk_attr': 'id', 'table_description': 'One inspection confirmed in chat: who, when, the result and what they read or noted.'},
            bases=['Model'],
        ),
        ops.RunSQL("UPDATE emergency_plan SET resources = '[]'", ops.RunSQL.noop),
    ]
