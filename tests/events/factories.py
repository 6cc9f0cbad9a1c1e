"""Arrange event-bus state through the services, like production code does."""

from __future__ import annotations

import uuid

from django.db import transaction

from apps.events import services


def endpoint_for(organization, url: str, event_types=("*",), **kwargs):
    return services.webhook_endpoint_create(
        organization=organization, url=url, event_types=list(event_types), **kwargs
    )


def emit_event(organization, type: str = "contact.created", **data):
    """Emit one event in its own transaction (as a service would)."""
    contact_id = str(uuid.uuid4())
    payload = {"contact_id": contact_id, **data}
    if type.startswith("lead."):
        payload = {"lead_id": str(uuid.uuid4()), "contact_id": contact_id, "status": "new", **data}
    elif type.startswith("booking."):
        payload = {
            "booking_id": str(uuid.uuid4()),
            "contact_id": contact_id,
            "start": "2026-12-01T10:00:00Z",
            "end": "2026-12-01T11:00:00Z",
            "status": "scheduled",
            **data,
        }
    elif type.startswith("deal."):
        payload = {"deal_id": str(uuid.uuid4()), "contact_id": contact_id, "stage": "won", **data}
    with transaction.atomic():
        return services.emit(
            organization=organization,
            type=type,
            subject_type=type.split(".")[0],
            subject_id=contact_id,
            data=payload,
        )
