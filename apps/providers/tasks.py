"""Thin Celery tasks on the `sends` queue: take ids, call a service, re-schedule when told."""

from __future__ import annotations

import logging
import random

import requests
from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="apps.providers.tasks.message_deliver", acks_late=True)
def message_deliver(message_id: str) -> str:
    """Send one queued message; on a retry or a rate-limit wait, publish itself for later.

    The countdown publish is an optimization: the row's `next_attempt_at` is the durable
    schedule, and `sends_sweep` publishes again if this message is lost.
    """
    from apps.providers.services import message_deliver as deliver

    result = deliver(message_id=message_id)
    if result.retry_in is not None:
        try:
            message_deliver.apply_async(args=[message_id], countdown=result.retry_in)
        except Exception:
            logger.warning("could not re-schedule send %s; the sweeper will", message_id)
    return result.outcome


@shared_task(name="apps.providers.tasks.sends_sweep")
def sends_sweep() -> int:
    from apps.providers.services import attachments_sweep
    from apps.providers.services import sends_sweep as sweep

    return len(sweep()) + len(attachments_sweep())


DOWNLOAD_RETRIES = 3


@shared_task(name="apps.providers.tasks.attachment_download", acks_late=True, bind=True)
def attachment_download(self, attachment_id: str) -> str:
    """Fetch one attachment; transient errors retry with backoff, then the row says failed."""
    from apps.conversations.models import Attachment
    from apps.conversations.services import attachment_mark
    from apps.providers.services import attachment_download as download

    try:
        return download(attachment_id=attachment_id)
    except requests.RequestException as exc:
        if self.request.retries >= DOWNLOAD_RETRIES:
            attachment = Attachment.objects.get(pk=attachment_id)
            attachment_mark(attachment=attachment, error=f"gave up: {exc}"[:300])
            return "failed"
        raise self.retry(countdown=5 * 2**self.request.retries + random.uniform(0, 2)) from exc
