"""Writes of the event bus: `emit` (the transactional outbox), webhook endpoints, replays.

Everything that changes deliveries here commits first and then wakes the dispatcher
(`apps.events.delivery.wake`); the sending itself always happens in Celery workers.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from apps.core import tracing
from apps.core.errors import Conflict, ValidationFailed
from apps.core.ids import uuid7
from apps.events import catalog, conf, netguard, signing
from apps.events.models import (
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    Event,
    EventCounter,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

_EVENT_TABLE = Event._meta.db_table
_COUNTER_TABLE = EventCounter._meta.db_table

# One round trip: take the organization's next sequence (creating its counter on first use)
# and insert the event. The counter row stays locked until the caller's transaction ends,
# so sequences are gap-free and follow commit order within an organization. Emit last in
# a service, so that lock is held for as short a time as possible.
_EMIT_SQL = f"""
WITH seq AS (
    INSERT INTO {_COUNTER_TABLE} (organization_id, last_sequence) VALUES (%(org)s, 1)
    ON CONFLICT (organization_id)
    DO UPDATE SET last_sequence = {_COUNTER_TABLE}.last_sequence + 1
    RETURNING last_sequence
)
INSERT INTO {_EVENT_TABLE}
    (id, organization_id, type, version, sequence, subject_type, subject_id, data,
     trace_id, created_at)
SELECT %(id)s, %(org)s, %(type)s, %(version)s, seq.last_sequence, %(subject_type)s,
       %(subject_id)s, %(data)s::jsonb, %(trace_id)s, %(created_at)s
