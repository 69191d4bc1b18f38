from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.emergency import ActivationStatus, PlanKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_scheduler')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Plan',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('name', fields.CharField(max_length=100)),
                ('kind', fields.CharEnumField(description='GENERAL: 综合应急预案\nSPECIAL: 专项应急预案\nONSITE: 现场处置方案', enum_type=PlanKind, max_length=8)),
                ('triggers', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('levels', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('groups', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('steps', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('resources', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('report_level', fields.CharField(default='', max_length=8)),
                ('active', fields.BooleanField(default=True)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'emergency_plan', 'app': 'models', 'pk_attr': 'code'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Activation',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plan', fields.ForeignKeyField('models.Plan', source_field='plan_id', null=True, db_constraint=True, to_field='code', related_name='activations', on_delete=OnDelete.RESTRICT)),
                ('level', fields.CharField(default='', max_length=8)),
                ('area_id', fields.CharField(null=True, max_length=32)),
                ('drill', fields.BooleanField(default=False)),
                ('status', fields.CharEnumField(description='ALARM: alarm\nCONFIRMING: confirming\nACTIVE: active\nCLOSED: closed\nDISMISSED: dismissed\nJOINED: joined', enum_type=ActivationStatus, max_length=10)),
                ('token', fields.CharField(max_length=32)),
                ('raised_by', fields.CharField(max_length=64)),
                ('commander', fields.CharField(default='', max_length=64)),
                ('note', fields.TextField(default='', unique=False)),
                ('joined_to', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('activated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('closed_by', fields.CharField(default='', max_length=64)),
                ('report_due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reported_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('report_reminders', fields.SmallIntField(default=0)),
                ('review_due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('review_sent', fields.BooleanField(default=False)),
                ('board_due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('board_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'emergency_activation', 'app': 'models', 'indexes': [Index(fields=['status', 'plan_id', 'area_id']), Index(fields=['status', 'board_due_at']), Index(fields=['status', 'report_due_at']), Index(fields=['review_sent', 'review_due_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Responder',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('activation', fields.ForeignKeyField('models.Activation', source_field='activation_id', db_constraint=True, to_field='id', related_name='responders', on_delete=OnDelete.CASCADE)),
                ('user_id', fields.CharField(max_length=64)),
                ('deputy_for', fields.CharField(default='', max_length=64)),
                ('task_id', fields.CharField(max_length=64)),
                ('notified_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('answer', fields.CharField(default='', max_length=8)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('late', fields.BooleanField(default=False)),
                ('reminders', fields.SmallIntField(default=0)),
                ('next_remind_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('deputy_called', fields.BooleanField(default=False)),
            ],
            options={'table': 'emergency_responder', 'app': 'models', 'unique_together': (('activation', 'user_id'),), 'indexes': [Index(fields=['next_remind_at']), Index(fields=['task_id'])], 'pk_attr': 'id', 'table_description': 'One person called by an activation: their card, their answer, the reminders sent.'},
            bases=['Model'],
        ),
    ]
