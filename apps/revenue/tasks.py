"""Beat tasks of the revenue app: thin wrappers around the idempotent jobs (`jobs.py`).

Each returns a small summary (the run's counters) or None when another run of the same job
was still going (skipped).
"""

from __future__ import annotations

from celery import shared_task

from apps.revenue import jobs


def _summary(run) -> dict | None:
    if run is None:
        return None
    return {"processed": run.processed, "created": run.created, "errors": run.errors}


@shared_task(name="apps.revenue.tasks.churn_guard")
def churn_guard() -> dict | None:
    return _summary(jobs.churn_guard_run())


@shared_task(name="apps.revenue.tasks.lead_resurrection")
def lead_resurrection() -> dict | None:
    return _summary(jobs.lead_resurrection_run())


@shared_task(name="apps.revenue.tasks.outreach_enroll")
def outreach_enroll() -> dict | None:
    return _summary(jobs.outreach_enroll_run())


@shared_task(name="apps.revenue.tasks.sequences_advance")
def sequences_advance() -> dict | None:
    return _summary(jobs.sequences_advance_run())


@shared_task(name="apps.revenue.tasks.lead_enrichment")
def lead_enrichment() -> dict | None:
    return _summary(jobs.lead_enrichment_run())


@shared_task(name="apps.revenue.tasks.invoices_overdue")
def invoices_overdue() -> dict | None:
    return _summary(jobs.invoices_overdue_run())


@shared_task(name="apps.revenue.tasks.revenue_sync")
def revenue_sync() -> dict | None:
    return _summary(jobs.revenue_sync_run())
