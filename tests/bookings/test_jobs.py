"""Beat jobs: reminders due and no-show detection (selection rules, once per booking)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.bookings import services, tasks
from apps.bookings.models import Booking, BookingStatus
from apps.events.models import Event
from tests.bookings.factories import at, local, make_contact, make_resource, make_type, utc
from tests.support.services import wait_for

NOW = utc("2026-03-01 12:00")


def book(organization, contact, kind, when, now=NOW, **kwargs):
    return services.booking_create(
        organization=organization,
        contact=contact,
        appointment_type=kind,
        start=local(organization, when),
        now=now,
        **kwargs,
    )


def emitted(type) -> list[str]:
    return sorted(Event.objects.filter(type=type).values_list("subject_id", flat=True))


# --- reminders ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reminders_selection(organization, contact, consult, coach):
    due = book(organization, contact, consult, "2026-03-03 10:00")  # due 2026-03-02 10:00
    later = book(organization, contact, consult, "2026-03-04 10:00")  # due 2026-03-03 10:00
    cancelled = services.booking_cancel(
        booking=book(organization, contact, consult, "2026-03-03 11:00")
    )
    silent = make_type(organization, slug="silent", reminder_minutes_before=0)
    coach.appointment_types.add(silent)
    book(organization, contact, silent, "2026-03-03 12:00")
    started = book(organization, contact, consult, "2026-03-02 10:30")  # due 03-01 10:30

    at_time = local(organization, "2026-03-02 11:00")
    assert services.booking_reminders_send_due(now=at_time) == 1
    assert emitted("booking.reminder_due") == [str(due.id)]
    event = Event.objects.get(type="booking.reminder_due")
    assert event.data["minutes_before"] == 24 * 60 and event.data["status"] == "scheduled"
    due.refresh_from_db()
    assert due.reminder_sent_at == at_time
    for untouched in (later, cancelled, started):
        untouched.refresh_from_db()
        assert untouched.reminder_sent_at is None
    # the started one was due but its start has passed by now: never reminded afterwards


@pytest.mark.django_db
def test_reminders_run_twice_emit_once(organization, contact, consult, coach):
    for hour in ("10:00", "11:00", "12:00", "13:00", "14:00"):
        book(organization, contact, consult, f"2026-03-03 {hour}")
    at_time = local(organization, "2026-03-02 16:00")
    assert services.booking_reminders_send_due(now=at_time, batch_size=2) == 5
    assert services.booking_reminders_send_due(now=at_time) == 0
    assert services.booking_reminders_send_due(now=at_time + timedelta(hours=1)) == 0
    assert len(emitted("booking.reminder_due")) == 5


@pytest.mark.django_db
def test_a_rescheduled_booking_is_reminded_again(organization, contact, consult, coach):
    booking = book(organization, contact, consult, "2026-03-03 10:00")
    services.booking_reminders_send_due(now=local(organization, "2026-03-02 11:00"))
    services.booking_reschedule(
        booking=booking, start=local(organization, "2026-03-05 10:00"), now=NOW
    )
    assert services.booking_reminders_send_due(now=local(organization, "2026-03-04 10:00")) == 1
    assert emitted("booking.reminder_due") == [str(booking.id)] * 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_reminder_runs_never_double_emit(organization):
    kind = make_type(organization, reminder_minutes_before=7 * 24 * 60)
    make_resource(organization, kind)
    contact = make_contact(organization)
    for day in range(9, 14):
        for hour in range(9, 17):
            book(organization, contact, kind, f"2026-03-{day:02d} {hour:02d}:00")
    at_time = local(organization, "2026-03-08 23:00")  # every reminder is due, no start passed
    counts, crashes = [], []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            counts.append(services.booking_reminders_send_due(now=at_time, batch_size=5))
        except Exception as exc:  # collected so the assertion shows it
            crashes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert crashes == []
    assert sum(counts) == 40
    reminded = emitted("booking.reminder_due")
    assert len(reminded) == len(set(reminded)) == 40


# --- no-shows ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_show_selection(organization, contact, consult, coach):
    patient = make_type(organization, slug="patient", no_show_grace_minutes=120)
    coach.appointment_types.add(patient)
    overdue = book(organization, contact, consult, "2026-03-02 10:00")  # ends 10:30, grace 15
    in_grace = book(organization, contact, consult, "2026-03-02 10:30")  # ends 11:00
    long_grace = book(organization, contact, patient, "2026-03-02 09:00")  # 09:30 + 120 min
    confirmed = services.booking_confirm(
        booking=book(organization, contact, consult, "2026-03-02 09:30")
    )
    done = services.booking_complete(
        booking=book(organization, contact, consult, "2026-03-02 11:30"),
        now=local(organization, "2026-03-02 11:35"),
    )
    cancelled = services.booking_cancel(
        booking=book(organization, contact, consult, "2026-03-02 12:00")
    )

    at_time = local(organization, "2026-03-02 11:10")
    assert services.booking_no_shows_detect(now=at_time) == 2
    assert emitted("booking.no_show") == sorted([str(overdue.id), str(confirmed.id)])
    overdue.refresh_from_db()
    assert overdue.status == BookingStatus.NO_SHOW and overdue.no_show_at == at_time
    for booking, status in (
        (in_grace, BookingStatus.SCHEDULED),
        (long_grace, BookingStatus.SCHEDULED),
        (done, BookingStatus.COMPLETED),
        (cancelled, BookingStatus.CANCELLED),
    ):
        booking.refresh_from_db()
        assert booking.status == status

    assert services.booking_no_shows_detect(now=at_time) == 0  # idempotent
    assert services.booking_no_shows_detect(now=local(organization, "2026-03-02 11:30")) == 2
    assert len(emitted("booking.no_show")) == 4


@pytest.mark.django_db
def test_no_show_leaves_old_bookings_to_a_person(organization, contact, consult, coach):
    old = book(organization, contact, consult, "2026-03-02 10:00")
    assert services.booking_no_shows_detect(now=local(organization, "2026-03-12 10:00")) == 0
    old.refresh_from_db()
    assert old.status == BookingStatus.SCHEDULED


@pytest.mark.django_db
def test_tasks_call_the_services(organization, contact, consult, coach):
    # Real time here: one booking due for a reminder, one overdue.
    today = timezone.now().astimezone(organization.tz).date()
    consult.reminder_minutes_before = 7 * 24 * 60
    consult.save()
    upcoming_start = at(organization, today + timedelta(days=3), "10:00")
    upcoming = services.booking_create(
        organization=organization,
        contact=contact,
        appointment_type=consult,
        start=upcoming_start,
        now=upcoming_start - timedelta(days=8),
    )
    missed_start = at(organization, today - timedelta(days=1), "10:00")
    missed = services.booking_create(
        organization=organization,
        contact=contact,
        appointment_type=consult,
        start=missed_start,
        now=missed_start - timedelta(days=1),
    )
    assert tasks.booking_reminders_send_due() == 1
    assert tasks.booking_no_shows_detect() == 1
    assert tasks.booking_reminders_send_due() == tasks.booking_no_shows_detect() == 0
    assert emitted("booking.reminder_due") == [str(upcoming.id)]
    assert emitted("booking.no_show") == [str(missed.id)]


@pytest.mark.worker
def test_jobs_through_a_real_worker(start_worker, organization):
    kind = make_type(organization, reminder_minutes_before=7 * 24 * 60)
    make_resource(organization, kind)
    contact = make_contact(organization)
    today = timezone.now().astimezone(organization.tz).date()
    upcoming_start = at(organization, today + timedelta(days=3), "10:00")
    upcoming = services.booking_create(
        organization=organization,
        contact=contact,
        appointment_type=kind,
        start=upcoming_start,
        now=upcoming_start - timedelta(days=8),
    )
    missed_start = at(organization, today - timedelta(days=1), "10:00")
    missed = services.booking_create(
        organization=organization,
        contact=contact,
        appointment_type=kind,
        start=missed_start,
        now=missed_start - timedelta(days=1),
    )
    start_worker(queues="default")
    tasks.booking_reminders_send_due.delay()
    tasks.booking_no_shows_detect.delay()
    tasks.booking_reminders_send_due.delay()  # a second beat tick: nothing new
    wait_for(
        lambda: (
            Booking.objects.get(pk=missed.pk).status == BookingStatus.NO_SHOW
            and Booking.objects.get(pk=upcoming.pk).reminder_sent_at is not None
        ),
        timeout=30,
        what="the worker to run both jobs",
    )
    wait_for(lambda: not _queued("default"), timeout=30, what="the queue to drain")
    assert emitted("booking.reminder_due") == [str(upcoming.id)]
    assert emitted("booking.no_show") == [str(missed.id)]


def _queued(queue: str) -> int:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return client.llen(queue)
    finally:
        client.close()
