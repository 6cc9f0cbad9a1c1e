"""Demo bookings for `manage.py seed_demo`: the niche's default types, a resource with hours,
and a few bookings over the next two weeks. Idempotent."""

from __future__ import annotations

from datetime import time, timedelta

from django.db import transaction
from django.utils import timezone

from apps.bookings.models import Booking
from apps.bookings.services import (
    appointment_types_ensure_defaults,
    booking_cancel,
    booking_confirm,
    booking_create,
)
from apps.bookings.slots import slots_compute, wall_time_boundary
from apps.crm.services import contact_upsert

DEMO_SOURCE = "demo"
PEOPLE = [
    ("Maya Patel", "maya.patel@example.com"),
    ("Jordan Lee", "jordan.lee@example.com"),
    ("Sam Okafor", "sam.okafor@example.com"),
    ("Elena Rossi", "elena.rossi@example.com"),
]


def _first_free_start(organization, appointment_type, *, days_ahead: int):
    """The first free start at or after 10:00 local on the first open day from `days_ahead`."""
    tz = organization.tz
    today = timezone.now().astimezone(tz).date()
    for offset in range(days_ahead, days_ahead + 14):
        day = today + timedelta(days=offset)
        slots = slots_compute(
            organization=organization,
            appointment_type=appointment_type,
            start=wall_time_boundary(day, time(10), tz),
            end=wall_time_boundary(day + timedelta(days=1), time(0), tz),
        )
        if slots:
            return slots[0].start
    return None


@transaction.atomic
def seed_demo(*, organization) -> None:
    """Default types and resource, four contacts, four bookings (one confirmed, one cancelled)."""
    types = appointment_types_ensure_defaults(organization=organization)
    if not types or Booking.objects.filter(organization=organization, source=DEMO_SOURCE).exists():
        return
    for index, (name, email) in enumerate(PEOPLE):
        contact = contact_upsert(
            organization=organization, email=email, name=name, source=DEMO_SOURCE
        ).contact
        appointment_type = types[index % len(types)]
        start = _first_free_start(organization, appointment_type, days_ahead=2 + 3 * index)
        if start is None:
            continue
        booking = booking_create(
            organization=organization,
            contact=contact,
            appointment_type=appointment_type,
            start=start,
            source=DEMO_SOURCE,
            notes="Demo booking",
        )
        if index == 1:
            booking_confirm(booking=booking)
        elif index == 3:
            booking_cancel(booking=booking, reason="Demo: the contact asked to move to next month")
