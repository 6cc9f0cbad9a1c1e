"""Collects the celery-beat entries every app declares in `apps/<app>/schedule.py`.

Imported by settings, so it (and every `schedule.py`) must not import Django models.
"""

import importlib

SCHEDULED_APPS = (
    "core",
    "tenancy",
    "events",
    "niches",
    "crm",
    "bookings",
    "providers",
    "conversations",
    "decisions",
    "revenue",
)


def _normalized(entry: dict) -> dict:
    """Celery spells a message's time to live `expires`; django-celery-beat's database
    scheduler reads `expire_seconds` (and ignores `expires`). Accept both."""
    options = dict(entry.get("options") or {})
    if "expires" in options:
        options.setdefault("expire_seconds", options.pop("expires"))
        entry = {**entry, "options": options}
    return entry


def collect_beat_schedule() -> dict:
    """Merge every app's BEAT_SCHEDULE; a duplicated entry name is a programming error."""
    schedule: dict = {}
    for app in SCHEDULED_APPS:
        try:
            module = importlib.import_module(f"apps.{app}.schedule")
        except ModuleNotFoundError as exc:
            if exc.name != f"apps.{app}.schedule":
                raise
            continue
        for name, entry in getattr(module, "BEAT_SCHEDULE", {}).items():
            if name in schedule:
                raise ValueError(f"beat entry {name!r} is declared twice")
            schedule[name] = _normalized(entry)
    return schedule


BEAT_SCHEDULE = {
    "core.idempotency-keys-expire": {
        "task": "apps.core.tasks.idempotency_keys_expire",
        "schedule": 3600.0,
    },
    "core.coalesce-sweep": {
        "task": "apps.core.tasks.coalesce_sweep",
        "schedule": 60.0,
        "options": {"expires": 120},
    },
}
