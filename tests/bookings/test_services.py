"""Booking services: validation, resource choice, status changes, one event each, rollback."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from apps.bookings import services
from apps.bookings.models import Booking, BookingStatus
from apps.core.errors import Conflict, NotFound, Unprocessable
from apps.events.models import Event
from tests.bookings.factories import (
    local,
    make_contact,
    make_exception,
    make_resource,
    make_type,
    utc,
)

pytestmark = pytest.mark.django_db

NOW = utc("2026-03-01 12:00")


def book(organization, contact, kind, when="2026-03-02 10:00", now=NOW, **kwargs):
    return services.booking_create(
        organization=organization,
        contact=contact,
        appointment_type=kind,
        start=local(organization, when) if isinstance(when, str) else when,
        now=now,
        **kwargs,
    )


def events(booking=None, type=None) -> list[Event]:
    queryset = Event.objects.filter(subject_type="booking")
    if booking is not None:
        queryset = queryset.filter(subject_type="booking", subject_id=str(booking.id))
    if type is not None:
        queryset = queryset.filter(type=type)
    return list(queryset.order_by("sequence"))


# --- create ------------------------------------------------------------------------------------


def test_create_books_and_emits_scheduled_once(organization, contact, consult, coach):
    booking = book(organization, contact, consult, source="n8n", notes="First visit")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.SCHEDULED
    assert booking.resource == coach
    assert booking.start == utc("2026-03-02 15:00")
    assert booking.end == utc("2026-03-02 15:30")
    assert (booking.blocked_start, booking.blocked_end) == (booking.start, booking.end)
    assert booking.reminder_due_at == booking.start - timedelta(hours=24)
    [event] = events(booking)
    assert event.type == "booking.scheduled"
    assert event.data["booking_id"] == str(booking.id)
    assert event.data["contact_id"] == str(contact.id)
    assert event.data["start"] == "2026-03-02T15:00:00Z"
    assert event.data["local_start"] == "2026-03-02T10:00:00-05:00"
    assert event.data["appointment_type"] == "consultation"
    assert event.data["resource_id"] == str(coach.id)
    assert event.data["status"] == "scheduled"


def test_buffers_extend_the_blocked_range(organization, contact, coach):
    padded = make_type(
        organization, slug="padded", buffer_before_minutes=10, buffer_after_minutes=20
    )
    coach.appointment_types.add(padded)
    booking = book(organization, contact, padded)
    assert booking.blocked_start == booking.start - timedelta(minutes=10)
    assert booking.blocked_end == booking.end + timedelta(minutes=20)


def test_no_reminder_when_its_time_has_passed_or_it_is_off(organization, contact, consult, coach):
    soon = book(
        organization, contact, consult, when="2026-03-02 10:00", now=utc("2026-03-02 00:00")
    )
    assert soon.reminder_due_at is None  # booked 10 hours ahead with a 24-hour reminder
    consult.reminder_minutes_before = 0
    consult.save()
    assert book(organization, contact, consult, when="2026-03-05 10:00").reminder_due_at is None


@pytest.mark.parametrize(
    ("when", "now", "code"),
    [
        ("2026-03-02 10:00", utc("2026-03-02 16:00"), "slot_in_past"),
        ("2026-03-02 08:00", NOW, "slot_unavailable"),  # before opening
        ("2026-03-02 16:45", NOW, "slot_unavailable"),  # would end after closing
        ("2026-03-02 10:10", NOW, "slot_unavailable"),  # off the 30-minute grid
        ("2027-03-02 10:00", NOW, "slot_too_far"),
    ],
)
def test_times_that_are_not_offered(organization, contact, consult, coach, when, now, code):
    with pytest.raises(Unprocessable) as exc:
        book(organization, contact, consult, when=when, now=now)
    assert exc.value.code == code
    assert not Booking.objects.exists() and not events()


def test_min_notice(organization, contact, consult, coach):
    consult.min_notice_minutes = 120
    consult.save()
    with pytest.raises(Unprocessable) as exc:
        book(organization, contact, consult, now=local(organization, "2026-03-02 08:30"))
    assert exc.value.code == "slot_too_soon"
    assert exc.value.details["earliest"] == "2026-03-02T15:30:00Z"


def test_closed_date(organization, contact, consult, coach):
    make_exception(coach, local(organization, "2026-03-02 00:00").date(), reason="Inventory")
    with pytest.raises(Unprocessable) as exc:
        book(organization, contact, consult)
    assert exc.value.code == "slot_unavailable"


def test_inactive_type_and_ineligible_resources(organization, contact, consult, coach):
    stranger = make_resource(organization, name="Other desk")  # offers nothing
    with pytest.raises(Unprocessable) as exc:
        book(organization, contact, consult, resource=stranger)
    assert exc.value.code == "resource_not_eligible"
    coach.is_active = False
    coach.save()
    with pytest.raises(Unprocessable) as exc:
        book(organization, contact, consult, resource=coach)
    assert exc.value.code == "resource_not_eligible"
    consult.is_active = False
    consult.save()
    with pytest.raises(Unprocessable) as exc:
        book(organization, contact, consult)
    assert exc.value.code == "appointment_type_inactive"
    assert not Booking.objects.exists()


def test_foreign_rows_are_not_found(organization, other_organization, contact, consult, coach):
    their_contact = make_contact(other_organization, email="them@example.com")
    their_type = make_type(other_organization)
    their_coach = make_resource(other_organization, their_type)
    for kwargs in (
        {"contact": their_contact},
        {"appointment_type": their_type},
        {"resource": their_coach},
    ):
        arguments = {"contact": contact, "kind": consult, **kwargs}
        if "appointment_type" in arguments:
            arguments["kind"] = arguments.pop("appointment_type")
        with pytest.raises(NotFound):
            book(organization, **arguments)
    assert not Booking.objects.exists()


def test_a_taken_slot_is_409_and_writes_nothing(organization, contact, consult, coach):
    first = book(organization, contact, consult)
    other = make_contact(organization, email="bo@example.com")
    with pytest.raises(Conflict) as exc:
        book(organization, other, consult)
    assert exc.value.code == "slot_taken"
    assert Booking.objects.count() == 1
    assert len(events(type="booking.scheduled")) == 1
    assert events(first)[0].type == "booking.scheduled"


def test_the_database_refuses_overlaps_on_its_own(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    clone = Booking(
        organization=organization,
        contact=contact,
        appointment_type=consult,
        resource=coach,
        start=booking.start + timedelta(minutes=10),
        end=booking.end + timedelta(minutes=10),
        blocked_start=booking.start + timedelta(minutes=10),
        blocked_end=booking.end + timedelta(minutes=10),
    )
    with pytest.raises(IntegrityError, match="booking_no_overlap"), transaction.atomic():
        clone.save()
    clone.status = BookingStatus.CANCELLED  # dead bookings do not take part
    clone.save()


def test_picks_the_least_busy_free_resource(organization, contact, consult, coach):
    coach_b = make_resource(organization, consult, name="Coach B")
    book(organization, contact, consult, when="2026-03-02 09:00", resource=coach)
    first = book(organization, contact, consult, when="2026-03-02 11:00")
    assert first.resource == coach_b  # Coach A already has a booking that day
    second = book(organization, contact, consult, when="2026-03-02 11:00")
    assert second.resource == coach
    with pytest.raises(Conflict):
        book(organization, contact, consult, when="2026-03-02 11:00")


def test_a_merged_contact_books_for_the_survivor(organization, contact, consult, coach):
    duplicate = make_contact(organization, email="ana.old@example.com")
    duplicate.merged_into = contact
    duplicate.save()
    assert book(organization, duplicate, consult).contact == contact


# --- reschedule --------------------------------------------------------------------------------


def test_reschedule_moves_and_emits_previous_start(organization, contact, consult, coach):
    long = make_type(organization, slug="long", duration_minutes=60)
    coach.appointment_types.add(long)
    booking = book(organization, contact, long)
    services.booking_confirm(booking=booking)
    moved = services.booking_reschedule(
        booking=booking, start=local(organization, "2026-03-02 10:30"), now=NOW
    )  # overlaps its own old time: allowed
    moved.refresh_from_db()
    assert moved.start == utc("2026-03-02 15:30") and moved.end == utc("2026-03-02 16:30")
    assert moved.status == BookingStatus.SCHEDULED  # the confirmation was for the old time
    assert moved.reminder_due_at == moved.start - timedelta(hours=24)
    assert moved.reminder_sent_at is None
    [event] = events(booking, "booking.rescheduled")
    assert event.data["previous_start"] == "2026-03-02T15:00:00Z"
    assert event.data["start"] == "2026-03-02T15:30:00Z"


def test_reschedule_to_the_same_time_changes_nothing(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    services.booking_reschedule(booking=booking, start=booking.start, now=NOW)
    assert events(booking, "booking.rescheduled") == []


def test_reschedule_into_a_taken_slot(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    book(organization, contact, consult, when="2026-03-02 11:00")
    with pytest.raises(Conflict) as exc:
        services.booking_reschedule(
            booking=booking, start=local(organization, "2026-03-02 11:00"), now=NOW
        )
    assert exc.value.code == "slot_taken"
    booking.refresh_from_db()
    assert booking.start == utc("2026-03-02 15:00")
    assert events(booking, "booking.rescheduled") == []


def test_reschedule_keeps_the_resource_or_moves_to_a_free_one(
    organization, contact, consult, coach
):
    coach_b = make_resource(organization, consult, name="Coach B")
    booking = book(organization, contact, consult, resource=coach_b)
    book(organization, contact, consult, when="2026-03-02 12:00", resource=coach)
    moved = services.booking_reschedule(
        booking=booking, start=local(organization, "2026-03-02 11:00"), now=NOW
    )
    assert moved.resource == coach_b  # stays with the same person when free
    book(organization, contact, consult, when="2026-03-02 13:00", resource=coach_b)
    moved = services.booking_reschedule(
        booking=booking, start=local(organization, "2026-03-02 13:00"), now=NOW
    )
    assert moved.resource == coach  # Coach B is busy then
    with pytest.raises(Conflict):  # asking for Coach B explicitly: busy
        services.booking_reschedule(booking=booking, start=moved.start, resource=coach_b, now=NOW)


def test_dead_bookings_cannot_move(organization, contact, consult, coach):
    booking = services.booking_cancel(booking=book(organization, contact, consult))
    with pytest.raises(Conflict) as exc:
        services.booking_reschedule(
            booking=booking, start=local(organization, "2026-03-02 11:00"), now=NOW
        )
    assert exc.value.code == "invalid_transition"
    assert exc.value.details == {"status": "cancelled", "action": "reschedule"}


# --- status changes ----------------------------------------------------------------------------


def test_cancel_frees_the_time_and_emits_once(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    services.booking_cancel(booking=booking, reason="  Sick  ")
    services.booking_cancel(booking=booking, reason="again")  # idempotent
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED and booking.cancellation_reason == "Sick"
    [event] = events(booking, "booking.cancelled")
    assert event.data["reason"] == "Sick" and event.data["status"] == "cancelled"
    assert book(organization, contact, consult).status == BookingStatus.SCHEDULED


def test_confirm(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    assert services.booking_confirm(booking=booking).status == BookingStatus.CONFIRMED
    assert services.booking_confirm(booking=booking).status == BookingStatus.CONFIRMED
    assert [e.type for e in events(booking)] == ["booking.scheduled"]  # no confirmed event type
    services.booking_cancel(booking=booking)
    with pytest.raises(Conflict):
        services.booking_confirm(booking=booking)


def test_complete_after_the_start_only(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    with pytest.raises(Unprocessable) as exc:
        services.booking_complete(booking=booking, now=NOW)
    assert exc.value.code == "booking_not_started"
    after = booking.start + timedelta(minutes=5)
    services.booking_complete(booking=booking, now=after)
    services.booking_complete(booking=booking, now=after)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.COMPLETED and booking.completed_at == after
    assert len(events(booking, "booking.completed")) == 1
    with pytest.raises(Conflict):
        services.booking_cancel(booking=booking)
    with pytest.raises(Conflict):
        services.booking_mark_no_show(booking=booking, now=after)


def test_no_show_then_corrected_to_completed(organization, contact, consult, coach):
    booking = book(organization, contact, consult)
    with pytest.raises(Unprocessable):
        services.booking_mark_no_show(booking=booking, now=NOW)
    after = booking.end + timedelta(minutes=20)
    services.booking_mark_no_show(booking=booking, now=after)
    services.booking_mark_no_show(booking=booking, now=after)
    assert len(events(booking, "booking.no_show")) == 1
    completed = services.booking_complete(booking=booking, now=after)
    assert completed.status == BookingStatus.COMPLETED and completed.no_show_at is None
    assert [e.type for e in events(booking)] == [
        "booking.scheduled",
        "booking.no_show",
        "booking.completed",
    ]


# --- rolled back with the transaction -----------------------------------------------------------


class Boom(Exception):
    pass


ACTIONS = {
    "create": lambda ctx: book(ctx["org"], ctx["contact"], ctx["kind"], when="2026-03-02 12:00"),
    "reschedule": lambda ctx: services.booking_reschedule(
        booking=ctx["booking"], start=local(ctx["org"], "2026-03-02 13:00"), now=NOW
    ),
    "cancel": lambda ctx: services.booking_cancel(booking=ctx["booking"], reason="x"),
    "confirm": lambda ctx: services.booking_confirm(booking=ctx["booking"]),
    "complete": lambda ctx: services.booking_complete(
        booking=ctx["booking"], now=ctx["booking"].end
    ),
    "no_show": lambda ctx: services.booking_mark_no_show(
        booking=ctx["booking"], now=ctx["booking"].end
    ),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_change_rolls_back_with_its_event(organization, contact, consult, coach, action):
    booking = book(organization, contact, consult)
    before_events = Event.objects.filter(subject_type="booking").count()
    before = Booking.objects.values().get(pk=booking.pk)
    context = {"org": organization, "contact": contact, "kind": consult, "booking": booking}

    def change_then_fail():
        with transaction.atomic():
            ACTIONS[action](context)
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()
    assert Event.objects.filter(subject_type="booking").count() == before_events
    assert Booking.objects.count() == 1
    assert Booking.objects.values().get(pk=booking.pk) == before
