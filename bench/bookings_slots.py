"""Slot computation cost on a busy organization: 10 resources, two years of history.

Builds (once, idempotently) an organization `bench-slots` in DATABASE_URL's database with
10 resources working 09:00-17:00 on weekdays and 6 bookings per resource per working day
from two years ago to a month ahead, then times `slots_compute` over 1 and 31 days.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_bench .venv/bin/python bench/bookings_slots.py
(the database must be migrated: `manage.py migrate`).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from apps.bookings.models import AppointmentType, Booking, Resource, WeeklyHours  # noqa: E402
from apps.bookings.slots import slots_compute  # noqa: E402
from apps.crm.services import contact_upsert  # noqa: E402
from apps.niches.seed import niches_load  # noqa: E402
from apps.tenancy.models import Organization  # noqa: E402
from apps.tenancy.services import organization_create  # noqa: E402

RESOURCES = 10
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # fixed, so reruns measure the same data


def build() -> tuple[Organization, AppointmentType]:
    niches_load()
    organization = Organization.objects.filter(slug="bench-slots").first()
    if organization:
        return organization, AppointmentType.objects.get(organization=organization, slug="visit")
    organization = organization_create(
        name="Bench Slots", slug="bench-slots", niche="fitness", timezone_name="America/New_York"
    )
    kind = AppointmentType.objects.create(
        organization=organization, name="Visit", slug="visit", duration_minutes=45,
        buffer_after_minutes=15, slot_interval_minutes=15, min_notice_minutes=0,
        max_days_ahead=60,
    )  # fmt: skip
    contact = contact_upsert(organization=organization, email="bench@example.com").contact
    tz = organization.tz
    rows = []
    for number in range(RESOURCES):
        resource = Resource.objects.create(organization=organization, name=f"Resource {number}")
        resource.appointment_types.add(kind)
        WeeklyHours.objects.bulk_create(
            WeeklyHours(organization=organization, resource=resource, weekday=day,
                        start_time="09:00", end_time="17:00")
            for day in range(5)
        )  # fmt: skip
        day = (NOW - timedelta(days=730)).astimezone(tz).date()
        while day <= (NOW + timedelta(days=31)).astimezone(tz).date():
            if day.weekday() < 5:
                for hour in (9, 10, 12, 13, 15, 16):  # 11:00 and 14:00 stay free
                    start = datetime(day.year, day.month, day.day, hour, tzinfo=tz)
                    rows.append(
                        Booking(organization=organization, contact=contact, appointment_type=kind,
                                resource=resource, start=start, end=start + timedelta(minutes=45),
                                blocked_start=start, blocked_end=start + timedelta(minutes=60),
                                status="completed" if start < NOW else "scheduled", source="bench")
                    )  # fmt: skip
            day += timedelta(days=1)
    Booking.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bookings_booking")
    return organization, kind


def measure(organization, kind, days: int, runs: int = 15) -> tuple[float, int, int]:
    timings, queries, found = [], 0, 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            slots = slots_compute(
                organization=organization, appointment_type=kind, start=NOW,
                end=NOW + timedelta(days=days), now=NOW,
            )  # fmt: skip
            timings.append(time.perf_counter() - started)
        queries, found = len(ctx.captured_queries), len(slots)
    return statistics.median(timings) * 1000, queries, found


def main() -> None:
    organization, kind = build()
    total = Booking.objects.filter(organization=organization).count()
    print(f"{total} bookings, {RESOURCES} resources")
    for days in (1, 7, 31):
        ms, queries, found = measure(organization, kind, days)
        print(f"{days:>2} days: median {ms:6.1f} ms, {queries} queries, {found} free starts")


if __name__ == "__main__":
    main()
