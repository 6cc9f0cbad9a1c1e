"""Beat entries of the providers app (no Django imports here)."""

BEAT_SCHEDULE = {
    "providers.sends-sweep": {
        "task": "apps.providers.tasks.sends_sweep",
        "schedule": 15.0,
    },
}
