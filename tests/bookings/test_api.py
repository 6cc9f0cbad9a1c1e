"""The bookings API: happy paths, bad input, conflicts, tenancy, auth and query counts."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.bookings.models import Booking, BookingStatus
from apps.bookings.services import booking_cancel, booking_create
from apps.events.models import Event
from tests.bookings.factories import (
    at,
    make_contact,
    make_deal,
    make_resource,
    make_type,
    next_local_day,
)

pytestmark = pytest.mark.django_db

SLOTS = "/api/v1/bookings/slots/"
BOOKINGS = "/api/v1/bookings/"
TYPES = "/api/v1/appointment-types/"


@pytest.fixture
def day(organization):
    return next_local_day(organization, weekday=2)  # a Wednesday at least two days ahead


@pytest.fixture
def theirs(other_organization):
    """Another organization's contact, type, resource, deal and booking."""
    kind = make_type(other_organization, slug="their-type")
    resource = make_resource(other_organization, kind, name="Their agent")
    contact = make_contact(other_organization, email="them@example.com")
    day = next_local_day(other_organization, weekday=2)
    booking = booking_create(
        organization=other_organization,
        contact=contact,
        appointment_type=kind,
        start=at(other_organization, day, "10:00"),
    )
    return {
        "type": kind,
        "resource": resource,
        "contact": contact,
        "deal": make_deal(other_organization, contact),
        "booking": booking,
    }


def post_booking(api, contact, kind, start, **extra):
    return api.post(
        BOOKINGS,
        {"contact_id": str(contact.id), "appointment_type": kind.slug, "start": start, **extra},
        format="json",
    )


def error(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    if code:
        assert body["code"] == code, body
    return body


# --- appointment types -------------------------------------------------------------------------


def test_appointment_types_list_active_ones(api, organization, consult, theirs):
    make_type(organization, name="Retired", slug="retired", is_active=False)
    body = api.get(TYPES).json()
    assert [t["slug"] for t in body["results"]] == ["consultation"]
    assert body["results"][0]["duration_minutes"] == 30
    assert body["results"][0]["price"] is None
    everything = api.get(TYPES, {"include_inactive": "true"}).json()
    assert {t["slug"] for t in everything["results"]} == {"consultation", "retired"}


def test_appointment_types_query_count(api, consult, django_assert_num_queries):
    api.get(TYPES)  # the first call records the key's last use
    with django_assert_num_queries(3):  # key, count, page
        assert api.get(TYPES).status_code == 200


# --- slots -------------------------------------------------------------------------------------


def test_slots_for_a_day(api, organization, consult, coach, day):
    response = api.get(
        SLOTS, {"appointment_type": consult.slug, "start": str(day), "end": str(day)}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["timezone"] == "America/New_York"
    assert body["appointment_type"]["slug"] == "consultation"
    assert len(body["slots"]) == 16
    first = body["slots"][0]
    start = at(organization, day, "09:00")
    assert first["start"] == start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert first["local_start"] == start.isoformat()
    assert first["resource_ids"] == [str(coach.id)]


def test_slots_by_id_with_offsets_and_resource(api, organization, consult, coach, day):
    make_resource(organization, consult, name="Coach B", opens="13:00", closes="14:00")
    start = at(organization, day, "12:00").astimezone(UTC)
    # an unencoded "+" in a query string arrives as a space; "+09:00" must still work
    tokyo_start = start.astimezone(timezone.get_fixed_timezone(9 * 60)).isoformat()
    response = api.get(
        f"{SLOTS}?appointment_type={consult.id}&start={tokyo_start}"
        f"&end={(start + timedelta(hours=2)).isoformat().replace('+00:00', 'Z')}"
    )
    assert response.status_code == 200, response.content
    slots = response.json()["slots"]
    assert [len(s["resource_ids"]) for s in slots] == [1, 1, 2, 2]
    only_coach = api.get(
        SLOTS,
        {
            "appointment_type": consult.slug,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "resource": str(coach.id),
        },
    ).json()["slots"]
    assert len(only_coach) == 4 and all(s["resource_ids"] == [str(coach.id)] for s in only_coach)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-03-02", "end": "2026-03-03"}, "appointment_type"),
        ({"appointment_type": "consultation", "end": "2026-03-03"}, "start"),
        ({"appointment_type": "consultation", "start": "2026-03-02"}, "end"),
        ({"appointment_type": "consultation", "start": "yesterday", "end": "2026-03-03"}, "start"),
        ({"appointment_type": "consultation", "start": "2026-02-30", "end": "2026-03-03"}, "start"),
        ({"appointment_type": "consultation", "start": "2026-03-05", "end": "2026-03-03"}, "end"),
        ({"appointment_type": "consultation", "start": "2026-03-01", "end": "2026-04-02"}, "end"),
        (
            {
                "appointment_type": "consultation",
                "start": "2026-03-02",
                "end": "2026-03-03",
                "resource": "x",
            },
            "resource",
        ),
    ],
)
def test_slots_bad_params_are_400_naming_the_param(api, consult, params, field):
    body = error(api.get(SLOTS, params), 400, "validation_error")
    assert field in body["details"]
    assert body["message"].startswith(f"{field}:")


