"""Shared task plumbing and core housekeeping jobs."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task, *args, **kwargs) -> None:
    """Publish `task` after the current transaction commits, never raising.

    If the broker is unreachable the publish is logged and dropped *as a message only*:
    callers must keep the work visible in PostgreSQL (a pending row) so that a beat sweeper
    re-enqueues it. Without a transaction, publishes immediately.
    """

    def publish() -> None:
        try:
            task.apply_async(args=args, kwargs=kwargs)
        except Exception:  # broker down: the sweeper picks the row up later
            logger.warning("could not publish %s; a sweeper will retry", task.name, exc_info=True)

    transaction.on_commit(publish)


@shared_task(name="apps.core.tasks.idempotency_keys_expire")
def idempotency_keys_expire() -> int:
    from apps.core.idempotency import idempotency_records_expire

    return idempotency_records_expire()


@shared_task(name="apps.core.tasks.coalesce_drain", acks_late=True)
def coalesce_drain(kind: str) -> int:
    """Run the queued coalesced jobs of one kind (see `apps.core.coalesce`)."""
    from apps.core import coalesce

    if kind not in coalesce.KINDS:
        logger.warning("unknown coalesced job kind %r; ignored", kind)
        return 0
    return coalesce.drain(kind)


@shared_task(name="apps.core.tasks.coalesce_sweep")
def coalesce_sweep() -> dict:
    """Beat safety net: drain coalesced jobs a lost task or an expired lock left behind."""
    from apps.core import coalesce

    return coalesce.sweep()