FROM seq
RETURNING sequence
"""  # noqa: S608 - table names are our own models'


def emit(
    *,
    organization,
    type: str,
    subject_type: str,
    subject_id,
    data: dict,
    trace_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Record one event in the caller's transaction and return it.

    Must run inside `transaction.atomic()`: the event commits or rolls back with the change
    it describes. Raises `UnknownEventType` for a type missing from the catalog and
    `InvalidEventData` when `data` breaks the type's schema (both programming errors).
    Not idempotent: each call records a new event; callers emit once per change.

    The organization's sequence counter row stays locked until the caller commits, and
    foreign keys are checked at COMMIT (Django's are deferred): a row the caller locks to
    update must be locked `select_for_update(no_key=True)` (`FOR NO KEY UPDATE`), which
    other transactions' foreign-key checks pass. `FOR UPDATE` there deadlocks against any
    transaction that inserted a row pointing at it and emitted first.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("emit() must run inside the transaction of the change it records")
    event_type = catalog.get(type)
    payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))
    normalized = json.loads(payload)
    catalog.validate_data(event_type, normalized)

    event = Event(
        id=uuid7(),
        organization=organization,
        type=type,
        version=event_type.version,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=normalized,
        trace_id=trace_id or tracing.current_trace_id(),
        created_at=occurred_at or timezone.now(),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _EMIT_SQL,
            {
                "id": event.id,
                "org": organization.pk,
                "type": event.type,
                "version": event.version,
                "subject_type": event.subject_type,
                "subject_id": event.subject_id,
                "data": payload,
                "trace_id": event.trace_id,
                "created_at": event.created_at,
            },
        )
        (event.sequence,) = cursor.fetchone()
    event._state.adding = False
    event._state.db = "default"
    for hook in _emit_hooks:
        hook(event)
    return event


_emit_hooks: list = []


def on_event_emitted(hook) -> None:
    """Register `hook(event)`, called inside the transaction after each emit.

    The delivery layer uses it to schedule fan-out with `transaction.on_commit`.
    """
    if hook not in _emit_hooks:
        _emit_hooks.append(hook)


# --- fan-out scheduling: one on-commit callback per transaction ----------------------------


class _CommitBatch:
    """Runs once after its transaction commits, for every event that transaction emitted:
    counts them and wakes the dispatcher. Never raises (other callbacks must still run)."""

    def __init__(self, conn):
        self.conn = conn
        self.types: list[str] = []

    def registered(self) -> bool:
        # Gone from the list when the (savepoint of the) transaction that registered it
        # rolled back: then a new batch is needed.
        return any(func is self for _sids, func, _robust in self.conn.run_on_commit)

    def __call__(self) -> None:
        if getattr(self.conn, "_sb_event_batch", None) is self:
            self.conn._sb_event_batch = None
        try:
            from apps.events import delivery, metrics

            metrics.record_emitted(self.types)
            delivery.wake()
        except Exception:
            logger.exception("after-commit event hook failed; the sweeper will deliver")


def schedule_dispatch(event: Event) -> None:
    """`on_event_emitted` hook: make sure the current transaction wakes the dispatcher."""
    conn = transaction.get_connection()
    batch = getattr(conn, "_sb_event_batch", None)
    if batch is None or not batch.registered():
        batch = _CommitBatch(conn)
        conn._sb_event_batch = batch
        transaction.on_commit(batch, robust=True)
    batch.types.append(event.type)


def _wake_on_commit() -> None:
    from apps.events import delivery

    transaction.on_commit(delivery.wake, robust=True)


# --- validation --------------------------------------------------------------------------


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code=code, details={field: [message]})


def event_type_patterns_clean(patterns, *, field: str = "event_types") -> list[str]:
    """Validated, de-duplicated patterns (exact types, `group.*`, `*`)."""
    if not isinstance(patterns, list | tuple) or not patterns:
        raise _invalid(
            field, "give at least one event type pattern (e.g. lead.created, booking.*, *)."
        )
    unknown = [p for p in patterns if not isinstance(p, str) or not catalog.pattern_is_valid(p)]
    if unknown:
        names = ", ".join(repr(p) for p in unknown)
        raise _invalid(
            field,
            f"unknown event type pattern {names}; see GET /api/v1/event-types/.",
            code="unknown_event_type",
        )
    return list(dict.fromkeys(patterns))


def _url_clean(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise _invalid("url", "this field is required.")
    url = url.strip()
    if len(url) > 2000:
        raise _invalid("url", "at most 2000 characters.")
    try:
        netguard.url_validate(url)
    except netguard.BlockedURL as exc:
        raise _invalid("url", f"{exc}.", code="invalid_url") from None
    return url


def _secret_clean(secret) -> str:
    try:
        signing.secret_key(secret)
    except signing.InvalidSecret as exc:
        raise _invalid(
            "secret", f"not a valid whsec_ secret: {exc}.", code="invalid_secret"
        ) from None
    return secret


_LIMITS = {
    "timeout_seconds": (1, 30),
    "max_concurrency": (1, 50),
    "rate_limit_per_second": (1, 10_000),
}


def _limit_clean(field: str, value, *, nullable: bool = False):
    if value is None and nullable:
        return None
    low, high = _LIMITS[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(field, f"a whole number from {low} to {high}.")
    return value


# --- endpoints ---------------------------------------------------------------------------


def webhook_endpoint_create(
    *,
    organization,
    url: str,
    event_types: list[str],
    secret: str | None = None,
    description: str = "",
    timeout_seconds: int = 10,
    max_concurrency: int = 10,
    rate_limit_per_second: int | None = None,
) -> WebhookEndpoint:
    """Subscribe `url` to `event_types`; a `whsec_` secret is generated unless given.

    Not idempotent (API calls use Idempotency-Key; `connect_n8n` matches by URL).
    """
    endpoint = WebhookEndpoint(
        organization=organization,
        url=_url_clean(url),
        event_types=event_type_patterns_clean(event_types),
        secret=_secret_clean(secret) if secret else signing.secret_generate(),
        description=(description or "")[:500],
        timeout_seconds=_limit_clean("timeout_seconds", timeout_seconds),
        max_concurrency=_limit_clean("max_concurrency", max_concurrency),
        rate_limit_per_second=_limit_clean(
            "rate_limit_per_second", rate_limit_per_second, nullable=True
        ),
    )
    with transaction.atomic():
        endpoint.save(force_insert=True)
    return endpoint


_UNSET = object()


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url=_UNSET,
    event_types=_UNSET,
    description=_UNSET,
    status=_UNSET,
    timeout_seconds=_UNSET,
    max_concurrency=_UNSET,
    rate_limit_per_second=_UNSET,
) -> WebhookEndpoint:
    """Edit, pause (deliveries are held), resume (held ones go out) or disable/re-enable.

    Disabling moves waiting deliveries to the dead letters; re-enabling clears the failure
    history (dead deliveries stay dead until replayed). Idempotent.
    """
    now = timezone.now()
    fields = ["updated_at"]
    if url is not _UNSET:
        endpoint.url = _url_clean(url)
        fields.append("url")
    if event_types is not _UNSET:
        endpoint.event_types = event_type_patterns_clean(event_types)
        fields.append("event_types")
    if description is not _UNSET:
        endpoint.description = (description or "")[:500]
        fields.append("description")
    for name, value in (
        ("timeout_seconds", timeout_seconds),
        ("max_concurrency", max_concurrency),
        ("rate_limit_per_second", rate_limit_per_second),
    ):
        if value is not _UNSET:
            setattr(
                endpoint,
                name,
                _limit_clean(name, value, nullable=name == "rate_limit_per_second"),
            )
            fields.append(name)
    resumed = killed = False
    if status is not _UNSET and status != endpoint.status:
        if status not in EndpointStatus.values:
            raise _invalid("status", f"one of {', '.join(EndpointStatus.values)}.")
        previous = endpoint.status
        endpoint.status = status
        fields.append("status")
        if status == EndpointStatus.DISABLED:
            endpoint.disabled_at, endpoint.disabled_reason = now, "disabled by a person"
            killed = True
        elif status == EndpointStatus.ACTIVE:
            resumed = True
            if previous == EndpointStatus.DISABLED:
                endpoint.disabled_at, endpoint.disabled_reason = None, ""
                endpoint.consecutive_failures = 0
                endpoint.failing_since = endpoint.circuit_open_until = None
                fields += ["consecutive_failures", "failing_since", "circuit_open_until"]
        fields += ["disabled_at", "disabled_reason"]
    with transaction.atomic():
        if killed:
            deliveries_kill_open(endpoint_id=endpoint.pk, reason="disabled by a person")
        endpoint.save(update_fields=list(dict.fromkeys(fields)))
        if resumed:
            Delivery.objects.filter(
                endpoint=endpoint,
                status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED),
                next_attempt_at__isnull=True,
            ).update(next_attempt_at=now, updated_at=now)
            _wake_on_commit()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Unsubscribe: the endpoint goes with its deliveries and attempts."""
    with transaction.atomic():
        endpoint.delete()


