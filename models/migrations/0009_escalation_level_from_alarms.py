"""The escalation level a ticket reached is read from its sent alarm rows: a tick no longer
updates a thousand tickets to keep a copy of it."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0008_ticket_fillfactor')]

    initial = False

    operations = [ops.RemoveField(model_name='Ticket', name='escalation_level')]
