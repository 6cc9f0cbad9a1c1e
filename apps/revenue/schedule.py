"""Beat entries of the revenue jobs (no Django imports here: settings import this module).

django-celery-beat copies them into the database at beat start; operators pause a job, or
run it now, in the admin (Periodic tasks). `expire_seconds` (the option django-celery-beat's
database scheduler reads; it ignores `expires`) drops a run that waited longer than its
interval: the next one is due anyway.
"""

BEAT_SCHEDULE = {
    "revenue.sequences-advance": {
        "task": "apps.revenue.tasks.sequences_advance",
        "schedule": 300.0,
        "options": {"expire_seconds": 290},
    },
    "revenue.outreach-enroll": {
        "task": "apps.revenue.tasks.outreach_enroll",
        "schedule": 900.0,
        "options": {"expire_seconds": 880},
    },
    "revenue.lead-enrichment": {
        "task": "apps.revenue.tasks.lead_enrichment",
        "schedule": 900.0,
        "options": {"expire_seconds": 880},
    },
    "revenue.revenue-sync": {
        "task": "apps.revenue.tasks.revenue_sync",
        "schedule": 600.0,
        "options": {"expire_seconds": 590},
    },
    "revenue.churn-guard": {
        "task": "apps.revenue.tasks.churn_guard",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3500},
    },
    "revenue.lead-resurrection": {
        "task": "apps.revenue.tasks.lead_resurrection",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3500},
    },
    "revenue.invoices-overdue": {
        "task": "apps.revenue.tasks.invoices_overdue",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3500},
    },
}
