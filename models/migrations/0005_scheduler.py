from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.escalation import AlarmKind, AlarmState
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_outbox_threads')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Alarm',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('ticket', fields.ForeignKeyField('models.Ticket', source_field='ticket_id', db_constraint=True, to_field='id', related_name='alarms', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='REMIND: remind\nESCALATE: escalate', enum_type=AlarmKind, max_length=8)),
                ('level', fields.SmallIntField()),
                ('due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('recipients', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('state', fields.CharEnumField(default=AlarmState.PENDING, description='PENDING: pending\nSENT: sent\nSKIPPED: skipped\nVOID: void', enum_type=AlarmState, max_length=8)),
                ('fired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'alarm', 'app': 'models', 'unique_together': (('ticket', 'kind', 'level'),), 'indexes': [Index(fields=['state', 'due_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobRun',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=100)),
                ('ran_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'job_run', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Area',
            name='risk_reason',
            field=fields.CharField(default='', max_length=100),
        ),
        ops.AddField(
            model_name='Area',
            name='risk_status',
            field=fields.CharField(default='', max_length=2),
        ),
        ops.AddField(
            model_name='Area',
            name='risk_status_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Ticket',
            name='armed',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Ticket',
            name='chain',
            field=fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Ticket',
            name='escalation_level',
            field=fields.SmallIntField(default=0),
        ),
        ops.AddIndex(
            model_name='Ticket',
            index=Index(fields=['status', 'armed']),
        ),
        ops.AddIndex(
            model_name='Ticket',
            index=Index(fields=['created_at']),
        ),
        ops.AddIndex(
            model_name='Ticket',
            index=Index(fields=['closed_at']),
        ),
    ]
