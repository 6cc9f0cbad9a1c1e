"""The beat scheduler: django-celery-beat's database scheduler, with the admin in charge.

Every app declares its jobs in `apps/<app>/schedule.py`; on each beat start the stock
scheduler writes those declarations over the database rows, undoing what operators changed
in the admin (Periodic tasks). This one creates a declared entry only when it is missing
and otherwise updates just its task path, so interval, crontab, enabled and expiry edits
made in the admin survive restarts and deploys.
"""

from __future__ import annotations

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler


class SwitchboardScheduler(DatabaseScheduler):
    def update_from_dict(self, mapping):
        existing = dict(
            PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", "task")
        )
        for name, task in existing.items():
            declared = mapping[name].get("task")
            if declared and declared != task:
                PeriodicTask.objects.filter(name=name).update(task=declared)
        super().update_from_dict({k: v for k, v in mapping.items() if k not in existing})
