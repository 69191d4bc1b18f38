from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.hazard import TicketKind
from models.migrations import sqlite_indexes_again
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0021_area_cameras')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Activation',
            name=None,
            fields=['review_sent', 'review_due_at'],
        ),
        # Not a rename: a review's deadline is its ticket's now, and an old drill's due time
        # is not a review held.
        ops.RemoveField(
            model_name='Activation',
            name='review_due_at',
        ),
        # On SQLite the removal rebuilt the table without its indexes (0006's).
        sqlite_indexes_again("emergency_activation", {
            "idx_emergency_a_status_f8513a": ("status", "plan_id", "area_id"),
            "idx_emergency_a_status_54026f": ("status", "board_due_at"),
            "idx_emergency_a_status_bcb176": ("status", "report_due_at"),
        }),
        ops.AddField(
            model_name='Activation',
            name='reviewed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Activation',
            name='review',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddIndex(
            model_name='Activation',
            index=Index(fields=['review_sent', 'reviewed_at']),
        ),
        ops.AddField(
            model_name='Ticket',
            name='activation_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Ticket',
            name='kind',
            field=fields.CharEnumField(default=TicketKind.HAZARD, description='HAZARD: hazard\nACTION: action\nREVIEW: review', db_default='hazard', enum_type=TicketKind, max_length=8),
        ),
    ]
