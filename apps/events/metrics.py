"""Prometheus metrics of the event bus, exposed on `/metrics`.

Counters and histograms are written by the process that does the work: web and worker
processes alike (events are emitted in both; deliveries happen in Celery workers). With
`PROMETHEUS_MULTIPROC_DIR` set (``make run`` sets it for every process), prometheus_client
writes each process's samples to files in that directory and `/metrics` merges them, so a
worker's deliveries show up on the web's `/metrics`. Without it (a single process, tests),
each process exposes only its own samples.

The dead-letter size and the outbox lag are not counted by anyone: `OutboxCollector`
computes them from PostgreSQL when `/metrics` is scraped.
"""

from __future__ import annotations

import logging
from collections import Counter as _Tally

from django.db import connection
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

EVENTS_EMITTED = Counter(
    "switchboard_events_emitted_total", "Events recorded (committed), by type.", ["type"]
)
DELIVERY_ATTEMPTS = Counter(
    "switchboard_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: succeeded, retrying (failed, retry scheduled), "
    "dead (failed, no retry left).",
    ["outcome"],
)
DELIVERY_LATENCY = Histogram(
    "switchboard_webhook_delivery_latency_seconds",
    "From the event's commit to the subscriber's 2xx answer (successful deliveries).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
REQUEST_DURATION = Histogram(
    "switchboard_webhook_request_duration_seconds",
    "Duration of one webhook HTTP request, any outcome.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def record_emitted(types: list[str]) -> None:
    for name, count in _Tally(types).items():
        EVENTS_EMITTED.labels(type=name).inc(count)


def record_round(sendable) -> None:
    """Count the attempts of one dispatch round (after it was recorded)."""
    from apps.events.models import DeliveryStatus

    for item in sendable:
        response = item.response
        if response is None:
            continue
        REQUEST_DURATION.observe(response.duration_ms / 1000)
        if response.ok:
            DELIVERY_ATTEMPTS.labels(outcome="succeeded").inc()
            received = response.started_at.timestamp() + response.duration_ms / 1000
            DELIVERY_LATENCY.observe(max(0.0, received - item.event.created_at.timestamp()))
        else:
            outcome = "dead" if item.final_status == DeliveryStatus.DEAD else "retrying"
            DELIVERY_ATTEMPTS.labels(outcome=outcome).inc()


class OutboxCollector:
    """Gauges read from PostgreSQL at scrape time (cheap: both use partial indexes)."""

    def collect(self):
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT (SELECT count(*) FROM events_delivery WHERE status = 'dead'),"
                    " (SELECT extract(epoch FROM clock_timestamp() - min(created_at))"
                    "  FROM events_event WHERE dispatched_at IS NULL)"
                )
                dead, lag = cursor.fetchone()
        except Exception:  # /metrics must answer even when the database does not
            logger.warning("outbox metrics unavailable", exc_info=True)
            return
        yield GaugeMetricFamily(
            "switchboard_webhook_dead_letters",
            "Deliveries that exhausted their retries (the dead-letter queue).",
            value=dead,
        )
        yield GaugeMetricFamily(
            "switchboard_events_outbox_lag_seconds",
            "Age of the oldest event not yet fanned out to its subscribers (0 when none).",
            value=max(0.0, float(lag or 0.0)),
        )
