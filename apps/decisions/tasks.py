"""Beat tasks of decisions (queue `ai`): thin wrappers around idempotent services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="apps.decisions.tasks.scheduled_actions_run_due")
def scheduled_actions_run_due() -> int:
    """Run due scheduled actions: held sends and follow-up decisions (`execute: true`)."""
    from apps.decisions.execution import scheduled_actions_run_due as run

    return run()


@shared_task(name="apps.decisions.tasks.decision_outcomes_link")
def decision_outcomes_link() -> int:
    """Link the last two hours' replies, bookings and won deals to their decisions."""
    from apps.decisions.services import decision_outcomes_link as link

    return link()


@shared_task(name="apps.decisions.tasks.credits_grant_monthly")
def credits_grant_monthly() -> int:
    """Grant this month's plan credits to accounts that lack them (hourly; idempotent)."""
    from apps.decisions.credits import credits_grant_monthly as grant

    return grant()
