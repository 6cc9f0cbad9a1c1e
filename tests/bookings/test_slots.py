"""Slot computation: hours, grid, buffers, exceptions, notice, horizon, existing bookings."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.bookings.services import booking_cancel, booking_create
from apps.bookings.slots import slots_compute
from apps.core.errors import Unprocessable
from tests.bookings.factories import local, make_exception, make_resource, make_type, utc

pytestmark = pytest.mark.django_db

NOW = utc("2026-03-01 12:00")  # a Sunday; New York is on EST (UTC-5) until 2026-03-08


def day_slots(organization, appointment_type, day: str, now=NOW, **kwargs):
    start = local(organization, f"{day} 00:00")
    return slots_compute(
        organization=organization,
        appointment_type=appointment_type,
        start=start,
        end=start + timedelta(days=1),
        now=now,
        **kwargs,
    )


def local_times(organization, slots) -> list[str]:
    return [s.start.astimezone(organization.tz).strftime("%H:%M") for s in slots]


def test_weekly_hours_on_the_grid(organization, consult, coach):
    slots = day_slots(organization, consult, "2026-03-02")
    times = local_times(organization, slots)
    assert times[0] == "09:00" and times[-1] == "16:30" and len(times) == 16
    assert slots[0].start == utc("2026-03-02 14:00")  # 09:00 EST, returned in UTC
    assert slots[0].end == utc("2026-03-02 14:30")
    assert slots[0].resource_ids == (coach.pk,)


def test_the_appointment_must_fit_before_closing(organization, consult):
    long = make_type(organization, name="Long", slug="long", duration_minutes=90)
    make_resource(organization, long)
    times = local_times(organization, day_slots(organization, long, "2026-03-02"))
    assert times[0] == "09:00" and times[-1] == "15:30"


def test_grid_is_anchored_at_opening_time(organization):
    kind = make_type(organization, slot_interval_minutes=20, duration_minutes=20)
    make_resource(organization, kind, opens="09:10", closes="10:10")
    assert local_times(organization, day_slots(organization, kind, "2026-03-02")) == [
        "09:10",
        "09:30",
        "09:50",
    ]


def test_split_hours_and_closed_weekdays(organization, consult):
    make_resource(
        organization,
        consult,
        hours={0: [("09:00", "10:00"), ("14:00", "15:00")]},  # Mondays only, with a lunch gap
    )
    assert local_times(organization, day_slots(organization, consult, "2026-03-02")) == [
        "09:00",
        "09:30",
        "14:00",
        "14:30",
    ]
    assert day_slots(organization, consult, "2026-03-03") == []  # Tuesday: no hours


def test_existing_bookings_and_buffers_block(organization, contact):
    padded = make_type(
        organization, slug="padded", buffer_before_minutes=15, buffer_after_minutes=15
    )
    coach = make_resource(organization, padded)
    booking_create(
        organization=organization,
        contact=contact,
        appointment_type=padded,
        start=local(organization, "2026-03-02 10:00"),
        now=NOW,
    )
    # blocked 09:45-10:45; a candidate's own blocked range may touch it but not overlap it
    times = local_times(organization, day_slots(organization, padded, "2026-03-02"))
    assert times[:3] == ["09:00", "11:00", "11:30"]
    plain = make_type(organization, slug="plain")
    coach.appointment_types.add(plain)
    # a type without buffers still may not start inside the booking's blocked range
    times = local_times(organization, day_slots(organization, plain, "2026-03-02"))
    assert times[:3] == ["09:00", "11:00", "11:30"]


def test_other_type_blocked_exactly_by_the_blocked_range(organization, contact, consult, coach):
    padded = make_type(organization, slug="padded", buffer_after_minutes=30)
    coach.appointment_types.add(padded)
    booking_create(
        organization=organization,
        contact=contact,
        appointment_type=padded,
        start=local(organization, "2026-03-02 10:00"),
        now=NOW,
    )
    # padded blocks 10:00-11:00 for everything on this resource
    times = local_times(organization, day_slots(organization, consult, "2026-03-02"))
    assert "09:30" in times and "10:00" not in times and "10:30" not in times
    assert "11:00" in times


def test_cancelled_bookings_free_their_time(organization, contact, consult, coach):
    booking = booking_create(
        organization=organization,
        contact=contact,
        appointment_type=consult,
        start=local(organization, "2026-03-02 10:00"),
        now=NOW,
    )
    assert "10:00" not in local_times(organization, day_slots(organization, consult, "2026-03-02"))
    booking_cancel(booking=booking, reason="changed plans")
    assert "10:00" in local_times(organization, day_slots(organization, consult, "2026-03-02"))


def test_closed_date_exception(organization, consult, coach):
    make_exception(coach, local(organization, "2026-03-02 00:00").date(), reason="Holiday")
    assert day_slots(organization, consult, "2026-03-02") == []
    assert day_slots(organization, consult, "2026-03-03") != []


def test_date_exception_hours_replace_the_weekly_hours(organization, consult, coach):
    day = local(organization, "2026-03-02 00:00").date()
    make_exception(coach, day, "12:00", "13:00", reason="Short day")
    assert local_times(organization, day_slots(organization, consult, "2026-03-02")) == [
        "12:00",
        "12:30",
    ]
    make_exception(coach, day, reason="Closed after all")  # a closed row wins
    assert day_slots(organization, consult, "2026-03-02") == []


def test_min_notice(organization, coach):
    consult = coach.appointment_types.get()
    consult.min_notice_minutes = 60
    consult.save()
    now = local(organization, "2026-03-02 09:10")
    times = local_times(organization, day_slots(organization, consult, "2026-03-02", now=now))
    assert times[0] == "10:30"


def test_past_slots_are_never_offered(organization, consult, coach):
    now = local(organization, "2026-03-02 12:00")
    times = local_times(organization, day_slots(organization, consult, "2026-03-02", now=now))
    assert times[0] == "12:00"  # zero notice: the current instant is still bookable
    assert day_slots(organization, consult, "2026-03-01", now=now) == []


def test_max_days_ahead(organization, consult, coach):
    consult.max_days_ahead = 2
    consult.save()
    slots = slots_compute(
        organization=organization,
        appointment_type=consult,
        start=NOW,
        end=NOW + timedelta(days=10),
        now=NOW,
    )
    assert slots and max(s.start for s in slots) <= NOW + timedelta(days=2)
    assert min(s.start for s in slots) >= NOW


def test_several_resources_union_and_filter(organization, contact, consult, coach):
    coach_b = make_resource(organization, consult, name="Coach B", opens="12:00", closes="18:00")
    slots = day_slots(organization, consult, "2026-03-02")
    by_time = {s.start.astimezone(organization.tz).strftime("%H:%M"): s for s in slots}
    assert by_time["09:00"].resource_ids == (coach.pk,)
    assert by_time["12:00"].resource_ids == (coach.pk, coach_b.pk)
    assert by_time["17:30"].resource_ids == (coach_b.pk,)
    booking_create(
        organization=organization,
        contact=contact,
        appointment_type=consult,
        start=local(organization, "2026-03-02 12:00"),
        resource=coach_b,
        now=NOW,
    )
    slots = day_slots(organization, consult, "2026-03-02")
    assert {s.start: s for s in slots}[local(organization, "2026-03-02 12:00")].resource_ids == (
        coach.pk,
    )
    only_b = day_slots(organization, consult, "2026-03-02", resource=coach_b)
    assert local_times(organization, only_b)[0] == "12:30"


def test_inactive_resources_and_types(organization, consult, coach):
    other = make_type(organization, slug="other")
    with pytest.raises(Unprocessable) as exc:
        day_slots(organization, other, "2026-03-02", resource=coach)
    assert exc.value.code == "resource_not_eligible"
    coach.is_active = False
    coach.save()
    assert day_slots(organization, consult, "2026-03-02") == []
    consult.is_active = False
    consult.save()
    with pytest.raises(Unprocessable) as exc:
        day_slots(organization, consult, "2026-03-02")
    assert exc.value.code == "appointment_type_inactive"


def test_other_organizations_bookings_and_resources_are_ignored(
    organization, other_organization, consult, coach
):
    theirs = make_type(other_organization, slug="consultation")
    make_resource(other_organization, theirs, name="Their coach")
    slots = day_slots(organization, consult, "2026-03-02")
    assert {rid for s in slots for rid in s.resource_ids} == {coach.pk}


def test_query_count_does_not_grow_with_the_range(organization, contact, consult, coach):
    make_resource(organization, consult, name="Coach B")
    for day in ("2026-03-02", "2026-03-20"):
        booking_create(
            organization=organization,
            contact=contact,
            appointment_type=consult,
            start=local(organization, f"{day} 10:00"),
            now=NOW,
        )
    counts = []
    for days in (1, 31):
        with CaptureQueriesContext(connection) as ctx:
            slots = slots_compute(
                organization=organization,
                appointment_type=consult,
                start=NOW,
                end=NOW + timedelta(days=days),
                now=NOW,
            )
        assert slots
        counts.append(len(ctx.captured_queries))
    assert counts == [4, 4]  # resources, weekly hours, date exceptions, bookings
