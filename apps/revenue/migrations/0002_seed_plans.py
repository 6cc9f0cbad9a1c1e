from django.db import migrations


def seed(apps, schema_editor):
    from apps.revenue.plans import plans_ensure_defaults

    plans_ensure_defaults(apps.get_model("revenue", "Plan"))


class Migration(migrations.Migration):
    dependencies = [("revenue", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