def test_slots_never_500_on_odd_input(api, consult, coach):
    dates = {"start": "2026-03-02", "end": "2026-03-03"}
    error(api.get(SLOTS, {**dates, "appointment_type": "bad\x00slug"}), 404, "not_found")
    error(api.get(SLOTS, {**dates, "appointment_type": "x" * 500}), 404, "not_found")
    far = {"appointment_type": consult.slug, "start": "9999-12-30", "end": "9999-12-31"}
    assert "start" in error(api.get(SLOTS, far), 400)["details"]
    early = {"appointment_type": consult.slug, "start": "0001-01-01T00:00:00Z", "end": "2026-01-01"}
    assert "start" in error(api.get(SLOTS, early), 400)["details"]
    error(
        api.get(SLOTS, {**dates, "appointment_type": consult.slug, "start": "2026-03-02T25:00"}),
        400,
    )


def test_slots_unknown_or_inactive_type(api, organization, consult, coach, day):
    params = {"start": str(day), "end": str(day)}
    error(api.get(SLOTS, {**params, "appointment_type": "nope"}), 404, "not_found")
    consult.is_active = False
    consult.save()
    error(
        api.get(SLOTS, {**params, "appointment_type": consult.slug}),
        422,
        "appointment_type_inactive",
    )


def test_slots_resource_that_does_not_offer_the_type(api, organization, consult, coach, day):
    desk = make_resource(organization, name="Desk")
    response = api.get(
        SLOTS,
        {
            "appointment_type": consult.slug,
            "start": str(day),
            "end": str(day),
            "resource": str(desk.id),
        },
    )
    error(response, 422, "resource_not_eligible")


def test_slots_query_count_is_bounded(
    api, organization, contact, consult, coach, day, django_assert_num_queries
):
    make_resource(organization, consult, name="Coach B")
    booking_create(
        organization=organization,
        contact=contact,
        appointment_type=consult,
        start=at(organization, day, "10:00"),
    )
    params = {"appointment_type": consult.slug, "start": str(day)}
    api.get(SLOTS, {**params, "end": str(day)})
    for end in (day, day + timedelta(days=30)):
        with django_assert_num_queries(6):  # key, type, resources, hours, exceptions, bookings
            assert api.get(SLOTS, {**params, "end": str(end)}).status_code == 200


# --- create ------------------------------------------------------------------------------------


