"""`emit`: the one way to record an event (the transactional outbox)."""

from __future__ import annotations

import json
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from apps.core import tracing
from apps.core.ids import uuid7
from apps.events import catalog
from apps.events.models import Event, EventCounter

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
    _emit_hooks.append(hook)
