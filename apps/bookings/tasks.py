"""Beat tasks of bookings: thin wrappers around the idempotent sweep services."""

from __future__ import annotations

from celery import shared_task

from apps.bookings import services


@shared_task(name="apps.bookings.tasks.booking_reminders_send_due")
def booking_reminders_send_due() -> int:
    """Emit `booking.reminder_due` for bookings whose reminder time has come (once each)."""
    return services.booking_reminders_send_due()


@shared_task(name="apps.bookings.tasks.booking_no_shows_detect")
def booking_no_shows_detect() -> int:
    """Mark overdue live bookings as no-shows and emit `booking.no_show` (once each)."""
    return services.booking_no_shows_detect()
