from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.catalog import DefectType, Grade
from models.hazard import Status
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_webchat_line')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Dialog',
            fields=[
                ('user_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('platform', fields.CharField(max_length=16)),
                ('kind', fields.CharField(max_length=16)),
                ('step', fields.CharField(max_length=16)),
                ('ticket_id', fields.BigIntField(null=True)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('back', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('asked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'dialog', 'app': 'models', 'pk_attr': 'user_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Ticket',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(null=True, unique=True, max_length=32)),
                ('status', fields.CharEnumField(default=Status.DRAFT, description='DRAFT: draft\nPLAN: plan\nOPEN: open\nSUBMITTED: submitted\nCLOSED: closed\nCANCELLED: cancelled\nLINKED: linked', enum_type=Status, max_length=10)),
                ('version', fields.IntField(default=0)),
                ('reporter', fields.ForeignKeyField('models.User', source_field='reporter_id', db_constraint=True, to_field='id', related_name='reported', on_delete=OnDelete.RESTRICT)),
                ('area', fields.ForeignKeyField('models.Area', source_field='area_id', null=True, db_constraint=True, to_field='code', related_name='tickets', on_delete=OnDelete.RESTRICT)),
                ('category', fields.CharField(default='', max_length=16)),
                ('description', fields.TextField(default='', unique=False)),
                ('location', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('photos', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('grade', fields.CharEnumField(default=Grade.GENERAL, description='GENERAL: 一般\nMAJOR: 重大', enum_type=Grade, max_length=2)),
                ('grade_reason', fields.TextField(default='', unique=False)),
                ('defect_type', fields.CharEnumField(default=DefectType.THING, description='THING: 物的状态\nBEHAVIOUR: 人的行为\nMANAGEMENT: 管理缺陷', enum_type=DefectType, max_length=4)),
                ('defect_reason', fields.TextField(default='', unique=False)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='owned', on_delete=OnDelete.RESTRICT)),
                ('reviewer', fields.ForeignKeyField('models.User', source_field='reviewer_id', null=True, db_constraint=True, to_field='id', related_name='reviewing', on_delete=OnDelete.RESTRICT)),
                ('deadline', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('checklist', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('plan', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('extension', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('evidence', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('evidence_note', fields.TextField(default='', unique=False)),
                ('first_approval', fields.CharField(default='', max_length=64)),
                ('reports', fields.IntField(default=1)),
                ('duplicate_of', fields.ForeignKeyField('models.Ticket', source_field='duplicate_of_id', null=True, db_constraint=True, to_field='id', related_name='repeats', on_delete=OnDelete.SET_NULL)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('opened_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('submitted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'ticket', 'app': 'models', 'indexes': [Index(fields=['status', 'area_id', 'category']), Index(fields=['owner_id', 'status']), Index(fields=['reviewer_id', 'status']), Index(fields=['reporter_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TicketCard',
            fields=[
                ('task_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('ticket', fields.ForeignKeyField('models.Ticket', source_field='ticket_id', db_constraint=True, to_field='id', related_name='cards', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(max_length=8)),
                ('version', fields.IntField()),
                ('recipients', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('decided_by', fields.CharField(null=True, max_length=64)),
                ('decision', fields.CharField(default='', max_length=16)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'ticket_card', 'app': 'models', 'pk_attr': 'task_id', 'table_description': 'A card sent about a ticket. Its random task id is the opaque, server-side part of every'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TicketCounter',
            fields=[
                ('day', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=8)),
                ('issued', fields.IntField(default=0)),
            ],
            options={'table': 'ticket_counter', 'app': 'models', 'pk_attr': 'day', 'table_description': 'The last number given on a day, so numbers are dense and never repeat.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Area',
            name='latitude',
            field=fields.FloatField(null=True),
        ),
        ops.AddField(
            model_name='Area',
            name='longitude',
            field=fields.FloatField(null=True),
        ),
    ]
