"""Reads of the event bus: event log, endpoints, deliveries, dead letters, endpoint health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Prefetch, QuerySet
from django.utils import timezone

from apps.events.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    WebhookEndpoint,
)


def webhook_endpoint_list(*, organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_organization(organization).order_by("-created_at")


def event_type_filter(queryset: QuerySet[Event], pattern: str) -> QuerySet[Event]:
    """Filter by an exact type, `group.*` or `*` (the subscription patterns)."""
    if pattern == "*":
        return queryset
    if pattern.endswith(".*"):
        return queryset.filter(type__startswith=pattern[:-1])
    return queryset.filter(type=pattern)


def event_list(
    *,
    organization,
    type: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    trace_id: str | None = None,
) -> QuerySet[Event]:
    """The organization's events, newest first. `type` is a pattern (validated by caller)."""
    queryset = Event.objects.filter(organization=organization)
    if type:
        queryset = event_type_filter(queryset, type)
    if subject_type:
        queryset = queryset.filter(subject_type=subject_type)
    if subject_id:
        queryset = queryset.filter(subject_id=subject_id)
    if trace_id:
        queryset = queryset.filter(trace_id=trace_id)
    return queryset.order_by("-created_at")


def event_with_deliveries(*, organization) -> QuerySet[Event]:
    """Events with their deliveries (endpoint joined) and each delivery's attempts."""
    return Event.objects.filter(organization=organization).prefetch_related(
        Prefetch(
            "deliveries",
            queryset=Delivery.objects.select_related("endpoint")
            .order_by("created_at")
            .prefetch_related(
                Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("id"))
            ),
        )
    )


def dead_letters(*, organization_ids=None) -> QuerySet[Delivery]:
    """Dead deliveries, newest first (all organizations when `organization_ids` is None)."""
    queryset = Delivery.objects.filter(status=DeliveryStatus.DEAD)
    if organization_ids is not None:
        queryset = queryset.filter(organization_id__in=organization_ids)
    return queryset.select_related("event", "endpoint", "organization").order_by("-created_at")


@dataclass(frozen=True)
class HealthBucket:
    start: datetime
    attempts: int
    succeeded: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


@dataclass(frozen=True)
class EndpointHealth:
    since: datetime
    bucket: timedelta
    buckets: list[HealthBucket]
    attempts: int
    succeeded: int
    dead: int
    waiting: int

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def endpoint_health(
    *, endpoint: WebhookEndpoint, hours: int = 24, buckets: int = 48
) -> EndpointHealth:
    """Attempts, success rate and latency percentiles of `endpoint` over time (UTC buckets)."""
    now = timezone.now()
    bucket = timedelta(hours=hours) / buckets
    since = now - timedelta(hours=hours)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT floor(extract(epoch FROM created_at - %(since)s) / %(width)s)::int AS b,
                   count(*), count(*) FILTER (WHERE succeeded),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
            FROM {DeliveryAttempt._meta.db_table}
            WHERE endpoint_id = %(endpoint)s AND created_at >= %(since)s
            GROUP BY b ORDER BY b
            """,  # noqa: S608 - our own table name
            {"since": since, "width": bucket.total_seconds(), "endpoint": endpoint.pk},
        )
        rows = {b: (n, ok, p50, p95) for b, n, ok, p50, p95 in cursor.fetchall()}
    series = []
    for index in range(buckets):
        n, ok, p50, p95 = rows.get(index, (0, 0, None, None))
        series.append(HealthBucket(since + bucket * index, n, ok, p50, p95))
    counts = _status_counts(endpoint)
    return EndpointHealth(
        since=since,
        bucket=bucket,
        buckets=series,
        attempts=sum(b.attempts for b in series),
        succeeded=sum(b.succeeded for b in series),
        dead=counts.get(DeliveryStatus.DEAD, 0),
        waiting=sum(
            counts.get(s, 0)
            for s in (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DELIVERING)
        ),
    )


def _status_counts(endpoint: WebhookEndpoint) -> dict[str, int]:
    return dict(
        Delivery.objects.filter(endpoint=endpoint)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
