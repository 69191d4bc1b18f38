from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.people.records import RecordKind
from models.training.enrolments import EnrolmentStatus, Reason
from models.training.learning import Phase
from models.training.practical import PracticalStatus
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0027_user_name_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Answer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=40)),
                ('attempt_id', fields.BigIntField()),
                ('person_id', fields.CharField(max_length=64)),
                ('course', fields.CharField(max_length=32)),
                ('question', fields.CharField(max_length=32)),
                ('department_id', fields.CharField(null=True, max_length=64)),
                ('post', fields.CharField(default='', max_length=32)),
                ('chosen', fields.CharField(max_length=8)),
                ('correct', fields.BooleanField()),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'training_answer', 'app': 'models', 'indexes': [Index(fields=['at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Assignment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('course', fields.CharField(max_length=32)),
                ('target', fields.CharField(max_length=200)),
                ('due_on', fields.DateField()),
                ('by', fields.CharField(max_length=64)),
                ('reason', fields.CharEnumField(description='PREJOB: prejob\nPOST: post\nYEARLY: yearly\nASSIGNED: assigned\nCATCHUP: catchup\nRETAKE: retake', enum_type=Reason, max_length=10)),
                ('why', fields.TextField(default='', unique=False)),
                ('people', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'training_assignment', 'app': 'models', 'pk_attr': 'id', 'table_description': "`布置培训 …` or a weak group's catch-up course: who gave which course to whom, and why."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Attempt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.CharField(max_length=64)),
                ('course', fields.CharField(max_length=32)),
                ('level', fields.SmallIntField()),
                ('number', fields.SmallIntField()),
                ('token', fields.CharField(max_length=16)),
                ('order', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('at', fields.SmallIntField(default=0)),
                ('correct', fields.SmallIntField(default=0)),
                ('department_id', fields.CharField(null=True, max_length=64)),
                ('post', fields.CharField(default='', max_length=32)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('score', fields.FloatField(null=True)),
                ('passed', fields.BooleanField(null=True)),
            ],
            options={'table': 'training_attempt', 'app': 'models', 'indexes': [Index(fields=['person_id', 'course']), Index(fields=['finished_at'])], 'pk_attr': 'id', 'table_description': "One try of a level's quiz. `order` is the questions as asked: each id with its options'"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Course',
            fields=[
                ('code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('title', fields.CharField(unique=True, max_length=100)),
                ('content', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('loaded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'course', 'app': 'models', 'pk_attr': 'code'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Enrolment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.CharField(max_length=64)),
                ('course', fields.CharField(max_length=32)),
                ('reason', fields.CharEnumField(description='PREJOB: prejob\nPOST: post\nYEARLY: yearly\nASSIGNED: assigned\nCATCHUP: catchup\nRETAKE: retake', enum_type=Reason, max_length=10)),
                ('key', fields.CharField(unique=True, max_length=200)),
                ('assignment_id', fields.BigIntField(null=True)),
                ('due_on', fields.DateField(null=True)),
                ('chain', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=EnrolmentStatus.OPEN, description='OPEN: open\nDONE: done', enum_type=EnrolmentStatus, max_length=4)),
                ('done_on', fields.DateField(null=True)),
                ('next_on', fields.DateField(null=True)),
                ('sent', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'training_enrolment', 'app': 'models', 'indexes': [Index(fields=['person_id', 'status']), Index(fields=['status', 'next_on']), Index(fields=['assignment_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PackState',
            fields=[
                ('person_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('signature', fields.CharField(max_length=200)),
            ],
            options={'table': 'training_pack', 'app': 'models', 'pk_attr': 'person_id', 'table_description': "What a person's packs were last given for (post, hire and post dates, the year, the"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PracticalCheck',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.CharField(max_length=64)),
                ('course', fields.CharField(max_length=32)),
                ('department_id', fields.CharField(null=True, max_length=64)),
                ('passed_on', fields.DateField()),
                ('status', fields.CharEnumField(default=PracticalStatus.PENDING, description='PENDING: pending\nPASSED_OVER: skipped\nASKED: asked\nPASSED: passed\nFAILED: failed', enum_type=PracticalStatus, max_length=8)),
                ('token', fields.CharField(max_length=16)),
                ('checker', fields.CharField(default='', max_length=64)),
                ('photo', fields.CharField(default='', max_length=64)),
                ('note', fields.CharField(default='', max_length=200)),
                ('checked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'training_practical', 'app': 'models', 'indexes': [Index(fields=['status', 'passed_on']), Index(fields=['person_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Progress',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.CharField(max_length=64)),
                ('course', fields.CharField(max_length=32)),
                ('level', fields.SmallIntField(default=0)),
                ('lesson', fields.SmallIntField(default=0)),
                ('screen', fields.SmallIntField(default=0)),
                ('phase', fields.CharEnumField(default=Phase.LESSON, description='LESSON: lesson\nQUIZ: quiz\nDONE: done', enum_type=Phase, max_length=8)),
                ('retry_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('scores', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('passed_on', fields.DateField(null=True)),
            ],
            options={'table': 'training_progress', 'app': 'models', 'unique_together': (('person_id', 'course'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='PersonRecord',
            name='kind',
            field=fields.CharEnumField(description='PROFILE: profile\nCERTIFICATE: certificate\nLAPSED: lapsed\nTRAINING: training\nCHECK: check\nVIOLATION: violation\nSUSPENSION: suspension\nBLACKLIST: blacklist\nADMISSION: admission\nPRACTICAL: practical', enum_type=RecordKind, max_length=12),
        ),
        ops.AddField(
            model_name='TrainingRecord',
            name='credit',
            field=fields.FloatField(default=0, db_default=0),
        ),
    ]
