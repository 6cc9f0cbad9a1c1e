"""The revenue jobs through a real Celery worker, and their beat entries (synced into
django-celery-beat's tables, where operators edit them)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.crm.models import Contact, Deal, Task
from apps.revenue import tasks
from apps.revenue.models import JobRun
from apps.revenue.schedule import BEAT_SCHEDULE
from tests.factories import OrganizationFactory, staff_user
from tests.revenue import factories as f
from tests.support.services import wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_churn_guard_runs_in_a_real_worker(start_worker):
    organization = OrganizationFactory(slug="worker-org")
    owner = staff_user(organization, role="operator")
    deal = f.deal(organization, contact=f.contact(organization), owner=owner)
    past = timezone.now() - timedelta(days=6)
    Deal.objects.filter(pk=deal.pk).update(stage_changed_at=past, last_activity_at=past)
    Contact.objects.filter(pk=deal.contact_id).update(last_activity_at=past)

    start_worker(queues="default")
    tasks.churn_guard.delay()
    run = wait_for(
        lambda: JobRun.objects.filter(job="churn_guard", status="succeeded").first(),
        timeout=30,
        what="the churn guard to run in the worker",
    )
    assert (run.processed, run.created, run.errors) == (1, 1, 0)
    task = Task.objects.get(source="churn_guard")
    assert task.deal_id == deal.pk and task.assignee_id == owner.pk

    tasks.churn_guard.delay()  # a second run in the worker creates nothing new
    wait_for(
        lambda: JobRun.objects.filter(job="churn_guard", status="succeeded").count() == 2,
        timeout=30,
        what="the second run",
    )
    assert Task.objects.filter(source="churn_guard").count() == 1


def test_every_job_is_scheduled_on_the_default_queue():
    scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    assert scheduled == {
        f"apps.revenue.tasks.{name}"
        for name in (
            "churn_guard",
            "lead_resurrection",
            "outreach_enroll",
            "sequences_advance",
            "lead_enrichment",
            "invoices_overdue",
            "revenue_sync",
        )
    }
    for name, entry in BEAT_SCHEDULE.items():
        assert settings.CELERY_BEAT_SCHEDULE[name] == entry
        assert entry["options"]["expire_seconds"] < entry["schedule"]
    for name in scheduled:
        assert not any(
            name.startswith(prefix.rstrip("*")) for prefix in settings.CELERY_TASK_ROUTES
        )  # → the default queue


@pytest.mark.django_db
def test_beat_entries_become_rows_operators_can_pause():
    """What beat does at start (`DatabaseScheduler.update_from_dict`), entry by entry: each
    job becomes a PeriodicTask row; pausing one in the admin survives the next beat start."""
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app

    def beat_starts():
        for name, entry in BEAT_SCHEDULE.items():
            ModelEntry.from_entry(name, app=app, **entry)

    beat_starts()
    task = PeriodicTask.objects.get(name="revenue.churn-guard")
    assert task.task == "apps.revenue.tasks.churn_guard" and task.enabled
    assert (task.interval.every, task.interval.period) == (3600, "seconds")
    assert task.expire_seconds == 3500
    assert PeriodicTask.objects.filter(name__startswith="revenue.").count() == len(BEAT_SCHEDULE)
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)
    beat_starts()
    task.refresh_from_db()
    assert task.enabled is False


@pytest.mark.django_db
def test_tasks_return_a_summary():
    assert tasks.sequences_advance() == {"processed": 0, "created": 0, "errors": 0}
