"""Bookings API for n8n and other clients: appointment types, free slots, bookings.

Times: responses carry UTC instants (`start`, `end`, ending in `Z`) and the same instants in
the organization's time zone (`local_start`, `local_end`, with their UTC offset), so a
caller anywhere reads them unambiguously. Inputs take ISO 8601 with an offset (`Z`,
`+01:00`); a time without an offset is read in the organization's time zone, and a bare
date means that local day (for `end`/`to`: through the end of that day).

Error codes besides the shared ones: 409 `slot_taken`, `invalid_transition`; 422
`slot_unavailable`, `slot_in_past`, `slot_too_soon`, `slot_too_far`,
`appointment_type_inactive`, `resource_not_eligible`, `booking_not_started`
(see apps/bookings/services.py).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.bookings import selectors, services
from apps.bookings.models import BookingStatus
from apps.bookings.slots import slots_compute, wall_time_boundary, wall_time_instants
from apps.core.api import OrganizationAPIView
from apps.core.errors import ValidationFailed
from apps.core.pagination import page_of, paginated_response
from apps.crm.models import Contact, Deal

MAX_SLOTS_WINDOW = timedelta(days=31)
YEARS = range(2000, 2201)  # anything else is a typo (and would overflow date arithmetic)
TAGS = ["bookings"]

# In a query string an unencoded "+" arrives as a space: "10:00:00 01:00" means "+01:00".
_SPACED_OFFSET = re.compile(r"^(.+T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


def _invalid(param: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {message}", details={param: [message]})


def _check_year(year: int, param: str) -> None:
    if year not in YEARS:
        raise _invalid(param, f"The year must be between {YEARS[0]} and {YEARS[-1]}.")


def parse_when(
    value, *, param: str, tz: ZoneInfo, end_of_day: bool = False, exact: bool = False
) -> datetime:
    """Parse an API time (see the module docstring) into an aware datetime.

    `exact`: a local time without an offset must name exactly one instant (not skipped by
    a spring-forward change, not repeated by a fall-back one) - used for booking starts.
    """
    if value is None or not str(value).strip():
        raise _invalid(param, "This parameter is required.")
    raw = _SPACED_OFFSET.sub(r"\1+\2", str(value).strip())
    try:
        if len(raw) == 10 and (day := parse_date(raw)) is not None:
            _check_year(day.year, param)
            return wall_time_boundary(day + timedelta(days=int(end_of_day)), time(0), tz)
        parsed = parse_datetime(raw)
    except ValueError:
        parsed = None
    if parsed is None:
        raise _invalid(param, "Give an ISO 8601 time such as 2026-03-09T14:00:00Z.")
    _check_year(parsed.year, param)
    if parsed.tzinfo is not None:
        return parsed
    instants = wall_time_instants(parsed, tz)
    if exact and len(instants) != 1:
        happens = "does not exist" if not instants else "happens twice"
        raise _invalid(param, f"{parsed:%Y-%m-%d %H:%M} {happens} in {tz.key}; give a UTC offset.")
    return instants[0] if instants else parsed.replace(tzinfo=tz, fold=0)


def _local(value: datetime | None, tz: ZoneInfo) -> str | None:
    return value.astimezone(tz).isoformat() if value else None


# --- serializers ---------------------------------------------------------------------------


class AppointmentTypeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    duration_minutes = serializers.IntegerField()
    buffer_before_minutes = serializers.IntegerField()
    buffer_after_minutes = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    location_kind = serializers.CharField()
    slot_interval_minutes = serializers.IntegerField()
    min_notice_minutes = serializers.IntegerField()
    max_days_ahead = serializers.IntegerField()
    reminder_minutes_before = serializers.IntegerField()
    no_show_grace_minutes = serializers.IntegerField()
    is_active = serializers.BooleanField()


class _TypeRef(serializers.Serializer):
    id = serializers.UUIDField()
    slug = serializers.CharField()
    name = serializers.CharField()


class _ResourceRef(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class SlotOutput(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    local_start = serializers.CharField()
    local_end = serializers.CharField()
    resource_ids = serializers.ListField(child=serializers.UUIDField())


class SlotsOutput(serializers.Serializer):
    appointment_type = _TypeRef()
    timezone = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    slots = SlotOutput(many=True)


class BookingOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    contact_id = serializers.UUIDField()
    deal_id = serializers.UUIDField(allow_null=True)
    appointment_type = _TypeRef()
    resource = _ResourceRef()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    local_start = serializers.SerializerMethodField()
    local_end = serializers.SerializerMethodField()
    timezone = serializers.SerializerMethodField()
    source = serializers.CharField()
    notes = serializers.CharField()
    reminder_due_at = serializers.DateTimeField(allow_null=True)
    reminder_sent_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    cancellation_reason = serializers.CharField()
    completed_at = serializers.DateTimeField(allow_null=True)
    no_show_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_local_start(self, booking) -> str:
        return _local(booking.start, self.context["tz"])

    def get_local_end(self, booking) -> str:
        return _local(booking.end, self.context["tz"])

    def get_timezone(self, booking) -> str:
        return self.context["tz"].key


AppointmentTypePage = page_of("AppointmentTypePage", AppointmentTypeOutput)
BookingPage = page_of("BookingPage", BookingOutput)


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string (DRF's own field also reads integers as UUIDs)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class BookingCreateInput(serializers.Serializer):
    contact_id = StrictUUIDField()
    appointment_type = serializers.CharField(max_length=60, help_text="Id or slug.")
    start = serializers.CharField(max_length=40, help_text="ISO 8601, e.g. 2026-03-09T14:00:00Z.")
    resource_id = StrictUUIDField(required=False, allow_null=True)
    deal_id = StrictUUIDField(required=False, allow_null=True)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    source = serializers.CharField(required=False, allow_blank=True, max_length=32, default="api")


class RescheduleInput(serializers.Serializer):
    start = serializers.CharField(max_length=40, help_text="ISO 8601, e.g. 2026-03-10T15:30:00Z.")
    resource_id = StrictUUIDField(required=False, allow_null=True)


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class EmptyInput(serializers.Serializer):
    pass


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data if data is not None else {})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- examples --------------------------------------------------------------------------------

_BOOKING_EXAMPLE = {
    "id": "01939a5e-7c4a-7b3e-9f1d-3c2b1a0f9e8d",
    "status": "scheduled",
    "contact_id": "01939a5d-1111-7222-8333-444455556666",
    "deal_id": None,
    "appointment_type": {
        "id": "01939a50-aaaa-7bbb-8ccc-ddddeeeeffff",
        "slug": "free-trial-class",
        "name": "Free trial class",
    },
    "resource": {"id": "01939a51-aaaa-7bbb-8ccc-ddddeeeeffff", "name": "Head coach"},
    "start": "2026-03-09T22:00:00Z",
    "end": "2026-03-09T23:00:00Z",
    "local_start": "2026-03-09T18:00:00-04:00",
    "local_end": "2026-03-09T19:00:00-04:00",
    "timezone": "America/New_York",
    "source": "n8n",
    "notes": "",
    "reminder_due_at": "2026-03-09T19:00:00Z",
    "reminder_sent_at": None,
    "cancelled_at": None,
    "cancellation_reason": "",
    "completed_at": None,
    "no_show_at": None,
    "created_at": "2026-03-08T15:12:40Z",
}


def _booking_response(booking, tz: ZoneInfo, status: int = 200) -> Response:
    response = Response(BookingOutput(booking, context={"tz": tz}).data, status=status)
    if status == 201:
        response["Location"] = f"/api/v1/bookings/{booking.id}/"
    return response


# --- views -----------------------------------------------------------------------------------


class AppointmentTypeListView(OrganizationAPIView):
    """What can be booked: the organization's active appointment types."""

    @extend_schema(
        operation_id="appointment_types_list",
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "include_inactive", OpenApiTypes.BOOL, description="Also list inactive types."
            )
        ],
        responses=AppointmentTypePage,
        examples=[
            OpenApiExample(
                "A fitness studio's types",
                response_only=True,
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "id": "01939a50-aaaa-7bbb-8ccc-ddddeeeeffff",
                            "slug": "free-trial-class",
                            "name": "Free trial class",
                            "description": "Your first class on us.",
                            "duration_minutes": 60,
                            "buffer_before_minutes": 15,
                            "buffer_after_minutes": 0,
                            "price": "0.00",
                            "currency": "USD",
                            "location_kind": "in_person",
                            "slot_interval_minutes": 60,
                            "min_notice_minutes": 120,
                            "max_days_ahead": 21,
                            "reminder_minutes_before": 180,
                            "no_show_grace_minutes": 10,
                            "is_active": True,
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request):
        include_inactive = request.query_params.get("include_inactive", "").lower() in {
            "1",
            "true",
            "yes",
        }
        queryset = selectors.appointment_type_list(
            organization=self.organization, include_inactive=include_inactive
        )
        return paginated_response(self, queryset, AppointmentTypeOutput)


class SlotListView(OrganizationAPIView):
    """Free start times for an appointment type between `start` and `end` (at most 31 days)."""

    @extend_schema(
        operation_id="bookings_slots",
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "appointment_type", str, required=True, description="Appointment type id or slug."
            ),
            OpenApiParameter(
                "start",
                str,
                required=True,
                description="Window start: ISO 8601 time (e.g. 2026-03-09T00:00:00-05:00) or date.",
            ),
            OpenApiParameter(
                "end",
                str,
                required=True,
                description="Window end (exclusive; a date means through that day). "
                "At most 31 days after start.",
            ),
            OpenApiParameter(
                "resource", OpenApiTypes.UUID, description="Only this resource's free times."
            ),
        ],
        responses=SlotsOutput,
        examples=[
            OpenApiExample(
                "Slots across the spring-forward change (New York)",
                response_only=True,
                value={
                    "appointment_type": {
                        "id": "01939a50-aaaa-7bbb-8ccc-ddddeeeeffff",
                        "slug": "membership-consultation",
                        "name": "Membership consultation",
                    },
                    "timezone": "America/New_York",
                    "start": "2026-03-08T05:00:00Z",
                    "end": "2026-03-09T04:00:00Z",
                    "slots": [
                        {
                            "start": "2026-03-08T06:30:00Z",
                            "end": "2026-03-08T07:00:00Z",
                            "local_start": "2026-03-08T01:30:00-05:00",
                            "local_end": "2026-03-08T03:00:00-04:00",
                            "resource_ids": ["01939a51-aaaa-7bbb-8ccc-ddddeeeeffff"],
                        },
                        {
                            "start": "2026-03-08T07:00:00Z",
                            "end": "2026-03-08T07:30:00Z",
                            "local_start": "2026-03-08T03:00:00-04:00",
                            "local_end": "2026-03-08T03:30:00-04:00",
                            "resource_ids": ["01939a51-aaaa-7bbb-8ccc-ddddeeeeffff"],
                        },
                    ],
                },
            )
        ],
    )
    def get(self, request):
        params = request.query_params
        tz = self.organization.tz
        if not params.get("appointment_type"):
            raise _invalid("appointment_type", "This parameter is required.")
        start = parse_when(params.get("start"), param="start", tz=tz)
        end = parse_when(params.get("end"), param="end", tz=tz, end_of_day=True)
        if end <= start:
            raise _invalid("end", "Must be after start.")
        if end - start > MAX_SLOTS_WINDOW:
            raise _invalid("end", f"The window may span at most {MAX_SLOTS_WINDOW.days} days.")
        resource = None
        if params.get("resource"):
            resource = _resource(self.organization, params["resource"], param="resource")
        appointment_type = selectors.appointment_type_get(
            organization=self.organization, ref=params["appointment_type"]
        )
        slots = slots_compute(
            organization=self.organization,
            appointment_type=appointment_type,
            start=start,
            end=end,
            resource=resource,
        )
        body = {
            "appointment_type": appointment_type,
            "timezone": tz.key,
            "start": start,
            "end": end,
            "slots": [
                {
                    "start": slot.start,
                    "end": slot.end,
                    "local_start": _local(slot.start, tz),
                    "local_end": _local(slot.end, tz),
                    "resource_ids": slot.resource_ids,
                }
                for slot in slots
            ],
        }
        return Response(SlotsOutput(body).data)