def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, secret: str | None = None
) -> WebhookEndpoint:
    """Replace the secret; the old one keeps signing too (two signatures) for 24 hours."""
    new_secret = _secret_clean(secret) if secret else signing.secret_generate()
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(
        seconds=float(conf.get("WEBHOOK_SECRET_OVERLAP_SECONDS"))
    )
    endpoint.secret = new_secret
    with transaction.atomic():
        endpoint.save(
            update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
        )
    return endpoint


def webhook_endpoint_auto_disable(*, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    """Disable a failing endpoint and emit `webhook_endpoint.disabled` (in the caller's
    transaction). Idempotent: an already disabled endpoint is left as it is."""
    if endpoint.status == EndpointStatus.DISABLED:
        return endpoint
    with transaction.atomic():
        endpoint.status = EndpointStatus.DISABLED
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = reason[:500]
        endpoint.save(update_fields=["status", "disabled_at", "disabled_reason", "updated_at"])
        emit(
            organization=endpoint.organization,
            type="webhook_endpoint.disabled",
            subject_type="webhook_endpoint",
            subject_id=endpoint.pk,
            data={"endpoint_id": str(endpoint.pk), "url": endpoint.url, "reason": reason},
        )
    logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)
    return endpoint


def deliveries_kill_open(*, endpoint_id, reason: str) -> int:
    """Move an endpoint's waiting deliveries to the dead letters (after a disable)."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id, status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED)
    ).update(
        status=DeliveryStatus.DEAD,
        next_attempt_at=None,
        last_error=f"endpoint disabled: {reason}"[:500],
        updated_at=timezone.now(),
    )


# --- replay ------------------------------------------------------------------------------

_REPLAYABLE = (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD, DeliveryStatus.FAILED)


def deliveries_replay(*, deliveries: QuerySet) -> int:
    """Send these deliveries again from attempt 1 (same webhook-id, fresh signature).

    In-flight and pending ones, and those of disabled endpoints, are left alone. Returns
    how many were requeued. Idempotent for a delivery already requeued (it is pending).
    """
    now = timezone.now()
    with transaction.atomic():
        count = (
            deliveries.filter(status__in=_REPLAYABLE)
            .exclude(endpoint__status=EndpointStatus.DISABLED)
            .update(
                status=DeliveryStatus.PENDING,
                attempt_count=0,
                next_attempt_at=now,
                last_error="",
                replay_count=F("replay_count") + 1,
                updated_at=now,
            )
        )
        if count:
            _wake_on_commit()
    return count


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if endpoint.status == EndpointStatus.DISABLED:
        raise Conflict(
            "The endpoint is disabled; set its status to active before replaying.",
            code="endpoint_disabled",
        )


def endpoint_replay_dead(*, endpoint: WebhookEndpoint) -> int:
    """Requeue every dead delivery of `endpoint` (the dead-letter queue). Returns the count."""
    _require_enabled(endpoint)
    return deliveries_replay(
        deliveries=Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.DEAD)
    )


_BACKFILL_SQL = """
INSERT INTO {delivery}
    (id, organization_id, event_id, endpoint_id, status, attempt_count, next_attempt_at,
     last_error, replay_count, created_at, updated_at)
