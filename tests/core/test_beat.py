"""Beat: declared jobs land in the database once; operators' edits in the admin survive."""

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.beat import SwitchboardScheduler
from config.celery import app

# The scheduler calls close_old_connections(), which closes a connection that is inside a
# transaction: run these on committed data.
pytestmark = pytest.mark.django_db(transaction=True)


def start_beat() -> SwitchboardScheduler:
    scheduler = SwitchboardScheduler(app=app, lazy=True)
    scheduler.setup_schedule()
    return scheduler


def test_every_declared_job_is_installed_with_its_expiry():
    start_beat()
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert set(settings.CELERY_BEAT_SCHEDULE) <= names
    sweep = PeriodicTask.objects.get(name="events.sweep")
    assert (
        sweep.expire_seconds
        == settings.CELERY_BEAT_SCHEDULE["events.sweep"]["options"]["expire_seconds"]
    )
    assert sweep.enabled


def test_admin_edits_survive_a_beat_restart():
    start_beat()
    slower, _ = IntervalSchedule.objects.get_or_create(every=600, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="events.sweep").update(interval=slower, enabled=False)
    PeriodicTask.objects.filter(name="core.idempotency-keys-expire").delete()
    start_beat()
    sweep = PeriodicTask.objects.get(name="events.sweep")
    assert (sweep.interval.every, sweep.enabled) == (600, False)
    assert PeriodicTask.objects.filter(name="core.idempotency-keys-expire").exists()  # recreated


def test_a_renamed_task_path_is_followed():
    start_beat()
    PeriodicTask.objects.filter(name="events.sweep").update(task="apps.events.tasks.old_name")
    start_beat()
    assert PeriodicTask.objects.get(name="events.sweep").task == "apps.events.tasks.sweep"