class BookingListView(OrganizationAPIView):
    """List bookings (filters below) or book a slot."""

    @extend_schema(
        operation_id="bookings_list",
        tags=TAGS,
        parameters=[
            OpenApiParameter("contact", OpenApiTypes.UUID, description="Only this contact's."),
            OpenApiParameter(
                "status",
                str,
                description="One status or several, comma-separated: "
                + ", ".join(BookingStatus.values),
            ),
            OpenApiParameter("appointment_type", str, description="Id or slug."),
            OpenApiParameter("resource", OpenApiTypes.UUID),
            OpenApiParameter("from", str, description="Starting at or after (time or date)."),
            OpenApiParameter("to", str, description="Starting before (a date: through that day)."),
        ],
        responses=BookingPage,
        examples=[
            OpenApiExample(
                "Upcoming bookings of a contact",
                response_only=True,
                value={"count": 1, "next": None, "previous": None, "results": [_BOOKING_EXAMPLE]},
            )
        ],
    )
    def get(self, request):
        params = request.query_params
        tz = self.organization.tz
        filters: dict = {}
        if params.get("contact"):
            filters["contact_id"] = self._contact(params["contact"], param="contact").pk
        if params.get("status"):
            statuses = [s.strip() for s in params["status"].split(",") if s.strip()]
            unknown = sorted(set(statuses) - set(BookingStatus.values))
            if unknown:
                raise _invalid(
                    "status",
                    f"Unknown status {unknown[0]!r}; use {', '.join(BookingStatus.values)}.",
                )
            filters["statuses"] = statuses
        if params.get("from"):
            filters["start_from"] = parse_when(params["from"], param="from", tz=tz)
        if params.get("to"):
            filters["start_to"] = parse_when(params["to"], param="to", tz=tz, end_of_day=True)
        if params.get("appointment_type"):
            filters["appointment_type"] = selectors.appointment_type_get(
                organization=self.organization, ref=params["appointment_type"]
            )
        if params.get("resource"):
            filters["resource"] = _resource(self.organization, params["resource"], param="resource")
        queryset = selectors.booking_list(organization=self.organization, **filters)
        return paginated_response(self, queryset, BookingOutput, context={"tz": tz})

    @extend_schema(
        operation_id="bookings_create",
        tags=TAGS,
        request=BookingCreateInput,
        responses={201: BookingOutput},
        examples=[
            OpenApiExample(
                "Book a free trial class",
                request_only=True,
                value={
                    "contact_id": "01939a5d-1111-7222-8333-444455556666",
                    "appointment_type": "free-trial-class",
                    "start": "2026-03-09T22:00:00Z",
                    "source": "n8n",
                },
            ),
            OpenApiExample(
                "Booked", response_only=True, status_codes=["201"], value=_BOOKING_EXAMPLE
            ),
            OpenApiExample(
                "Slot taken",
                response_only=True,
                status_codes=["409"],
                value={
                    "error": {
                        "code": "slot_taken",
                        "message": "That time has just been taken; pick another slot.",
                        "details": {},
                    }
                },
            ),
        ],
    )
    def post(self, request):
        data = _valid(BookingCreateInput, request.data)
        tz = self.organization.tz
        start = parse_when(data["start"], param="start", tz=tz, exact=True)
        contact = self._contact(data["contact_id"], param="contact_id")
        appointment_type = selectors.appointment_type_get(
            organization=self.organization, ref=data["appointment_type"]
        )
        resource = None
        if data.get("resource_id"):
            resource = selectors.resource_get(
                organization=self.organization, pk=data["resource_id"]
            )
        deal = None
        if data.get("deal_id"):
            deal = self.get_scoped_object(Deal, pk=data["deal_id"])
        booking = services.booking_create(
            organization=self.organization,
            contact=contact,
            appointment_type=appointment_type,
            start=start,
            resource=resource,
            deal=deal,
            notes=data["notes"],
            source=data["source"] or "api",
        )
        return _booking_response(booking, tz, status=201)

    def _contact(self, pk, *, param: str) -> Contact:
        if selectors.as_uuid(pk) is None:
            raise _invalid(param, "Must be a valid UUID.")
        return self.get_scoped_object(Contact, pk=pk)


