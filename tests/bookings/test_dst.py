"""Slots across daylight-saving changes and for callers in other time zones.

America/New_York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
Europe/London:    2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.
"""

import itertools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.bookings.services import booking_create
from apps.bookings.slots import (
    slots_compute,
    wall_clock_of_day,
    wall_time_boundary,
    wall_time_instants,
)
from tests.bookings.factories import make_contact, make_resource, make_type, utc
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

SUNDAY = 6


@pytest.fixture
def london(db):
    return OrganizationFactory(name="Camden Yoga", slug="camden", timezone_name="Europe/London")


JANUARY = utc("2026-01-01 00:00")


def slots_on(organization, appointment_type, day: date, now=JANUARY):
    tz = organization.tz
    return slots_compute(
        organization=organization,
        appointment_type=appointment_type,
        start=wall_time_boundary(day, time(0), tz),
        end=wall_time_boundary(day + timedelta(days=1), time(0), tz),
        now=now,
    )


def rendered(organization, slots) -> list[str]:
    return [s.start.astimezone(organization.tz).strftime("%H:%M%z") for s in slots]


def assert_continuous(slots, minutes=30):
    starts = [s.start for s in slots]
    assert len(set(starts)) == len(starts), "duplicate slots"
    gaps = {b - a for a, b in itertools.pairwise(starts)}
    assert gaps == {timedelta(minutes=minutes)}, f"missing slots: {gaps}"


def night_shift(organization, opens="00:00", closes="06:00", **type_fields):
    kind = make_type(organization, **type_fields)
    make_resource(organization, kind, hours={SUNDAY: [(opens, closes)]})
    return kind


def test_new_york_spring_forward_skips_the_missing_hour(organization):
    kind = night_shift(organization)
    slots = slots_on(organization, kind, date(2026, 3, 8))
    assert rendered(organization, slots) == [
        "00:00-0500",
        "00:30-0500",
        "01:00-0500",
        "01:30-0500",
        # 02:00 and 02:30 do not exist that night: skipped, not shifted onto 03:00/03:30
        "03:00-0400",
        "03:30-0400",
        "04:00-0400",
        "04:30-0400",
        "05:00-0400",
        "05:30-0400",
    ]
    assert slots[0].start == utc("2026-03-08 05:00")
    assert slots[4].start == utc("2026-03-08 07:00")
    assert_continuous(slots)  # in elapsed time nothing is missing


def test_spring_forward_slot_spanning_the_gap_lasts_its_real_duration(organization):
    kind = night_shift(organization, duration_minutes=60)
    slot = next(
        s
        for s in slots_on(organization, kind, date(2026, 3, 8))
        if s.start == utc("2026-03-08 06:30")  # 01:30 EST
    )
    assert slot.end == utc("2026-03-08 07:30")
    assert slot.end.astimezone(organization.tz).strftime("%H:%M%z") == "03:30-0400"


def test_hours_opening_inside_the_gap_follow_rfc_5545(organization):
    kind = night_shift(organization, opens="02:30", closes="05:00")
    # 02:30 does not exist; RFC 5545 reads it with the offset before the gap: 03:30 EDT
    assert rendered(organization, slots_on(organization, kind, date(2026, 3, 8))) == [
        "03:30-0400",
        "04:00-0400",
        "04:30-0400",
    ]


def test_new_york_fall_back_offers_both_occurrences_once_each(organization):
    kind = night_shift(organization, closes="04:00")
    slots = slots_on(organization, kind, date(2026, 11, 1))
    assert rendered(organization, slots) == [
        "00:00-0400",
        "00:30-0400",
        "01:00-0400",
        "01:30-0400",
        "01:00-0500",  # the repeated hour: later instants, told apart by their offset
        "01:30-0500",
        "02:00-0500",
        "02:30-0500",
        "03:00-0500",
        "03:30-0500",
    ]
    assert [s.start for s in slots[2:6]] == [
        utc("2026-11-01 05:00"),
        utc("2026-11-01 05:30"),
        utc("2026-11-01 06:00"),
        utc("2026-11-01 06:30"),
    ]
    assert_continuous(slots)


def test_fall_back_closing_time_means_its_first_occurrence(organization):
    kind = night_shift(organization, closes="01:30")
    assert rendered(organization, slots_on(organization, kind, date(2026, 11, 1))) == [
        "00:00-0400",
        "00:30-0400",
        "01:00-0400",
    ]


