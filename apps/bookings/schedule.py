"""Beat jobs of bookings (no Django imports here: settings import this module)."""

BEAT_SCHEDULE = {
    "bookings.reminders-send-due": {
        "task": "apps.bookings.tasks.booking_reminders_send_due",
        "schedule": 60.0,
        # a run queued while workers were down is pointless once the next one is due
        "options": {"expires": 55},
    },
    "bookings.no-shows-detect": {
        "task": "apps.bookings.tasks.booking_no_shows_detect",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
}
