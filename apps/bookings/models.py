"""Bookings: appointment types, bookable resources and their hours, and the bookings.

No double booking is enforced by PostgreSQL: an exclusion constraint forbids two live
bookings of one resource whose blocked ranges (start - buffer before, end + buffer after)
overlap.
"""

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.db import models
from django.db.models import Func, Q

from apps.core.models import TenantModel


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class LocationKind(models.TextChoices):
    IN_PERSON = "in_person", "In person"
    PHONE = "phone", "Phone call"
    VIDEO = "video", "Video call"
    ON_SITE = "on_site", "At the customer's site"


class AppointmentType(TenantModel):
    name = models.CharField(max_length=100, help_text="e.g. Free trial class, Consultation.")
    slug = models.SlugField(max_length=60)
    description = models.TextField(blank=True)
    duration_minutes = models.PositiveSmallIntegerField(default=30)
    buffer_before_minutes = models.PositiveSmallIntegerField(default=0)
    buffer_after_minutes = models.PositiveSmallIntegerField(default=0)
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    location_kind = models.CharField(
        max_length=16, choices=LocationKind.choices, default=LocationKind.IN_PERSON
    )
    slot_interval_minutes = models.PositiveSmallIntegerField(
        default=15, help_text="Start times are offered on this grid."
    )
    min_notice_minutes = models.PositiveIntegerField(
        default=60, help_text="No bookings closer than this."
    )
    max_days_ahead = models.PositiveSmallIntegerField(default=60)
    reminder_minutes_before = models.PositiveIntegerField(
        default=24 * 60,
        help_text="When `booking.reminder_due` is emitted, before the start. 0 = no reminder.",
    )
    no_show_grace_minutes = models.PositiveSmallIntegerField(
        default=15,
        help_text="A live booking not completed this long after its end becomes a no-show.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="appttype_org_slug"),
            models.CheckConstraint(
                condition=Q(duration_minutes__gt=0), name="appttype_duration_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ResourceKind(models.TextChoices):
    STAFF = "staff", "Staff member"
    ROOM = "room", "Room or equipment"


class Resource(TenantModel):
    """Something a booking occupies: a staff member or a room. Hours are in the organization's time zone."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=ResourceKind.choices, default=ResourceKind.STAFF)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    appointment_types = models.ManyToManyField(
        AppointmentType, related_name="resources", blank=True
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class WeeklyHours(TenantModel):
    """One working interval of a resource on a weekday, in the organization's wall-clock time."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="weekly_hours")
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, help_text="0 = Monday … 6 = Sunday"
    )
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        verbose_name_plural = "weekly hours"
        ordering = ["resource", "weekday", "start_time"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="weeklyhours_weekday"),
            models.CheckConstraint(
                condition=Q(end_time__gt=models.F("start_time")),
                name="weeklyhours_order",
                violation_error_message="The end time must be after the start time.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource} {self.get_weekday_display()} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class DateException(TenantModel):
    """A day with different hours: closed (no times) or open only between start and end.

    Several rows for one date: a closed row wins; otherwise their intervals replace the
    weekly hours of that date.
    """

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="date_exceptions")
    date = models.DateField()
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["resource", "date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(start_time__isnull=True, end_time__isnull=True)
                | Q(
                    start_time__isnull=False,
                    end_time__isnull=False,
                    end_time__gt=models.F("start_time"),
                ),
                name="dateexception_times",
                violation_error_message="Give both times (end after start), or neither for a closed day.",
            ),
        ]

    @property
    def is_closed(self) -> bool:
        return self.start_time is None

    def __str__(self) -> str:
        return f"{self.resource} {self.date}"


class BookingStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"
    NO_SHOW = "no_show", "No-show"


LIVE_STATUSES = (BookingStatus.SCHEDULED, BookingStatus.CONFIRMED)


class Booking(TenantModel):
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="bookings")
    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.PROTECT, related_name="bookings"
    )
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="bookings")
    deal = models.ForeignKey(
        "crm.Deal", on_delete=models.SET_NULL, null=True, blank=True, related_name="bookings"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    blocked_start = models.DateTimeField(help_text="start - buffer before")
    blocked_end = models.DateTimeField(help_text="end + buffer after")
    status = models.CharField(
        max_length=10, choices=BookingStatus.choices, default=BookingStatus.SCHEDULED
    )
    source = models.CharField(max_length=32, blank=True, help_text="api, admin, agent, n8n...")
    notes = models.TextField(blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="start - the type's reminder lead time; empty when no reminder is sent.",
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=200, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    no_show_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["start"]
        indexes = [
            models.Index(
                fields=["organization", "status", "start"], name="booking_org_status_start"
            ),
            models.Index(fields=["status", "end"], name="booking_status_end"),
            models.Index(
                fields=["reminder_due_at"],
                name="booking_reminder_due",
                condition=Q(reminder_sent_at__isnull=True, status__in=LIVE_STATUSES),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="booking_end_after_start"
            ),
            ExclusionConstraint(
                name="booking_no_overlap",
                expressions=[
                    (
                        TsTzRange("blocked_start", "blocked_end", RangeBoundary()),
                        RangeOperators.OVERLAPS,
                    ),
                    ("resource", RangeOperators.EQUAL),
                ],
                condition=Q(status__in=LIVE_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.appointment_type} for {self.contact} at {self.start:%Y-%m-%d %H:%M}"
