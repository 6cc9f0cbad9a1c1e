from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("crm", "0001_initial"),
    ]

    operations = [
        TrigramExtension(),
        migrations.AddField(
            model_name="deal",
            name="lost_reason",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="lead",
            name="scored_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
