from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0011_outbox_waiting_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TicketNumber',
            fields=[
                ('ticket_id', fields.BigIntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=32)),
            ],
            options={'table': 'ticket_number', 'app': 'models', 'pk_attr': 'ticket_id', 'table_description': "The number drawn for a draft's 提交, kept so that a 提交 tried again takes the same one."},
            bases=['Model'],
        ),
    ]
