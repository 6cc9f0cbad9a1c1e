"""Celery tasks of the event bus (queue `events`). Thin: each runs dispatch rounds.

Delivery state lives in PostgreSQL, so these tasks carry no ids and no ETAs: a lost or
duplicated task message costs nothing but a look at the outbox.
"""

from __future__ import annotations

from celery import shared_task

from apps.events import delivery


@shared_task(name="apps.events.tasks.dispatch")
def dispatch(role: str = "primary") -> int:
    """Fan out new events and send due deliveries until there is nothing left (or the time
    budget is spent). Published on commit by `delivery.wake`. Idempotent."""
    return delivery.dispatch_loop(role)


@shared_task(name="apps.events.tasks.sweep")
def sweep() -> int:
    """Beat, every few seconds: what no wake-up reached (broker was down, a worker died
    holding a lease, a retry fell due) is fanned out and sent. Idempotent."""
    return delivery.dispatch_loop("sweeper")