def _resource(organization, pk, *, param: str):
    if selectors.as_uuid(pk) is None:
        raise _invalid(param, "Must be a valid UUID.")
    return selectors.resource_get(organization=organization, pk=pk)


class BookingDetailView(OrganizationAPIView):
    @extend_schema(
        operation_id="bookings_get",
        tags=TAGS,
        responses=BookingOutput,
        examples=[OpenApiExample("A booking", response_only=True, value=_BOOKING_EXAMPLE)],
    )
    def get(self, request, pk):
        booking = selectors.booking_get(organization=self.organization, pk=pk)
        return _booking_response(booking, self.organization.tz)


class _BookingActionView(OrganizationAPIView):
    """Shared by the booking actions; each subclass's `post` (made idempotent) calls `run`."""

    input_class = EmptyInput

    def run(self, request, pk):
        data = _valid(self.input_class, request.data)
        booking = selectors.booking_get(organization=self.organization, pk=pk)
        booking = self.act(booking, data)
        return _booking_response(booking, self.organization.tz)

    def act(self, booking, data):
        raise NotImplementedError


def _action_schema(operation_id: str, request, example: dict, description: str):
    return extend_schema(
        operation_id=operation_id,
        tags=TAGS,
        description=description,
        request=request,
        responses=BookingOutput,
        examples=[
            OpenApiExample("Request", request_only=True, value=example),
            OpenApiExample("The booking afterwards", response_only=True, value=_BOOKING_EXAMPLE),
        ],
    )


