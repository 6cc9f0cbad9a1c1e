"""Beat entries of the event bus (no Django imports here: settings import this module)."""

import os

# Due retries, expired leases and events whose wake-up was lost wait at most this long.
# Whole seconds: django-celery-beat stores intervals as integers.
SWEEP_INTERVAL_SECONDS = max(1, int(os.environ.get("WEBHOOK_SWEEP_INTERVAL_SECONDS", "2")))

BEAT_SCHEDULE = {
    "events.sweep": {
        "task": "apps.events.tasks.sweep",
        "schedule": SWEEP_INTERVAL_SECONDS,
        # A sweep that waited longer than its interval is redundant with the next one.
        "options": {"expires": max(SWEEP_INTERVAL_SECONDS * 5, 10)},
    },
}
