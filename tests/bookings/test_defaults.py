"""Niche defaults and demo data."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.bookings.demo import seed_demo
from apps.bookings.models import AppointmentType, Booking, Resource, WeeklyHours
from apps.bookings.services import appointment_types_ensure_defaults
from apps.bookings.slots import slots_compute
from apps.events.models import Event
from tests.bookings.factories import make_resource, make_type
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

SIGNATURE_TYPES = {
    "fitness": "Free trial class",
    "med_spa": "Consultation",
    "real_estate": "Property viewing",
    "consultant": "Discovery call",
    "local_service": "On-site estimate",
}


@pytest.mark.parametrize("niche", list(SIGNATURE_TYPES))
def test_each_niche_gets_bookable_defaults(niche):
    organization = OrganizationFactory(niche=niche, timezone_name="Europe/London")
    types = appointment_types_ensure_defaults(organization=organization)
    assert SIGNATURE_TYPES[niche] in [t.name for t in types]
    assert len(types) >= 3
    assert all(t.duration_minutes > 0 and t.currency == organization.currency for t in types)
    [resource] = Resource.objects.filter(organization=organization)
    assert set(resource.appointment_types.all()) == set(types)
    assert WeeklyHours.objects.filter(resource=resource).count() >= 5
    now = timezone.now()
    for appointment_type in types:
        slots = slots_compute(
            organization=organization,
            appointment_type=appointment_type,
            start=now,
            end=now + timedelta(days=14),
        )
        assert slots, f"{appointment_type} has no slot in the next two weeks"


def test_defaults_are_idempotent_and_keep_the_owners_edits(organization):
    first = appointment_types_ensure_defaults(organization=organization)
    trial = AppointmentType.objects.get(organization=organization, slug="free-trial-class")
    trial.duration_minutes = 75
    trial.save()
    again = appointment_types_ensure_defaults(organization=organization)
    assert [t.pk for t in again] == [t.pk for t in first]
    assert AppointmentType.objects.filter(organization=organization).count() == len(first)
    assert Resource.objects.filter(organization=organization).count() == 1
    trial.refresh_from_db()
    assert trial.duration_minutes == 75


def test_new_defaults_join_the_existing_resources(organization):
    own = make_type(organization, slug="bootcamp", name="Bootcamp")
    coach = make_resource(organization, own, name="Coach Kim")
    types = appointment_types_ensure_defaults(organization=organization)
    assert Resource.objects.filter(organization=organization).count() == 1
    assert set(coach.appointment_types.all()) == {own, *types}


def test_seed_demo_is_idempotent(organization):
    seed_demo(organization=organization)
    bookings = Booking.objects.filter(organization=organization)
    counts = (bookings.count(), Event.objects.count())
    assert counts[0] == 4
    assert set(bookings.values_list("status", flat=True)) == {"scheduled", "confirmed", "cancelled"}
    seed_demo(organization=organization)
    assert (bookings.count(), Event.objects.count()) == counts


def test_seed_demo_command_runs_twice(db):
    call_command("seed_demo", "--password", "demo-Password-1")
    call_command("seed_demo", "--password", "demo-Password-1")
    assert Booking.objects.filter(organization__slug="demo").count() == 4
    assert Booking.objects.filter(organization__slug="harbor-realty").count() == 4
