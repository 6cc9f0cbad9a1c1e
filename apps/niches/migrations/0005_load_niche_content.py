from django.db import migrations


def load(apps, schema_editor):
    from apps.niches.seed import niches_load

    niches_load(apps=apps)


class Migration(migrations.Migration):
    dependencies = [("niches", "0004_content_fields")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
