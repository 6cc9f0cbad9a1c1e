"""The Celery application. Queues: events, sends, ai, default (see settings.CELERY_TASK_ROUTES)."""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in ("events", "sends", "ai", "default")
]
app.autodiscover_tasks()

# Trace propagation (publish and run) is wired by apps.core.tracing's signal handlers,
# which are connected when Django loads the core app.
