"""The bookings console: every model scoped to the operator's organizations; changes go
through the services."""

from datetime import time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.bookings.models import AppointmentType, Booking, BookingStatus, Resource, WeeklyHours
from apps.bookings.services import booking_create
from apps.events.models import Event
from tests.bookings.factories import (
    at,
    make_contact,
    make_exception,
    make_resource,
    make_type,
    next_local_day,
)

pytestmark = pytest.mark.django_db


def build(organization, label):
    kind = make_type(organization, name=f"{label} consult", slug="consult")
    resource = make_resource(organization, kind, name=f"{label} coach")
    day = next_local_day(organization, weekday=3)
    make_exception(resource, day + timedelta(days=7), reason=f"{label} holiday")
    contact = make_contact(organization, email=f"{label}@example.com", name=f"{label} contact")
    booking = booking_create(
        organization=organization,
        contact=contact,
        appointment_type=kind,
        start=at(organization, day, "10:00"),
    )
    return {"type": kind, "resource": resource, "contact": contact, "booking": booking, "day": day}


@pytest.fixture
def world(organization, other_organization, make_staff_client):
    return {
        "mine": build(organization, "Mine"),
        "theirs": build(other_organization, "Theirs"),
        "admin": make_staff_client(organization, role="admin"),
    }


CHANGELISTS = {
    "/admin/bookings/appointmenttype/": "consult",
    "/admin/bookings/resource/": "coach",
    "/admin/bookings/booking/": "contact",
}


@pytest.mark.parametrize("url", list(CHANGELISTS))
def test_changelists_show_only_my_organization(world, url):
    body = world["admin"].get(url).content.decode()
    assert f"Mine {CHANGELISTS[url]}" in body
    assert "Theirs" not in body


@pytest.mark.parametrize("model", ["appointmenttype", "resource", "booking"])
def test_foreign_rows_cannot_be_opened(world, model):
    key = {"appointmenttype": "type"}.get(model, model)
    theirs = world["theirs"][key]
    for view in ("change", "delete", "history"):
        response = world["admin"].get(f"/admin/bookings/{model}/{theirs.pk}/{view}/", follow=True)
        assert "Theirs" not in response.content.decode()
        if model == "booking" and view == "delete":
            assert response.status_code == 403  # nobody deletes bookings; they are cancelled
        else:
            assert response.redirect_chain and response.redirect_chain[-1][0] == "/admin/"


def test_resource_page_shows_its_own_hours_and_exceptions(world):
    body = world["admin"].get(f"/admin/bookings/resource/{world['mine']['resource'].pk}/change/")
    text = body.content.decode()
    assert "Mine holiday" in text and "Theirs holiday" not in text
    assert text.count('name="weekly_hours-') > 7  # seven weekday rows and their management form