def test_create_booking(api, organization, contact, consult, coach, day):
    start = at(organization, day, "10:00")
    response = post_booking(
        api, contact, consult, start.isoformat(), source="n8n", notes="Knee injury"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/bookings/{body['id']}/"
    assert body["status"] == "scheduled"
    assert body["contact_id"] == str(contact.id)
    assert body["resource"] == {"id": str(coach.id), "name": "Coach A"}
    assert body["appointment_type"]["slug"] == "consultation"
    assert body["local_start"] == start.isoformat()
    assert body["start"].endswith("Z")
    assert body["source"] == "n8n" and body["notes"] == "Knee injury"
    assert Event.objects.filter(type="booking.scheduled", subject_id=body["id"]).count() == 1


def test_create_with_local_time_resource_and_deal(api, organization, contact, consult, coach, day):
    deal = make_deal(organization, contact)
    response = post_booking(
        api,
        contact,
        consult,
        f"{day}T11:30",  # no offset: the organization's local time
        resource_id=str(coach.id),
        deal_id=str(deal.id),
    )
    assert response.status_code == 201, response.content
    assert response.json()["local_start"] == at(organization, day, "11:30").isoformat()
    assert response.json()["deal_id"] == str(deal.id)


def test_create_query_count(
    api, organization, contact, consult, coach, day, django_assert_num_queries
):
    api.get(TYPES)
    # key, contact, type; resources, hours, exceptions, bookings; savepoint, resource lock,
    # insert, release; the event; the contact's open leads (rescore); the service's own
    # savepoint and its release
    with django_assert_num_queries(15):
        response = post_booking(api, contact, consult, at(organization, day, "10:00").isoformat())
    assert response.status_code == 201


def test_create_taken_slot_is_409(api, organization, contact, consult, coach, day):
    start = at(organization, day, "10:00").isoformat()
    assert post_booking(api, contact, consult, start).status_code == 201
    other = make_contact(organization, email="bo@example.com")
    error(post_booking(api, other, consult, start), 409, "slot_taken")
    assert Booking.objects.count() == 1


@pytest.mark.parametrize(
    ("when", "code"),
    [("07:00", "slot_unavailable"), ("10:10", "slot_unavailable")],
)
def test_create_time_not_offered_is_422(
    api, organization, contact, consult, coach, day, when, code
):
    error(post_booking(api, contact, consult, at(organization, day, when).isoformat()), 422, code)
    assert not Booking.objects.exists()


def test_create_in_the_past_is_422(api, organization, contact, consult, coach):
    past = timezone.now() - timedelta(days=1)
    error(post_booking(api, contact, consult, past.isoformat()), 422, "slot_in_past")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"appointment_type": "consultation", "start": "2030-01-01T10:00:00Z"}, "contact_id"),
        (
            {
                "contact_id": "nope",
                "appointment_type": "consultation",
                "start": "2030-01-01T10:00:00Z",
            },
            "contact_id",
        ),
        ({"contact_id": "{contact}", "start": "2030-01-01T10:00:00Z"}, "appointment_type"),
        ({"contact_id": "{contact}", "appointment_type": "consultation"}, "start"),
        ({"contact_id": "{contact}", "appointment_type": "consultation", "start": "soon"}, "start"),
        (
            {
                "contact_id": "{contact}",
                "appointment_type": "consultation",
                "start": "2026-03-08T02:30",
            },
            "start",  # does not exist in New York (spring forward)
        ),
        (
            {
                "contact_id": "{contact}",
                "appointment_type": "consultation",
                "start": "2026-11-01T01:30",
            },
            "start",  # happens twice in New York (fall back): an offset is needed
        ),
        (
            {
                "contact_id": "{contact}",
                "appointment_type": "consultation",
                "start": "2030-01-01T10:00:00Z",
                "resource_id": 12,
            },
            "resource_id",
        ),
        (
            {
                "contact_id": "{contact}",
                "appointment_type": "consultation",
                "start": "2030-01-01T10:00:00Z",
                "source": "x" * 33,
            },
            "source",
        ),
    ],
)
def test_create_bad_input_is_400_naming_the_field(api, contact, consult, coach, payload, field):
    payload = {k: str(contact.id) if v == "{contact}" else v for k, v in payload.items()}
    body = error(api.post(BOOKINGS, payload, format="json"), 400, "validation_error")
    assert field in body["details"], body
    assert not Booking.objects.exists()


def test_create_malformed_json_is_400(api):
    response = api.post(BOOKINGS, "{not json", content_type="application/json")
    error(response, 400, "malformed_request")


def test_create_with_foreign_ids_is_404(api, organization, contact, consult, coach, day, theirs):
    start = at(organization, day, "10:00").isoformat()
    mine = {"contact_id": str(contact.id), "appointment_type": consult.slug, "start": start}
    for change in (
        {"contact_id": str(theirs["contact"].id)},
        {"appointment_type": str(theirs["type"].id)},
        {"appointment_type": theirs["type"].slug},
        {"resource_id": str(theirs["resource"].id)},
        {"deal_id": str(theirs["deal"].id)},
    ):
        error(api.post(BOOKINGS, {**mine, **change}, format="json"), 404, "not_found")
    assert not Booking.objects.filter(organization=organization).exists()


