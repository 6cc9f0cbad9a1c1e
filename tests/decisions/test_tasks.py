"""Beat jobs: declared, routed to the `ai` queue, and run by a real worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.core.schedule import collect_beat_schedule
from apps.decisions import tasks
from apps.decisions.execution import decision_execute
from apps.decisions.models import Decision, ScheduledAction, ScheduledStatus
from tests.decisions import factories as f
from tests.support.services import wait_for


def test_beat_jobs_are_declared_and_routed_to_the_ai_queue():
    schedule = collect_beat_schedule()
    names = {
        "decisions.scheduled-actions-run-due": "apps.decisions.tasks.scheduled_actions_run_due",
        "decisions.outcomes-link": "apps.decisions.tasks.decision_outcomes_link",
        "decisions.credits-grant-monthly": "apps.decisions.tasks.credits_grant_monthly",
    }
    for entry, task in names.items():
        assert schedule[entry]["task"] == task
    assert settings.CELERY_TASK_ROUTES["apps.decisions.tasks.*"] == {"queue": "ai"}


@pytest.mark.django_db
def test_tasks_call_their_services(fitness):
    assert tasks.scheduled_actions_run_due.run() == 0
    assert tasks.decision_outcomes_link.run() == 0
    assert tasks.credits_grant_monthly.run() == 0


@pytest.mark.worker
def test_a_worker_on_the_ai_queue_runs_due_follow_ups(start_worker):
    org = f.organization("fitness")
    who = f.contact(org)
    f.lead(org, who)
    now = timezone.now()
    decision = f.decide(org, who, trigger="lead.created", now=now)
    decision_execute(decision=decision, now=now)
    follow_up = ScheduledAction.objects.get(kind="follow_up")
    ScheduledAction.objects.filter(pk=follow_up.pk).update(due_at=now - timedelta(minutes=1))
    start_worker(queues="ai")
    tasks.scheduled_actions_run_due.delay()
    wait_for(
        lambda: ScheduledAction.objects.get(pk=follow_up.pk).status == ScheduledStatus.DONE,
        timeout=30,
        what="the worker to run the follow-up",
    )
    made = Decision.objects.get(trigger="follow_up_due")
    assert made.event_id == f"scheduled:{follow_up.pk}"
    assert made.execution is not None
