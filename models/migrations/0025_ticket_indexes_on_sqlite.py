"""The ticket table's indexes again on SQLite. Migration 0009 removed a column, which tortoise
does on SQLite by rebuilding the table, and the rebuilt table lost every index 0003 and 0005 had
made: since then the digest, the risk status, the ticket lists and the monthly report scanned
the whole table there (benchmarks/README.md, tick benchmark, run M4). PostgreSQL kept them."""

from tortoise import migrations

from models.migrations import sqlite_indexes_again

# As 0003 and 0005 made them (the same names as on PostgreSQL).
INDEXES = {
    "idx_ticket_status_0ffdcc": ("status", "area_id", "category"),
    "idx_ticket_owner_i_ec480e": ("owner_id", "status"),
    "idx_ticket_reviewe_9c4df2": ("reviewer_id", "status"),
    "idx_ticket_reporte_7cc62c": ("reporter_id", "status"),
    "idx_ticket_status_e5b795": ("status", "armed"),
    "idx_ticket_created_ad5b9c": ("created_at",),
    "idx_ticket_closed__ee38b3": ("closed_at",),
}


class Migration(migrations.Migration):
    dependencies = [('models', '0024_evacuation_maps')]

    initial = False

    operations = [sqlite_indexes_again("ticket", INDEXES)]