def test_inline_rows_of_another_resource_cannot_be_edited(world):
    mine, theirs = world["mine"]["resource"], world["theirs"]["resource"]
    their_hours = WeeklyHours.objects.filter(resource=theirs).first()
    response = world["admin"].post(
        f"/admin/bookings/resource/{mine.pk}/change/",
        {
            "name": mine.name,
            "kind": "staff",
            "appointment_types": [str(world["mine"]["type"].pk)],
            "is_active": "on",
            "weekly_hours-TOTAL_FORMS": "1",
            "weekly_hours-INITIAL_FORMS": "1",
            "weekly_hours-0-id": str(their_hours.pk),
            "weekly_hours-0-resource": str(mine.pk),
            "weekly_hours-0-weekday": "0",
            "weekly_hours-0-start_time": "01:00",
            "weekly_hours-0-end_time": "02:00",
            "date_exceptions-TOTAL_FORMS": "0",
            "date_exceptions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code in (200, 302)
    their_hours.refresh_from_db()
    assert their_hours.start_time != time(1, 0) and their_hours.resource == theirs
    assert not WeeklyHours.objects.filter(resource=theirs, start_time=time(1, 0)).exists()
    assert set(
        WeeklyHours.objects.filter(start_time=time(1, 0)).values_list("organization", flat=True)
    ) <= {mine.organization_id}


def test_new_resource_with_hours_in_my_organization(world, organization):
    response = world["admin"].post(
        "/admin/bookings/resource/add/",
        {
            "organization": str(organization.pk),
            "name": "Studio B",
            "kind": "room",
            "appointment_types": [str(world["mine"]["type"].pk)],
            "is_active": "on",
            "weekly_hours-TOTAL_FORMS": "2",
            "weekly_hours-INITIAL_FORMS": "0",
            "weekly_hours-0-weekday": "0",
            "weekly_hours-0-start_time": "09:00",
            "weekly_hours-0-end_time": "12:00",
            "weekly_hours-1-weekday": "1",
            "weekly_hours-1-start_time": "13:00",
            "weekly_hours-1-end_time": "12:00",  # ends before it starts
            "date_exceptions-TOTAL_FORMS": "0",
            "date_exceptions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "The end time must be after the start time." in response.content.decode()
    assert not Resource.objects.filter(name="Studio B").exists()


def test_resource_types_and_type_choices_are_mine(world, organization):
    response = world["admin"].get("/admin/bookings/resource/add/")
    choices = response.context["adminform"].form.fields["appointment_types"].queryset
    assert list(choices) == [world["mine"]["type"]]
    response = world["admin"].post(
        "/admin/bookings/resource/add/",
        {
            "organization": str(organization.pk),
            "name": "Sneaky",
            "kind": "staff",
            "appointment_types": [str(world["theirs"]["type"].pk)],
            "weekly_hours-TOTAL_FORMS": "0",
            "weekly_hours-INITIAL_FORMS": "0",
            "date_exceptions-TOTAL_FORMS": "0",
            "date_exceptions-INITIAL_FORMS": "0",
        },
    )
    assert "Select a valid choice" in response.content.decode()
    assert not Resource.objects.filter(name="Sneaky").exists()


def test_appointment_type_slug_is_unique_in_the_organization(world, organization):
    response = world["admin"].post(
        f"/admin/bookings/appointmenttype/{world['mine']['type'].pk}/change/",
        {
            **{
                f: getattr(world["mine"]["type"], f)
                for f in (
                    "name",
                    "description",
                    "duration_minutes",
                    "buffer_before_minutes",
                    "buffer_after_minutes",
                    "location_kind",
                    "currency",
                    "slot_interval_minutes",
                    "min_notice_minutes",
                    "max_days_ahead",
                    "reminder_minutes_before",
                    "no_show_grace_minutes",
                )
            },
            "price": "",
            "slug": "consult",
        },
    )
    assert response.status_code == 302  # its own slug is fine
    make_type(organization, name="Second", slug="second")
    response = world["admin"].post(
        "/admin/bookings/appointmenttype/add/",
        {
            "organization": str(organization.pk),
            "name": "Duplicate",
            "slug": "second",
            "duration_minutes": 30,
            "buffer_before_minutes": 0,
            "buffer_after_minutes": 0,
            "location_kind": "in_person",
            "currency": "USD",
            "slot_interval_minutes": 30,
            "min_notice_minutes": 0,
            "max_days_ahead": 30,
            "reminder_minutes_before": 60,
            "no_show_grace_minutes": 10,
        },
    )
    assert response.status_code == 200
    assert "Another appointment type already uses this slug." in response.content.decode()


def test_booking_filters_list_only_my_types_and_resources(world):
    body = world["admin"].get("/admin/bookings/booking/").content.decode()
    assert "Mine coach" in body and "Theirs coach" not in body
    assert "Theirs consult" not in body


def test_booking_search_by_contact(world, organization):
    other = make_contact(organization, email="zed@example.com", name="Zed")
    booking_create(
        organization=organization,
        contact=other,
        appointment_type=world["mine"]["type"],
        start=at(organization, world["mine"]["day"], "11:00"),
    )
    response = world["admin"].get("/admin/bookings/booking/", {"q": "zed@example"})
    assert [b.contact for b in response.context["cl"].result_list] == [other]
    response = world["admin"].get("/admin/bookings/booking/", {"q": "Theirs"})
    assert list(response.context["cl"].result_list) == []


def test_changelist_queries_do_not_grow_with_rows(world, organization):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert world["admin"].get("/admin/bookings/booking/").status_code == 200
        return len(ctx.captured_queries)

    before = count()
    for hour in ("11:00", "12:00", "13:00", "14:00"):
        booking_create(
            organization=organization,
            contact=world["mine"]["contact"],
            appointment_type=world["mine"]["type"],
            start=at(organization, world["mine"]["day"], hour),
        )
    assert count() == before


def test_cancel_action_goes_through_the_service_and_skips_foreign_rows(world):
    mine, theirs = world["mine"]["booking"], world["theirs"]["booking"]
    response = world["admin"].post(
        "/admin/bookings/booking/",
        {"action": "cancel_bookings", "_selected_action": [str(mine.pk), str(theirs.pk)]},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == BookingStatus.CANCELLED
    assert mine.cancellation_reason.startswith("Cancelled in the console by")
    assert theirs.status == BookingStatus.SCHEDULED
    assert Event.objects.filter(type="booking.cancelled").count() == 1


def test_actions_report_what_could_not_be_done(world):
    mine = world["mine"]["booking"]
    response = world["admin"].post(
        "/admin/bookings/booking/",
        {"action": "complete_bookings", "_selected_action": [str(mine.pk)]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any("has not started yet" in m for m in messages)
    response = world["admin"].post(
        "/admin/bookings/booking/",
        {"action": "confirm_bookings", "_selected_action": [str(mine.pk)]},
        follow=True,
    )
    assert any("Confirmed 1 booking" in str(m) for m in response.context["messages"])
    mine.refresh_from_db()
    assert mine.status == BookingStatus.CONFIRMED


def test_no_show_action(world, organization):
    yesterday = timezone.now().astimezone(organization.tz).date() - timedelta(days=1)
    start = at(organization, yesterday, "10:00")
    past = booking_create(
        organization=organization,
        contact=world["mine"]["contact"],
        appointment_type=world["mine"]["type"],
        start=start,
        now=start - timedelta(days=1),
    )
    world["admin"].post(
        "/admin/bookings/booking/",
        {"action": "mark_no_show", "_selected_action": [str(past.pk)]},
    )
    past.refresh_from_db()
    assert past.status == BookingStatus.NO_SHOW
    assert Event.objects.filter(type="booking.no_show", subject_id=str(past.pk)).count() == 1


def add_booking(client, mine, day, hhmm, **extra):
    return client.post(
        "/admin/bookings/booking/add/",
        {
            "contact": str(mine["contact"].pk),
            "appointment_type": str(mine["type"].pk),
            "start_local_0": str(day),
            "start_local_1": hhmm,
            "notes": "Called in",
            **extra,
        },
    )


def test_booking_from_the_console(world, organization):
    mine = world["mine"]
    response = add_booking(world["admin"], mine, mine["day"], "15:00")
    assert response.status_code == 302
    booking = Booking.objects.get(notes="Called in")
    assert booking.source == "admin"
    assert booking.start == at(organization, mine["day"], "15:00")
    assert Event.objects.filter(type="booking.scheduled", subject_id=str(booking.pk)).count() == 1


def test_console_booking_errors_are_form_errors(world):
    mine = world["mine"]
    taken = add_booking(world["admin"], mine, mine["day"], "10:00")
    assert taken.status_code == 200
    assert "That time has just been taken" in taken.content.decode()
    closed = add_booking(world["admin"], mine, mine["day"], "20:00")
    assert "That time is not offered" in closed.content.decode()
    foreign = add_booking(
        world["admin"], mine, mine["day"], "15:00", contact=str(world["theirs"]["contact"].pk)
    )
    assert foreign.status_code == 200
    assert not Booking.objects.filter(notes="Called in").exists()


def test_only_the_notes_of_a_booking_are_edited_in_place(world):
    booking = world["mine"]["booking"]
    response = world["admin"].post(
        f"/admin/bookings/booking/{booking.pk}/change/",
        {"notes": "Bring trainers", "status": "completed"},
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.notes == "Bring trainers" and booking.status == BookingStatus.SCHEDULED


def test_operators_book_but_do_not_configure(world, organization, make_staff_client):
    operator = make_staff_client(organization, role="operator")
    assert operator.get("/admin/bookings/booking/").status_code == 200
    assert operator.get("/admin/bookings/booking/add/").status_code == 200
    assert operator.get("/admin/bookings/appointmenttype/").status_code == 200
    assert operator.get("/admin/bookings/appointmenttype/add/").status_code == 403
    assert operator.get("/admin/bookings/resource/add/").status_code == 403
    booking = world["mine"]["booking"]
    assert operator.get(f"/admin/bookings/booking/{booking.pk}/delete/").status_code == 403


def test_staff_of_another_organization_see_nothing_of_mine(
    world, other_organization, make_staff_client
):
    theirs = make_staff_client(other_organization, role="admin", email="boss@harbor.example")
    body = theirs.get("/admin/bookings/booking/").content.decode()
    assert "Theirs contact" in body and "Mine" not in body
    assert AppointmentType.objects.count() == 2
