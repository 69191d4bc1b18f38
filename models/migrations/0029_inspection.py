from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.inspection.rounds import RoundStatus
from models.inspection.sites import Frequency
from models.inspection.visits import Result, Source
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0028_training')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Checklist',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('title', fields.CharField(max_length=64)),
                ('category', fields.CharField(max_length=16)),
                ('items', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_checklist', 'app': 'models', 'pk_attr': 'code'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Checkpoint',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('name', fields.CharField(max_length=64)),
                ('area', fields.ForeignKeyField('models.Area', source_field='area_id', db_constraint=True, to_field='code', related_name='checkpoints', on_delete=OnDelete.RESTRICT)),
                ('checklist', fields.ForeignKeyField('models.Checklist', source_field='checklist_id', db_constraint=True, to_field='code', related_name='checkpoints', on_delete=OnDelete.RESTRICT)),
                ('point', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_checkpoint', 'app': 'models', 'indexes': [Index(fields=['area_id'])], 'pk_attr': 'code'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Route',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('name', fields.CharField(max_length=64)),
                ('checkpoints', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_route', 'app': 'models', 'pk_attr': 'code'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PatrolPlan',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('route', fields.ForeignKeyField('models.Route', source_field='route_id', db_constraint=True, to_field='code', related_name='plans', on_delete=OnDelete.RESTRICT)),
                ('people', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('roles', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('posts', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('frequency', fields.CharEnumField(description='DAILY: daily\nWEEKLY: weekly\nMONTHLY: monthly\nBY_RISK: by-risk', enum_type=Frequency, max_length=8)),
                ('starts', fields.IntField()),
                ('ends', fields.IntField()),
                ('active', fields.BooleanField(default=True)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_plan', 'app': 'models', 'pk_attr': 'code', 'table_description': 'Who walks a route, how often, and in which window of the day (minutes after midnight,'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Round',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=64)),
                ('plan', fields.ForeignKeyField('models.PatrolPlan', source_field='plan_id', db_constraint=True, to_field='code', related_name='rounds', on_delete=OnDelete.RESTRICT)),
                ('period', fields.CharField(max_length=16)),
                ('frequency', fields.CharEnumField(description='DAILY: daily\nWEEKLY: weekly\nMONTHLY: monthly\nBY_RISK: by-risk', enum_type=Frequency, max_length=8)),
                ('route', fields.CharField(max_length=32)),
                ('route_name', fields.CharField(max_length=64)),
                ('checkpoints', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('patrollers', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('supervisors', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('starts', fields.IntField()),
                ('ends', fields.IntField()),
                ('opens_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('closes_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('remind_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('grace_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=RoundStatus.OPEN, description='OPEN: open\nDONE: done\nLATE: late\nMISSED: missed', enum_type=RoundStatus, max_length=8)),
                ('reminded', fields.BooleanField(default=False)),
                ('escalated', fields.BooleanField(default=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_round', 'app': 'models', 'indexes': [Index(fields=['status', 'closes_at']), Index(fields=['status', 'remind_at']), Index(fields=['opens_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Patroller',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('round', fields.ForeignKeyField('models.Round', source_field='round_id', db_constraint=True, to_field='id', related_name='walkers', on_delete=OnDelete.CASCADE)),
                ('person', fields.CharField(max_length=64)),
                ('grace_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_patroller', 'app': 'models', 'indexes': [Index(fields=['person', 'grace_until'])], 'pk_attr': 'id', 'table_description': "Who walks a round: the index behind `巡检` and a scan's lookup."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SigningKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('secret', fields.CharField(max_length=64)),
            ],
            options={'table': 'inspection_key', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Visit',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('round', fields.ForeignKeyField('models.Round', source_field='round_id', null=True, db_constraint=True, to_field='id', related_name='visits', on_delete=OnDelete.RESTRICT)),
                ('checkpoint', fields.ForeignKeyField('models.Checkpoint', source_field='checkpoint_id', db_constraint=True, to_field='code', related_name='visits', on_delete=OnDelete.RESTRICT)),
                ('by', fields.CharField(max_length=64)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('source', fields.CharEnumField(description='SCAN: scan\nTYPED: typed\nPHOTO: photo', enum_type=Source, max_length=8)),
                ('not_counted', fields.CharField(default='', max_length=12)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_visit', 'app': 'models', 'indexes': [Index(fields=['round_id', 'checkpoint_id']), Index(fields=['checkpoint_id', 'at']), Index(fields=['at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ItemAnswer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=64)),
                ('visit', fields.ForeignKeyField('models.Visit', source_field='visit_id', db_constraint=True, to_field='id', related_name='answers', on_delete=OnDelete.CASCADE)),
                ('checkpoint', fields.CharField(max_length=32)),
                ('item', fields.CharField(max_length=32)),
                ('result', fields.CharEnumField(description='OK: ok\nABNORMAL: abnormal\nSKIPPED: skipped', enum_type=Result, max_length=8)),
                ('value', fields.FloatField(null=True)),
                ('shown', fields.CharField(default='', max_length=64)),
                ('out_of_range', fields.BooleanField(default=False)),
                ('note', fields.CharField(default='', max_length=200)),
                ('photo', fields.CharField(default='', max_length=64)),
                ('ticket_id', fields.BigIntField(null=True)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inspection_answer', 'app': 'models', 'indexes': [Index(fields=['checkpoint', 'item', 'ticket_id']), Index(fields=['at'])], 'pk_attr': 'id', 'table_description': 'One checklist item answered at a visit.'},
            bases=['Model'],
        ),
    ]