def test_create_is_idempotent_with_a_key(api, organization, contact, consult, coach, day):
    start = at(organization, day, "10:00").isoformat()
    payload = {"contact_id": str(contact.id), "appointment_type": consult.slug, "start": start}
    first = api.post(BOOKINGS, payload, format="json", HTTP_IDEMPOTENCY_KEY="book-1")
    again = api.post(BOOKINGS, payload, format="json", HTTP_IDEMPOTENCY_KEY="book-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Event.objects.filter(type="booking.scheduled").count() == 1


# --- list and detail ---------------------------------------------------------------------------


@pytest.fixture
def three(organization, contact, consult, coach, day):
    bo = make_contact(organization, email="bo@example.com", name="Bo")
    book = lambda who, hhmm, d=day: booking_create(  # noqa: E731
        organization=organization,
        contact=who,
        appointment_type=consult,
        start=at(organization, d, hhmm),
    )
    first = book(contact, "10:00")
    second = book(bo, "11:00")
    third = book(contact, "10:00", day + timedelta(days=7))
    booking_cancel(booking=second, reason="clash")
    return first, second, third


def test_list_and_filters(api, organization, contact, three, day):
    first, second, third = three
    ids = lambda response: [b["id"] for b in response.json()["results"]]  # noqa: E731
    assert ids(api.get(BOOKINGS)) == [str(first.id), str(second.id), str(third.id)]
    assert ids(api.get(BOOKINGS, {"contact": str(contact.id)})) == [str(first.id), str(third.id)]
    assert ids(api.get(BOOKINGS, {"status": "cancelled"})) == [str(second.id)]
    assert ids(api.get(BOOKINGS, {"status": "scheduled,confirmed"})) == [
        str(first.id),
        str(third.id),
    ]
    assert ids(api.get(BOOKINGS, {"from": str(day), "to": str(day)})) == [
        str(first.id),
        str(second.id),
    ]
    assert ids(api.get(BOOKINGS, {"from": str(day + timedelta(days=1))})) == [str(third.id)]
    assert ids(api.get(BOOKINGS, {"appointment_type": "consultation", "to": str(day)})) == [
        str(first.id),
        str(second.id),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"contact": "nope"}, "contact"),
        ({"from": "later"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"resource": "nope"}, "resource"),
    ],
)
def test_list_bad_filters_are_400(api, params, field):
    body = error(api.get(BOOKINGS, params), 400, "validation_error")
    assert field in body["details"]


def test_list_query_count(api, three, django_assert_num_queries):
    api.get(BOOKINGS)
    with django_assert_num_queries(3):  # key, count, page (types and resources joined)
        assert len(api.get(BOOKINGS).json()["results"]) == 3


def test_detail(api, three, django_assert_num_queries):
    first = three[0]
    api.get(BOOKINGS)
    with django_assert_num_queries(2):
        body = api.get(f"{BOOKINGS}{first.id}/").json()
    assert body["id"] == str(first.id) and body["status"] == "scheduled"


# --- actions -----------------------------------------------------------------------------------


