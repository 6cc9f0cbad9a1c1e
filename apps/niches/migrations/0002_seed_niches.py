from django.db import migrations


def load(apps, schema_editor):
    from apps.niches.seed import niches_load

    niches_load(niche_model=apps.get_model("niches", "Niche"))


class Migration(migrations.Migration):
    dependencies = [("niches", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
