"""Bookings test data, arranged through models for configuration and services for bookings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from apps.bookings.models import AppointmentType, DateException, Resource, WeeklyHours
from apps.crm.services import contact_upsert

EVERY_DAY = range(7)


def make_type(organization, **fields) -> AppointmentType:
    defaults = {
        "name": "Consultation",
        "slug": "consultation",
        "duration_minutes": 30,
        "slot_interval_minutes": 30,
        "min_notice_minutes": 0,
        "max_days_ahead": 365,
        "reminder_minutes_before": 24 * 60,
        "no_show_grace_minutes": 15,
    }
    defaults.update(fields)
    return AppointmentType.objects.create(organization=organization, **defaults)


def make_resource(
    organization,
    *types: AppointmentType,
    name: str = "Coach A",
    hours: dict | None = None,
    days=EVERY_DAY,
    opens: str = "09:00",
    closes: str = "17:00",
    **fields,
) -> Resource:
    """A resource offering `types`; `hours` {weekday: [(start, end), ...]} or `days` x opens-closes."""
    resource = Resource.objects.create(organization=organization, name=name, **fields)
    resource.appointment_types.add(*types)
    if hours is None:
        hours = {day: [(opens, closes)] for day in days}
    WeeklyHours.objects.bulk_create(
        WeeklyHours(
            organization=organization,
            resource=resource,
            weekday=day,
            start_time=time.fromisoformat(start),
            end_time=time.fromisoformat(end),
        )
        for day, intervals in hours.items()
        for start, end in intervals
    )
    return resource


def make_exception(resource, day: date, start: str | None = None, end: str | None = None, **kw):
    return DateException.objects.create(
        organization_id=resource.organization_id,
        resource=resource,
        date=day,
        start_time=time.fromisoformat(start) if start else None,
        end_time=time.fromisoformat(end) if end else None,
        **kw,
    )


def make_contact(organization, email: str = "ana@example.com", name: str = "Ana"):
    return contact_upsert(organization=organization, email=email, name=name, source="api").contact


def utc(text: str) -> datetime:
    """'2026-03-09 14:00' → aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(organization, text: str) -> datetime:
    """'2026-03-09 10:00' in the organization's zone (must exist and be unambiguous)."""
    return datetime.fromisoformat(text).replace(tzinfo=organization.tz)


def next_local_day(organization, *, weekday: int, min_days: int = 2) -> date:
    """The first `weekday` at least `min_days` from today in the organization's zone."""
    today = datetime.now(organization.tz).date()
    day = today + timedelta(days=min_days)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def at(organization, day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=organization.tz)


def make_deal(organization, contact=None, title: str = "Membership"):
    """A bare deal (CRM's deal services live in another app; tests only need a row)."""
    from apps.crm.models import Deal, Pipeline, Stage

    pipeline = Pipeline.objects.create(organization=organization, name=f"Sales {title}")
    stage = Stage.objects.create(organization=organization, pipeline=pipeline, name="New", order=1)
    return Deal.objects.create(
        organization=organization, title=title, contact=contact, pipeline=pipeline, stage=stage
    )
