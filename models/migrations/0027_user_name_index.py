from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0026_qualification')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='User',
            index=Index(fields=['name']),
        ),
    ]
