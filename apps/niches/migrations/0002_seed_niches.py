from django.db import migrations

# The five niches as they were first shipped; the full content (and any later change to
# these rows) is written by the loader in 0005_load_niche_content.
NICHES = [
    ("fitness", "Fitness studio"),
    ("med_spa", "Med spa"),
    ("real_estate", "Real estate"),
    ("consultant", "Consultant"),
    ("local_service", "Local service"),
]


def load(apps, schema_editor):
    Niche = apps.get_model("niches", "Niche")
    for slug, name in NICHES:
        Niche.objects.get_or_create(slug=slug, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("niches", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
