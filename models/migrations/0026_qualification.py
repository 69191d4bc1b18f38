from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.people.certificates import CertificateStatus, HolderKind
from models.people.checks import Proposal
from models.people.profiles import AdmissionStatus
from models.people.records import RecordKind
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0025_ticket_indexes_on_sqlite')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Admission',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.CharField(max_length=64)),
                ('contractor_id', fields.CharField(max_length=32)),
                ('status', fields.CharEnumField(default=AdmissionStatus.ASKED, description='ASKED: asked\nADMITTED: admitted\nREFUSED: refused', enum_type=AdmissionStatus, max_length=8)),
                ('work_types', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('until', fields.DateField(null=True)),
                ('asked_by', fields.CharField(max_length=64)),
                ('asked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('decided_by', fields.CharField(default='', max_length=64)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reason', fields.CharField(default='', max_length=200)),
                ('token', fields.CharField(max_length=16)),
            ],
            options={'table': 'contractor_admission', 'app': 'models', 'indexes': [Index(fields=['person_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Certificate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('holder_kind', fields.CharEnumField(default=HolderKind.PERSON, description='PERSON: person\nCONTRACTOR: contractor', enum_type=HolderKind, max_length=10)),
                ('holder_id', fields.CharField(max_length=64)),
                ('type_code', fields.CharField(max_length=32)),
                ('number', fields.CharField(max_length=64)),
                ('issued_on', fields.DateField(null=True)),
                ('expires_on', fields.DateField()),
                ('review_on', fields.DateField(null=True)),
                ('photo', fields.CharField(null=True, max_length=64)),
                ('status', fields.CharEnumField(default=CertificateStatus.ACTIVE, description='ACTIVE: active\nREVOKED: revoked', enum_type=CertificateStatus, max_length=8)),
                ('source', fields.CharField(max_length=10)),
                ('remind_on', fields.DateField(null=True)),
                ('reminded', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('notify', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('lapsed_on', fields.DateField(null=True)),
                ('added_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'certificate', 'app': 'models', 'unique_together': (('type_code', 'number'),), 'indexes': [Index(fields=['holder_id', 'status']), Index(fields=['remind_on'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Contractor',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('responsible', fields.CharField(default='', max_length=64)),
                ('phone', fields.CharField(default='', max_length=32)),
                ('contract_end', fields.DateField(null=True)),
                ('blacklisted', fields.CharField(default='', max_length=200)),
                ('active', fields.BooleanField(default=True)),
            ],
            options={'table': 'contractor', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PersonRecord',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('holder', fields.CharField(max_length=80)),
                ('seq', fields.IntField()),
                ('kind', fields.CharEnumField(description='PROFILE: profile\nCERTIFICATE: certificate\nLAPSED: lapsed\nTRAINING: training\nCHECK: check\nVIOLATION: violation\nSUSPENSION: suspension\nBLACKLIST: blacklist\nADMISSION: admission', enum_type=RecordKind, max_length=12)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=64)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('prev', fields.CharField(max_length=64)),
                ('digest', fields.CharField(max_length=64)),
            ],
            options={'table': 'person_record', 'app': 'models', 'unique_together': (('holder', 'seq'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Profile',
            fields=[
                ('person_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('post', fields.CharField(default='', max_length=32)),
                ('hired_on', fields.DateField(null=True)),
                ('post_since', fields.DateField(null=True)),
                ('contractor_id', fields.CharField(null=True, max_length=32)),
                ('suspended', fields.CharField(default='', max_length=200)),
                ('blacklisted', fields.CharField(default='', max_length=200)),
            ],
            options={'table': 'person_profile', 'app': 'models', 'indexes': [Index(fields=['contractor_id'])], 'pk_attr': 'person_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='QualificationCheck',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('asked_by', fields.CharField(max_length=64)),
                ('work_type', fields.CharField(max_length=32)),
                ('permit', fields.CharField(default='', max_length=32)),
                ('area_id', fields.CharField(null=True, max_length=32)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('verdicts', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('allowed', fields.IntField()),
                ('refused', fields.IntField()),
                ('proposal', fields.CharEnumField(default=Proposal.NONE, description='NONE: \nPROPOSED: proposed\nCONFIRMED: confirmed\nDISMISSED: dismissed', enum_type=Proposal, max_length=10)),
                ('decided_by', fields.CharField(default='', max_length=64)),
                ('ticket_id', fields.BigIntField(null=True)),
                ('notified', fields.BooleanField(default=False)),
                ('token', fields.CharField(max_length=16)),
            ],
            options={'table': 'qualification_check', 'app': 'models', 'indexes': [Index(fields=['at']), Index(fields=['asked_by', 'at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrainingRecord',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.CharField(max_length=64)),
                ('course', fields.CharField(max_length=100)),
                ('hours', fields.FloatField()),
                ('on', fields.DateField()),
                ('score', fields.FloatField(null=True)),
                ('passed', fields.BooleanField()),
                ('source', fields.CharField(max_length=10)),
                ('key', fields.CharField(unique=True, max_length=200)),
                ('added_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'training_record', 'app': 'models', 'indexes': [Index(fields=['person_id', 'on'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
