"""Booking write actions. Each runs in one transaction and emits its event there, last.

No double booking: PostgreSQL's `booking_no_overlap` exclusion constraint is the guarantee.
Services insert or move a booking inside a savepoint and turn the constraint's violation
into `Conflict(code="slot_taken")`. Before that insert they lock the resource row
(`FOR NO KEY UPDATE`, released if the savepoint rolls back): without it, two transactions
inserting overlapping ranges can each wait on the other's uncommitted index entry, and one
of them dies with a deadlock error after `deadlock_timeout` instead of a clean violation.
The lock only orders contenders; the constraint still decides.

Error codes (HTTP status through the API):
- 409 `slot_taken`: another live booking holds the time (checked first, enforced by the
  constraint); 409 `invalid_transition`: the booking's status does not allow the action.
- 422 `slot_unavailable`: not a start time the type offers (outside hours, a closed date,
  off the slot grid); `slot_in_past`, `slot_too_soon` (min notice), `slot_too_far` (max
  days ahead); `appointment_type_inactive`; `resource_not_eligible` (inactive, or does
  not serve the type); `booking_not_started` (complete / no-show before the start).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Value
from django.utils import timezone

from apps.bookings import errors
from apps.bookings.models import (
    LIVE_STATUSES,
    AppointmentType,
    Booking,
    BookingStatus,
    Resource,
    WeeklyHours,
)
from apps.bookings.slots import Availability, booking_window_limits, wall_time_boundary
from apps.core.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from apps.crm.services import contact_leads_rescore
from apps.events.services import emit

OVERLAP_CONSTRAINT = "booking_no_overlap"
EXCLUSION_VIOLATION = "23P01"
# Bookings that ended longer ago than this are left alone by the no-show sweep: after an
# outage, a follow-up sequence for a week-old appointment would do more harm than good.
NO_SHOW_LOOKBACK = timedelta(days=7)
SWEEP_BATCH_SIZE = 200


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- events ----------------------------------------------------------------------------------


def booking_event_data(booking: Booking, **extra) -> dict:
    """The `booking.*` event payload (apps/events/catalog.py BOOKING, plus local time)."""
    tz = booking.organization.tz
    return {
        "booking_id": str(booking.id),
        "contact_id": str(booking.contact_id),
        "start": booking.start,
        "end": booking.end,
        "status": booking.status,
        "appointment_type": booking.appointment_type.slug,
        "appointment_type_name": booking.appointment_type.name,
        "resource_id": str(booking.resource_id),
        "resource_name": booking.resource.name,
        "timezone": booking.organization.timezone,
        "local_start": booking.start.astimezone(tz).isoformat(),
        "source": booking.source,
        **extra,
    }


def _emit(booking: Booking, type: str, **extra) -> None:
    emit(
        organization=booking.organization,
        type=type,
        subject_type="booking",
        subject_id=booking.id,
        data=booking_event_data(booking, **extra),
    )


# --- checks ----------------------------------------------------------------------------------


def _same_organization(organization, *objects) -> None:
    for obj in objects:
        if obj is not None and obj.organization_id != organization.pk:
            raise NotFound(f"{obj._meta.verbose_name.capitalize()} not found.")


def _check_start(*, appointment_type: AppointmentType, start: datetime, now: datetime) -> None:
    if timezone.is_naive(start):
        raise ValidationFailed("start: Give a time zone offset.", details={"start": ["naive"]})
    if start <= now:
        raise Unprocessable("That time is in the past.", code="slot_in_past")
    earliest, latest = booking_window_limits(appointment_type=appointment_type, now=now)
    if start < earliest:
        raise Unprocessable(
            f"{appointment_type.name} needs {appointment_type.min_notice_minutes} minutes' notice.",
            code="slot_too_soon",
            details={"earliest": iso_utc(earliest)},
        )
    if start > latest:
        raise Unprocessable(
            f"{appointment_type.name} can be booked at most "
            f"{appointment_type.max_days_ahead} days ahead.",
            code="slot_too_far",
            details={"latest": iso_utc(latest)},
        )


def _offered_resources(
    availability: Availability, start: datetime, resource: Resource | None
) -> list[Resource]:
    """Resources whose hours and grid offer `start` (busy or not); raise when there are none."""
    if resource is not None and resource.pk not in {r.pk for r in availability.resources}:
        raise errors.resource_not_eligible(resource, availability.appointment_type)
    offered = [r for r in availability.resources if start in set(availability.candidate_starts(r))]
    if not offered:
        raise Unprocessable(
            "That time is not offered: outside the hours, on a closed date, or off the "
            f"{availability.appointment_type.slot_interval_minutes}-minute grid.",
            code="slot_unavailable",
        )
    return offered


def _by_day_load(
    organization, resources: list[Resource], start: datetime, exclude_booking_id=None
) -> list[Resource]:
    """Resources ordered by how many live bookings they have that local day (then by name)."""
    if len(resources) < 2:
        return resources
    tz = organization.tz
    day = start.astimezone(tz).date()
    bookings = Booking.objects.filter(
        resource_id__in=[r.pk for r in resources],
        status__in=LIVE_STATUSES,
        start__gte=wall_time_boundary(day, time(0), tz),
        start__lt=wall_time_boundary(day + timedelta(days=1), time(0), tz),
    )
    if exclude_booking_id is not None:
        bookings = bookings.exclude(pk=exclude_booking_id)
    load = dict(
        bookings.order_by()
        .values("resource_id")
        .annotate(n=Count("id"))
        .values_list("resource_id", "n")
    )
    return sorted(resources, key=lambda r: load.get(r.pk, 0))


def _is_overlap_violation(exc: IntegrityError) -> bool:
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return (
        getattr(cause, "sqlstate", None) == EXCLUSION_VIOLATION
        and getattr(diag, "constraint_name", None) == OVERLAP_CONSTRAINT
    )


def _lock_resource(resource: Resource) -> None:
    list(Resource.objects.select_for_update(no_key=True).filter(pk=resource.pk).values_list("pk"))


def _reminder_due_at(appointment_type: AppointmentType, start: datetime, now: datetime):
    """When the reminder is due, or None: no reminder configured, or its moment already passed
    when the booking was made (the `booking.scheduled` event is the confirmation then)."""
    if not appointment_type.reminder_minutes_before:
        return None
    due = start - timedelta(minutes=appointment_type.reminder_minutes_before)
    return due if due > now else None


def _place(booking: Booking, candidates: list[Resource], *, save) -> Booking:
    """Try `candidates` in order: lock, write (`save(booking)`), stop at the first that fits."""
    for resource in candidates:
        booking.resource = resource
        try:
            with transaction.atomic():
                _lock_resource(resource)
                save(booking)
            return booking
        except IntegrityError as exc:
            if not _is_overlap_violation(exc):
                raise
    raise errors.slot_taken()


def _timing_fields(booking: Booking, start: datetime, now: datetime) -> None:
    appointment_type = booking.appointment_type
    start = start.astimezone(UTC)
    booking.start = start
    booking.end = start + timedelta(minutes=appointment_type.duration_minutes)
    booking.blocked_start = start - timedelta(minutes=appointment_type.buffer_before_minutes)
    booking.blocked_end = booking.end + timedelta(minutes=appointment_type.buffer_after_minutes)
    booking.reminder_due_at = _reminder_due_at(appointment_type, start, now)
    booking.reminder_sent_at = None


# --- create and move ---------------------------------------------------------------------------


@transaction.atomic
def booking_create(
    *,
    organization,
    contact,
    appointment_type: AppointmentType,
    start: datetime,
    resource: Resource | None = None,
    deal=None,
    notes: str = "",
    source: str = "api",
    now: datetime | None = None,
) -> Booking:
    """Book `contact` for `appointment_type` at `start`; emit `booking.scheduled`.

    The start must be offered (active type, inside a resource's hours, on the grid, within
    min notice and max days ahead). Without `resource`, the free resource with the fewest
    bookings that day is chosen (the next one is tried if it is taken meanwhile).
    Raises Conflict `slot_taken` or Unprocessable (see the module docstring). Not
    idempotent: the API's Idempotency-Key makes retries safe.
    """
    now = now or timezone.now()
    _same_organization(organization, contact, appointment_type, resource, deal)
    while contact.merged_into_id:  # a merged contact's bookings belong to the survivor
        contact = contact.merged_into
    if not appointment_type.is_active:
        raise errors.appointment_type_inactive(appointment_type)
    _check_start(appointment_type=appointment_type, start=start, now=now)
    availability = Availability(
        organization=organization,
        appointment_type=appointment_type,
        window_start=start,
        window_end=start + timedelta(microseconds=1),
        resource=resource,
    )
    offered = _offered_resources(availability, start, resource)
    free = [r for r in offered if availability.is_free(r, start)]
    if not free:
        raise errors.slot_taken()
    booking = Booking(
        organization=organization,
        contact=contact,
        appointment_type=appointment_type,
        deal=deal,
        status=BookingStatus.SCHEDULED,
        source=(source or "")[:32],
        notes=notes or "",
    )
    _timing_fields(booking, start, now)

    _place(
        booking,
        _by_day_load(organization, free, start),
        save=lambda row: row.save(force_insert=True),
    )
    _emit(booking, "booking.scheduled")
    # A booking is engagement: lead rules with `has_booking` may now qualify the lead.
    contact_leads_rescore(organization=organization, contact=contact)
    return booking


def _lock_booking(booking: Booking) -> Booking:
    return (
        Booking.objects.select_for_update(no_key=True, of=("self",))
        .select_related("organization", "appointment_type", "resource")
        .get(pk=booking.pk)
    )


@transaction.atomic
def booking_reschedule(
    *,
    booking: Booking,
    start: datetime,
    resource: Resource | None = None,
    now: datetime | None = None,
) -> Booking:
    """Move a live booking to `start` (and optionally another resource); emit
    `booking.rescheduled` with `previous_start`.

    The new time must be offered like a new booking's (the booking's own old range does
    not block it). Without `resource`, the current resource is kept when it is free, else
    another free one is chosen. The booking goes back to `scheduled` and gets a fresh
    reminder: a confirmation was for the old time. A deactivated type stops new bookings,
    not moves of existing ones. Moving to the same start and resource changes nothing and
    emits nothing (idempotent).
    """
    now = now or timezone.now()
    booking = _lock_booking(booking)
    _same_organization(booking.organization, resource)
    _require_status(booking, LIVE_STATUSES, action="reschedule", done="rescheduled")
    if start == booking.start and (resource is None or resource.pk == booking.resource_id):
        return booking
    _check_start(appointment_type=booking.appointment_type, start=start, now=now)
    availability = Availability(
        organization=booking.organization,
        appointment_type=booking.appointment_type,
        window_start=start,
        window_end=start + timedelta(microseconds=1),
        resource=resource,
        exclude_booking_id=booking.pk,
    )
    offered = _offered_resources(availability, start, resource)
    free = [r for r in offered if availability.is_free(r, start)]
    if not free:
        raise errors.slot_taken()
    ordered = _by_day_load(booking.organization, free, start, exclude_booking_id=booking.pk)
    ordered.sort(key=lambda r: r.pk != booking.resource_id)  # stay with the same person if free
    previous_start = booking.start
    booking.status = BookingStatus.SCHEDULED
    _timing_fields(booking, start, now)

    def update(row: Booking) -> None:
        row.save(
            update_fields=[
                "resource",
                "start",
                "end",
                "blocked_start",
                "blocked_end",
                "status",
                "reminder_due_at",
                "reminder_sent_at",
                "updated_at",
            ]
        )

    _place(booking, ordered, save=update)
    _emit(booking, "booking.rescheduled", previous_start=previous_start)
    return booking


# --- status changes ----------------------------------------------------------------------------


def _require_status(booking: Booking, allowed, *, action: str, done: str) -> None:
    if booking.status not in allowed:
        raise Conflict(
            f"A {booking.get_status_display().lower()} booking cannot be {done}.",
            code="invalid_transition",
            details={"status": booking.status, "action": action},
        )


def _require_started(booking: Booking, now: datetime, *, action: str) -> None:
    if booking.start > now:
        raise Unprocessable(
            f"The booking has not started yet; it cannot be {action}.", code="booking_not_started"
        )


@transaction.atomic
def booking_confirm(*, booking: Booking) -> Booking:
    """The contact confirmed they will attend: scheduled → confirmed. Idempotent.

    Emits nothing: the event catalog has no `booking.confirmed` type.
    """
    booking = _lock_booking(booking)
    if booking.status == BookingStatus.CONFIRMED:
        return booking
    _require_status(booking, {BookingStatus.SCHEDULED}, action="confirm", done="confirmed")
    booking.status = BookingStatus.CONFIRMED
    booking.save(update_fields=["status", "updated_at"])
    return booking


@transaction.atomic
def booking_cancel(*, booking: Booking, reason: str = "", now: datetime | None = None) -> Booking:
    """Cancel a live booking (its time becomes free); emit `booking.cancelled` with the reason.

    Cancelling a cancelled booking changes nothing and emits nothing (idempotent).
    """
    booking = _lock_booking(booking)
    if booking.status == BookingStatus.CANCELLED:
        return booking
    _require_status(booking, LIVE_STATUSES, action="cancel", done="cancelled")
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = now or timezone.now()
    booking.cancellation_reason = (reason or "").strip()[:200]
    booking.save(update_fields=["status", "cancelled_at", "cancellation_reason", "updated_at"])
    _emit(booking, "booking.cancelled", reason=booking.cancellation_reason)
    return booking


@transaction.atomic
def booking_complete(*, booking: Booking, now: datetime | None = None) -> Booking:
    """The appointment took place; emit `booking.completed`. Idempotent.

    Also corrects a no-show (the contact came but nobody marked it in time).
    """
    now = now or timezone.now()
    booking = _lock_booking(booking)
    if booking.status == BookingStatus.COMPLETED:
        return booking
    _require_status(
        booking, {*LIVE_STATUSES, BookingStatus.NO_SHOW}, action="complete", done="completed"
    )
    _require_started(booking, now, action="completed")
    booking.status = BookingStatus.COMPLETED
    booking.completed_at = now
    booking.no_show_at = None
    booking.save(update_fields=["status", "completed_at", "no_show_at", "updated_at"])
    _emit(booking, "booking.completed")
    return booking


def _no_show(booking: Booking, now: datetime) -> None:
    booking.status = BookingStatus.NO_SHOW
    booking.no_show_at = now
    booking.save(update_fields=["status", "no_show_at", "updated_at"])
    _emit(booking, "booking.no_show")


@transaction.atomic
def booking_mark_no_show(*, booking: Booking, now: datetime | None = None) -> Booking:
    """The contact did not come (marked by a person); emit `booking.no_show`. Idempotent."""
    now = now or timezone.now()
    booking = _lock_booking(booking)
    if booking.status == BookingStatus.NO_SHOW:
        return booking
    _require_status(booking, LIVE_STATUSES, action="no_show", done="marked as a no-show")
    _require_started(booking, now, action="marked as a no-show")
    _no_show(booking, now)
    return booking


# --- scheduled sweeps (beat) ---------------------------------------------------------------


def _sweep(queryset, handle, *, batch_size: int) -> int:
    """Lock due rows in batches (SKIP LOCKED), handle each, commit per batch.

    Concurrent sweeps take disjoint rows, and a handled row no longer matches `queryset`,
    so nothing is handled twice. Rows are handled in organization order so that two
    sweeps take the per-organization event counters in the same order (no deadlock).
    """
    done = 0
    while True:
        with transaction.atomic():
            batch = list(
                queryset.select_for_update(skip_locked=True, of=("self",))
                .select_related("organization", "appointment_type", "resource")
                .order_by("organization_id", "id")[:batch_size]
            )
            for booking in batch:
                handle(booking)
        done += len(batch)
        if len(batch) < batch_size:
            return done


def booking_reminders_send_due(
    *, now: datetime | None = None, batch_size: int = SWEEP_BATCH_SIZE
) -> int:
    """Emit `booking.reminder_due` once for each live booking whose reminder time has come
    and whose start is still ahead. Returns how many. Idempotent: `reminder_sent_at` is set
    in the same transaction, and concurrent runs skip each other's locked rows.
    """
    now = now or timezone.now()
    due = Booking.objects.filter(
        status__in=LIVE_STATUSES,
        reminder_sent_at__isnull=True,
        reminder_due_at__lte=now,
        start__gt=now,
    )

    def remind(booking: Booking) -> None:
        booking.reminder_sent_at = now
        booking.save(update_fields=["reminder_sent_at", "updated_at"])
        _emit(
            booking,
            "booking.reminder_due",
            minutes_before=booking.appointment_type.reminder_minutes_before,
        )

    return _sweep(due, remind, batch_size=batch_size)


def booking_no_shows_detect(
    *, now: datetime | None = None, batch_size: int = SWEEP_BATCH_SIZE
) -> int:
    """Mark live bookings whose end + the type's grace has passed as no-shows and emit
    `booking.no_show` for each. Returns how many. Idempotent (a no-show is not live).
    Bookings that ended more than NO_SHOW_LOOKBACK ago are left for a person to settle.
    """
    now = now or timezone.now()
    grace = ExpressionWrapper(
        F("appointment_type__no_show_grace_minutes") * Value(timedelta(minutes=1)),
        output_field=DurationField(),
    )
    overdue = (
        Booking.objects.filter(
            status__in=LIVE_STATUSES, end__lte=now, end__gt=now - NO_SHOW_LOOKBACK
        )
        .alias(deadline=F("end") + grace)
        .filter(deadline__lte=now)
    )
    return _sweep(overdue, lambda booking: _no_show(booking, now), batch_size=batch_size)


# --- niche defaults ------------------------------------------------------------------------------


@transaction.atomic
def appointment_types_ensure_defaults(*, organization) -> list[AppointmentType]:
    """Give the organization its niche's default appointment types and, when it has no
    resource yet, a default resource with weekly hours that offers them.

    Idempotent: types are matched by slug and never overwritten (the owner's edits stay);
    a type created now is offered by every active resource of the organization. Returns the
    niche's default types. Concurrent calls are serialized on the organization row.
    """
    from apps.bookings.defaults import APPOINTMENT_TYPES, RESOURCES
    from apps.tenancy.models import Organization

    list(
        Organization.objects.select_for_update(no_key=True).filter(pk=organization.pk).values("pk")
    )
    niche = organization.primary_niche.slug
    defaults = APPOINTMENT_TYPES.get(niche, [])
    existing = {
        t.slug: t
        for t in AppointmentType.objects.filter(
            organization=organization, slug__in=[d.slug for d in defaults]
        )
    }
    created: list[AppointmentType] = []
    for default in defaults:
        if default.slug in existing:
            continue
        existing[default.slug] = AppointmentType.objects.create(
            organization=organization, currency=organization.currency, **vars(default)
        )
        created.append(existing[default.slug])

    resources = list(Resource.objects.filter(organization=organization, is_active=True))
    if not resources and niche in RESOURCES:
        spec = RESOURCES[niche]
        resource = Resource.objects.create(
            organization=organization, name=spec.name, kind=spec.kind
        )
        WeeklyHours.objects.bulk_create(
            WeeklyHours(
                organization=organization,
                resource=resource,
                weekday=weekday,
                start_time=start,
                end_time=end,
            )
            for weekday, intervals in spec.hours.items()
            for start, end in intervals
        )
        resources = [resource]
        created = list(existing.values())
    for resource in resources:
        if created:
            resource.appointment_types.add(*created)
    return [existing[d.slug] for d in defaults]