class BookingRescheduleView(_BookingActionView):
    input_class = RescheduleInput

    @_action_schema(
        "bookings_reschedule",
        RescheduleInput,
        {"start": "2026-03-10T15:30:00Z"},
        "Move a live booking to another offered start (`booking.rescheduled`). The same "
        "start and resource again changes nothing.",
    )
    def post(self, request, pk):
        return self.run(request, pk)

    def act(self, booking, data):
        start = parse_when(data["start"], param="start", tz=self.organization.tz, exact=True)
        resource = None
        if data.get("resource_id"):
            resource = selectors.resource_get(
                organization=self.organization, pk=data["resource_id"]
            )
        return services.booking_reschedule(booking=booking, start=start, resource=resource)


class BookingCancelView(_BookingActionView):
    input_class = CancelInput

    @_action_schema(
        "bookings_cancel",
        CancelInput,
        {"reason": "Contact asked to cancel by SMS"},
        "Cancel a live booking (`booking.cancelled`); its time becomes free. Idempotent.",
    )
    def post(self, request, pk):
        return self.run(request, pk)

    def act(self, booking, data):
        return services.booking_cancel(booking=booking, reason=data["reason"])


class BookingConfirmView(_BookingActionView):
    @_action_schema(
        "bookings_confirm",
        EmptyInput,
        {},
        "The contact confirmed they will attend (scheduled → confirmed). Idempotent.",
    )
    def post(self, request, pk):
        return self.run(request, pk)

    def act(self, booking, data):
        return services.booking_confirm(booking=booking)


class BookingCompleteView(_BookingActionView):
    @_action_schema(
        "bookings_complete",
        EmptyInput,
        {},
        "The appointment took place (`booking.completed`); also corrects a no-show.",
    )
    def post(self, request, pk):
        return self.run(request, pk)

    def act(self, booking, data):
        return services.booking_complete(booking=booking)


class BookingNoShowView(_BookingActionView):
    @_action_schema(
        "bookings_no_show",
        EmptyInput,
        {},
        "The contact did not come (`booking.no_show`). Only after the start. Idempotent.",
    )
    def post(self, request, pk):
        return self.run(request, pk)

    def act(self, booking, data):
        return services.booking_mark_no_show(booking=booking)
