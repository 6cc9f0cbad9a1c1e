"""Booking reads. Each takes the organization first and returns rows with their joins loaded."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from apps.bookings.models import AppointmentType, Booking, Resource
from apps.core.errors import NotFound

_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")


def as_uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def appointment_type_list(*, organization, include_inactive: bool = False) -> QuerySet:
    queryset = AppointmentType.objects.filter(organization=organization)
    if not include_inactive:
        queryset = queryset.filter(is_active=True)
    return queryset.order_by("name", "id")


def appointment_type_get(*, organization, ref) -> AppointmentType:
    """An appointment type by id or slug; NotFound when it is not this organization's."""
    queryset = AppointmentType.objects.filter(organization=organization)
    pk = as_uuid(ref)
    if pk:
        found = queryset.filter(pk=pk).first()
    elif _SLUG.fullmatch(str(ref)):
        found = queryset.filter(slug=str(ref)).first()
    else:  # not a slug at all (NUL bytes, spaces...): nothing to look up
        found = None
    if found is None:
        raise NotFound("Appointment type not found.", details={"appointment_type": str(ref)})
    return found


def resource_get(*, organization, pk) -> Resource:
    found = Resource.objects.filter(organization=organization, pk=as_uuid(pk)).first()
    if found is None:
        raise NotFound("Resource not found.", details={"resource": str(pk)})
    return found


def booking_list(
    *,
    organization,
    contact_id=None,
    statuses: Iterable[str] | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    appointment_type: AppointmentType | None = None,
    resource: Resource | None = None,
) -> QuerySet:
    """Bookings by start time; `start_from` inclusive, `start_to` exclusive."""
    queryset = Booking.objects.filter(organization=organization).select_related(
        "appointment_type", "resource"
    )
    if contact_id is not None:
        queryset = queryset.filter(contact_id=contact_id)
    if statuses:
        queryset = queryset.filter(status__in=list(statuses))
    if start_from is not None:
        queryset = queryset.filter(start__gte=start_from)
    if start_to is not None:
        queryset = queryset.filter(start__lt=start_to)
    if appointment_type is not None:
        queryset = queryset.filter(appointment_type=appointment_type)
    if resource is not None:
        queryset = queryset.filter(resource=resource)
    return queryset.order_by("start", "id")


def booking_get(*, organization, pk) -> Booking:
    found = (
        Booking.objects.filter(organization=organization, pk=pk)
        .select_related("appointment_type", "resource")
        .first()
    )
    if found is None:
        raise NotFound("Booking not found.")
    return found
