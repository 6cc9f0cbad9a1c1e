"""Trigram indexes for contact search, built CONCURRENTLY so big tables keep taking writes."""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("crm", "0002_search_trigram_and_fields"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="contact",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("name"), name="gin_trgm_ops"
                ),
                name="contact_name_trgm",
            ),
        ),
        AddIndexConcurrently(
            model_name="contact",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("email"), name="gin_trgm_ops"
                ),
                name="contact_email_trgm",
            ),
        ),
        AddIndexConcurrently(
            model_name="contact",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["phone"], name="contact_phone_trgm", opclasses=["gin_trgm_ops"]
            ),
        ),
    ]
