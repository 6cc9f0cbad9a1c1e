"""No double booking under concurrency: PostgreSQL's exclusion constraint decides.

Twenty API requests for one slot race through real threads, each on its own database
connection, with committed data (transactional_db).
"""

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.bookings.models import Booking
from apps.events.models import Event
from tests.bookings.factories import at, make_contact, make_resource, make_type, next_local_day
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db(transaction=True)

CONTENDERS = 20


def race(organization, kind, start) -> list:
    key = api_key_for(organization, name="race")
    contacts = [
        make_contact(organization, email=f"racer{i}@example.com", name=f"Racer {i}")
        for i in range(CONTENDERS)
    ]
    barrier = threading.Barrier(CONTENDERS)
    responses, crashes = [], []

    def request(contact):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            barrier.wait()
            responses.append(
                client.post(
                    "/api/v1/bookings/",
                    {
                        "contact_id": str(contact.id),
                        "appointment_type": kind.slug,
                        "start": start.isoformat(),
                    },
                    format="json",
                )
            )
        except Exception as exc:  # collected so the assertion shows it
            crashes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(c,)) for c in contacts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert crashes == []
    return responses


def outcome(responses) -> Counter:
    return Counter(
        (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else "booked")
        for r in responses
    )


def test_twenty_requests_for_one_slot_make_one_booking(organization):
    kind = make_type(organization)
    make_resource(organization, kind)
    start = at(organization, next_local_day(organization, weekday=1), "10:00")
    responses = race(organization, kind, start)
    assert outcome(responses) == {(201, "booked"): 1, (409, "slot_taken"): CONTENDERS - 1}
    assert Booking.objects.filter(organization=organization).count() == 1
    assert Event.objects.filter(organization=organization, type="booking.scheduled").count() == 1


def test_with_two_resources_each_is_booked_once(organization):
    kind = make_type(organization)
    first = make_resource(organization, kind, name="Coach A")
    second = make_resource(organization, kind, name="Coach B")
    start = at(organization, next_local_day(organization, weekday=1), "10:00")
    responses = race(organization, kind, start)
    # a request that loses its resource moves on to the next free one before giving up
    assert outcome(responses) == {(201, "booked"): 2, (409, "slot_taken"): CONTENDERS - 2}
    booked = Booking.objects.filter(organization=organization)
    assert sorted(b.resource_id for b in booked) == sorted([first.pk, second.pk])
    assert Event.objects.filter(organization=organization, type="booking.scheduled").count() == 2