def test_reschedule(api, organization, three, day):
    first = three[0]
    new_start = at(organization, day, "14:00")
    response = api.post(
        f"{BOOKINGS}{first.id}/reschedule/", {"start": new_start.isoformat()}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["local_start"] == new_start.isoformat()
    event = Event.objects.get(type="booking.rescheduled", subject_id=str(first.id))
    assert event.data["previous_start"] == first.start.isoformat().replace("+00:00", "Z")


def test_reschedule_errors(api, organization, three, day):
    first, second, _third = three
    url = f"{BOOKINGS}{first.id}/reschedule/"
    error(api.post(url, {}, format="json"), 400, "validation_error")
    error(api.post(url, {"start": "whenever"}, format="json"), 400, "validation_error")
    error(
        api.post(url, {"start": at(organization, day, "07:00").isoformat()}, format="json"),
        422,
        "slot_unavailable",
    )
    taken = at(organization, day + timedelta(days=7), "10:00").isoformat()
    error(api.post(url, {"start": taken}, format="json"), 409, "slot_taken")
    cancelled = f"{BOOKINGS}{second.id}/reschedule/"
    error(
        api.post(cancelled, {"start": at(organization, day, "15:00").isoformat()}, format="json"),
        409,
        "invalid_transition",
    )


def test_cancel_and_confirm(api, three):
    first, _second, third = three
    response = api.post(f"{BOOKINGS}{third.id}/confirm/", format="json")
    assert response.status_code == 200 and response.json()["status"] == "confirmed"
    response = api.post(f"{BOOKINGS}{first.id}/cancel/", {"reason": "Sick"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancellation_reason"] == "Sick"
    again = api.post(f"{BOOKINGS}{first.id}/cancel/", {}, format="json")
    assert again.status_code == 200
    assert Event.objects.filter(type="booking.cancelled", subject_id=str(first.id)).count() == 1
    error(api.post(f"{BOOKINGS}{first.id}/confirm/", format="json"), 409, "invalid_transition")
    error(
        api.post(f"{BOOKINGS}{first.id}/cancel/", {"reason": "x" * 201}, format="json"),
        400,
        "validation_error",
    )


def test_complete_and_no_show(api, organization, contact, consult, coach):
    yesterday = timezone.now().astimezone(organization.tz).date() - timedelta(days=1)

    def past_booking(hhmm):
        start = at(organization, yesterday, hhmm)
        return booking_create(
            organization=organization,
            contact=contact,
            appointment_type=consult,
            start=start,
            now=start - timedelta(days=1),
        )

    came, missed = past_booking("10:00"), past_booking("11:00")
    assert api.post(f"{BOOKINGS}{came.id}/complete/").json()["status"] == BookingStatus.COMPLETED
    assert api.post(f"{BOOKINGS}{missed.id}/no-show/").json()["status"] == BookingStatus.NO_SHOW
    assert Event.objects.filter(type="booking.completed").count() == 1
    assert Event.objects.filter(type="booking.no_show").count() == 1
    error(api.post(f"{BOOKINGS}{came.id}/no-show/"), 409, "invalid_transition")


def test_complete_or_no_show_before_the_start_is_422(api, three):
    first = three[0]
    error(api.post(f"{BOOKINGS}{first.id}/complete/"), 422, "booking_not_started")
    error(api.post(f"{BOOKINGS}{first.id}/no-show/"), 422, "booking_not_started")


# --- tenancy and auth --------------------------------------------------------------------------

ACTIONS = ("reschedule", "cancel", "confirm", "complete", "no-show")


def test_foreign_booking_is_404_everywhere(api, organization, consult, coach, theirs, day):
    booking = theirs["booking"]
    error(api.get(f"{BOOKINGS}{booking.id}/"), 404, "not_found")
    payload = {"start": at(organization, day, "12:00").isoformat(), "reason": "x"}
    for action in ACTIONS:
        error(
            api.post(f"{BOOKINGS}{booking.id}/{action}/", payload, format="json"), 404, "not_found"
        )
    booking.refresh_from_db()
    assert booking.status == BookingStatus.SCHEDULED
    assert not Event.objects.filter(
        organization=theirs["type"].organization, type="booking.cancelled"
    ).exists()


def test_foreign_ids_in_reads_are_404(api, consult, coach, theirs, day):
    dates = {"start": str(day), "end": str(day)}
    error(api.get(SLOTS, {**dates, "appointment_type": str(theirs["type"].id)}), 404)
    error(api.get(SLOTS, {**dates, "appointment_type": theirs["type"].slug}), 404)
    error(
        api.get(
            SLOTS,
            {**dates, "appointment_type": consult.slug, "resource": str(theirs["resource"].id)},
        ),
        404,
    )
    error(api.get(BOOKINGS, {"contact": str(theirs["contact"].id)}), 404)
    error(api.get(BOOKINGS, {"resource": str(theirs["resource"].id)}), 404)
    error(api.get(BOOKINGS, {"appointment_type": theirs["type"].slug}), 404)
    assert api.get(BOOKINGS).json()["results"] == []
    assert api.get(TYPES).json()["results"][0]["slug"] == "consultation"


def test_foreign_resource_in_reschedule_is_404(api, organization, three, theirs, day):
    payload = {
        "start": at(organization, day, "15:00").isoformat(),
        "resource_id": str(theirs["resource"].id),
    }
    error(api.post(f"{BOOKINGS}{three[0].id}/reschedule/", payload, format="json"), 404)


def test_unknown_booking_is_404(api):
    error(api.get(f"{BOOKINGS}01939a5e-7c4a-7b3e-9f1d-3c2b1a0f9e8d/"), 404)
    error(api.post(f"{BOOKINGS}01939a5e-7c4a-7b3e-9f1d-3c2b1a0f9e8d/cancel/"), 404)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", TYPES),
        ("get", SLOTS),
        ("get", BOOKINGS),
        ("post", BOOKINGS),
        ("get", f"{BOOKINGS}01939a5e-7c4a-7b3e-9f1d-3c2b1a0f9e8d/"),
        *[("post", f"{BOOKINGS}01939a5e-7c4a-7b3e-9f1d-3c2b1a0f9e8d/{a}/") for a in ACTIONS],
    ],
)
def test_every_endpoint_needs_a_key(method, url, db):
    error(getattr(APIClient(), method)(url), 401, "unauthenticated")


def test_schema_documents_the_endpoints(api):
    from django.test import Client

    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in (
        "/api/v1/bookings/slots/",
        "/api/v1/bookings/{id}/no-show/",
        "/api/v1/appointment-types/",
    ):
        assert path in schema