def test_both_occurrences_of_0130_can_be_booked(organization):
    kind = night_shift(organization, closes="04:00")
    contact_a = make_contact(organization, email="a@example.com")
    contact_b = make_contact(organization, email="b@example.com")
    first = booking_create(
        organization=organization,
        contact=contact_a,
        appointment_type=kind,
        start=utc("2026-11-01 05:30"),
        now=utc("2026-10-01 00:00"),
    )
    second = booking_create(
        organization=organization,
        contact=contact_b,
        appointment_type=kind,
        start=utc("2026-11-01 06:30"),
        now=utc("2026-10-01 00:00"),
    )
    assert first.resource_id == second.resource_id
    remaining = rendered(
        organization, slots_on(organization, kind, date(2026, 11, 1), now=utc("2026-10-01 00:00"))
    )
    assert "01:30-0400" not in remaining and "01:30-0500" not in remaining
    assert "01:00-0400" in remaining and "01:00-0500" in remaining


def test_working_hours_keep_their_wall_clock_across_the_change(organization):
    kind = make_type(organization)
    make_resource(organization, kind)  # every day 09:00-17:00 local
    saturday = slots_on(organization, kind, date(2026, 3, 7))
    monday = slots_on(organization, kind, date(2026, 3, 9))
    assert saturday[0].start == utc("2026-03-07 14:00")  # 09:00 EST
    assert monday[0].start == utc("2026-03-09 13:00")  # 09:00 EDT
    assert len(saturday) == len(monday) == 16


def test_london_spring_forward(london):
    kind = night_shift(london, closes="04:00")
    slots = slots_on(london, kind, date(2026, 3, 29))
    assert rendered(london, slots) == [
        "00:00+0000",
        "00:30+0000",
        "02:00+0100",
        "02:30+0100",
        "03:00+0100",
        "03:30+0100",
    ]
    assert [s.start for s in slots][:3] == [
        utc("2026-03-29 00:00"),
        utc("2026-03-29 00:30"),
        utc("2026-03-29 01:00"),
    ]
    assert_continuous(slots)


def test_london_fall_back(london):
    kind = night_shift(london, closes="03:00")
    slots = slots_on(london, kind, date(2026, 10, 25))
    assert rendered(london, slots) == [
        "00:00+0100",
        "00:30+0100",
        "01:00+0100",
        "01:30+0100",
        "01:00+0000",
        "01:30+0000",
        "02:00+0000",
        "02:30+0000",
    ]
    assert slots[0].start == utc("2026-10-24 23:00")
    assert_continuous(slots)


def test_a_caller_in_another_zone_gets_the_same_instants(organization):
    kind = make_type(organization)
    make_resource(organization, kind)
    tokyo = ZoneInfo("Asia/Tokyo")
    # Monday 2026-03-02 in New York, asked for by a caller in Tokyo (already Tuesday there)
    start_tokyo = datetime(2026, 3, 2, 14, 0, tzinfo=tokyo)  # = 05:00Z = 00:00 EST
    asked = slots_compute(
        organization=organization,
        appointment_type=kind,
        start=start_tokyo,
        end=start_tokyo + timedelta(days=1),
        now=utc("2026-03-01 00:00"),
    )
    assert asked == slots_on(organization, kind, date(2026, 3, 2), now=utc("2026-03-01 00:00"))
    assert asked[0].start.astimezone(tokyo).strftime("%a %H:%M") == "Mon 23:00"


@pytest.mark.parametrize(
    "zone",
    [
        "America/New_York",
        "Europe/London",
        "America/Santiago",  # changes at midnight
        "Australia/Lord_Howe",  # a 30-minute change
        "Asia/Kathmandu",  # no DST, a :45 offset
    ],
)
def test_the_fast_path_agrees_with_the_general_conversion(zone):
    tz = ZoneInfo(zone)
    day = date(2026, 1, 1)
    while day.year == 2026:
        convert = wall_clock_of_day(day, tz)
        for minutes in range(0, 24 * 60, 30):
            wall = datetime.combine(day, time(0)) + timedelta(minutes=minutes)
            assert list(convert(wall)) == wall_time_instants(wall, tz), (zone, wall)
        day += timedelta(days=1)