SELECT events_uuid7(), e.organization_id, e.id, %(endpoint)s, 'pending', 0, now(), '', 0,
       now(), now()
FROM {event} e
WHERE {where}
ORDER BY e.id
ON CONFLICT (event_id, endpoint_id) DO UPDATE SET
    status = 'pending', attempt_count = 0, next_attempt_at = now(), last_error = '',
    replay_count = {delivery}.replay_count + 1, updated_at = now()
WHERE {delivery}.status IN ('succeeded', 'dead', 'failed')
"""


def _deliveries_upsert(*, endpoint: WebhookEndpoint, where: str, params: dict) -> int:
    """Create or reset `endpoint`'s deliveries of the events matching `where` (alias `e`)."""
    params = {**params, "org": endpoint.organization_id, "endpoint": endpoint.pk}
    where = f"e.organization_id = %(org)s AND {where}"
    limit = int(conf.get("WEBHOOK_REPLAY_MAX_EVENTS"))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {Event._meta.db_table} e WHERE {where}"  # noqa: S608
            f" LIMIT {limit + 1}) AS matching",
            params,
        )
        (matching,) = cursor.fetchone()
        if matching > limit:
            raise ValidationFailed(
                f"More than {limit} events match; narrow the time range or the types.",
                code="too_many_events",
                details={"since": [f"more than {limit} events match"]},
            )
        cursor.execute(
            _BACKFILL_SQL.format(
                delivery=Delivery._meta.db_table, event=Event._meta.db_table, where=where
            ),
            params,
        )
        count = cursor.rowcount
        if count:
            _wake_on_commit()
    return count


def endpoint_backfill(
    *,
    endpoint: WebhookEndpoint,
    since: datetime,
    until: datetime | None = None,
    event_types: list[str] | None = None,
) -> int:
    """(Re)send every event of the organization created in [since, until) whose type
    matches `event_types` (default: the endpoint's own patterns) to `endpoint`, keeping
    each event's webhook-id. Deliveries already waiting or in flight are not doubled.

    Refuses ranges of more than WEBHOOK_REPLAY_MAX_EVENTS events. Returns the count.
    """
    from apps.events.delivery import PATTERN_MATCH_SQL

    _require_enabled(endpoint)
    patterns = event_type_patterns_clean(event_types) if event_types else list(endpoint.event_types)
    until = until or timezone.now()
    if until <= since:
        raise _invalid("until", "must be later than since.")
    where = "e.created_at >= %(since)s AND e.created_at < %(until)s AND " + (
        PATTERN_MATCH_SQL.format(type="e.type", patterns="%(patterns)s::text[]")
    )
    return _deliveries_upsert(
        endpoint=endpoint,
        where=where,
        params={"since": since, "until": until, "patterns": patterns},
    )


def event_redeliver(*, event: Event, endpoint: WebhookEndpoint | None = None) -> int:
    """Send `event` again: to `endpoint` (creating its delivery if it never had one), or to
    every endpoint it was delivered to. Keeps the webhook-id. Returns the count requeued."""
    if endpoint is None:
        return deliveries_replay(deliveries=Delivery.objects.filter(event=event))
    _require_enabled(endpoint)
    return _deliveries_upsert(
        endpoint=endpoint, where="e.id = %(event)s", params={"event": event.pk}
    )
