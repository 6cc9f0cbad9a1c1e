"""Beat entries of the inbox (no Django imports here: settings import this module)."""

BEAT_SCHEDULE = {
    "conversations.wake-snoozed": {
        "task": "apps.conversations.tasks.wake_snoozed",
        "schedule": 30.0,
        "options": {"expires": 60},
    },
    "conversations.sla-check": {
        "task": "apps.conversations.tasks.sla_check",
        "schedule": 30.0,
        "options": {"expires": 60},
    },
    "conversations.assign-backlog": {
        "task": "apps.conversations.tasks.assign_backlog_sweep",
        "schedule": 30.0,
        "options": {"expires": 60},
    },
}
