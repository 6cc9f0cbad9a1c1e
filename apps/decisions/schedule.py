"""Beat jobs of decisions (no Django imports here: settings import this module)."""

BEAT_SCHEDULE = {
    "decisions.scheduled-actions-run-due": {
        "task": "apps.decisions.tasks.scheduled_actions_run_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "decisions.outcomes-link": {
        "task": "apps.decisions.tasks.decision_outcomes_link",
        "schedule": 600.0,
        "options": {"expires": 590},
    },
    "decisions.credits-grant-monthly": {
        "task": "apps.decisions.tasks.credits_grant_monthly",
        "schedule": 3600.0,
        "options": {"expires": 3500},
    },
}
