"""Bookings in the operator console: appointment types, resources (with their weekly hours
and date exceptions) and bookings. Bookings are created and changed through the services,
so the console obeys the same availability rules and emits the same events as the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.bookings import services
from apps.bookings.models import (
    AppointmentType,
    Booking,
    DateException,
    Resource,
    WeeklyHours,
)
from apps.bookings.slots import wall_time_instants
from apps.core.errors import DomainError
from apps.tenancy.roles import SUPERVISORS, WORKERS
from apps.tenancy.scoping import TenantAdmin, TenantInlineMixin
from apps.tenancy.selectors import user_organization_ids


def _organization_of(form, cleaned) -> int | None:
    organization = cleaned.get("organization")
    return organization.pk if organization else form.instance.organization_id


class SuperuserOrganizationColumn:
    """Show the organization column only to superusers (staff see one organization)."""

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if request.user.is_superuser:
            columns.append("organization")
        return columns


# --- appointment types ---------------------------------------------------------------------------


class AppointmentTypeForm(forms.ModelForm):
    class Meta:
        model = AppointmentType
        fields = (
            "organization",
            "name",
            "slug",
            "description",
            "is_active",
            "duration_minutes",
            "buffer_before_minutes",
            "buffer_after_minutes",
            "location_kind",
            "price",
            "currency",
            "slot_interval_minutes",
            "min_notice_minutes",
            "max_days_ahead",
            "reminder_minutes_before",
            "no_show_grace_minutes",
        )

    def clean(self):
        cleaned = super().clean()
        organization_id = _organization_of(self, cleaned)
        slug = cleaned.get("slug")
        if (
            organization_id
            and slug
            and AppointmentType.objects.filter(organization_id=organization_id, slug=slug)
            .exclude(pk=self.instance.pk)
            .exists()
        ):
            self.add_error("slug", "Another appointment type already uses this slug.")
        return cleaned


@admin.register(AppointmentType)
class AppointmentTypeAdmin(SuperuserOrganizationColumn, TenantAdmin):
    form = AppointmentTypeForm
    add_roles = change_roles = SUPERVISORS
    list_display = (
        "name",
        "slug",
        "duration_minutes",
        "buffers",
        "price_display",
        "location_kind",
        "min_notice_minutes",
        "max_days_ahead",
        "is_active",
    )
    list_filter = ("is_active", "location_kind")
    search_fields = ("name", "slug")
    list_select_related = ("organization",)
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("organization", "name", "slug", "description", "is_active")}),
        (
            "Appointment",
            {
                "fields": (
                    "duration_minutes",
                    "buffer_before_minutes",
                    "buffer_after_minutes",
                    "location_kind",
                    ("price", "currency"),
                )
            },
        ),
        (
            "Booking window",
            {"fields": ("slot_interval_minutes", "min_notice_minutes", "max_days_ahead")},
        ),
        ("Follow-up", {"fields": ("reminder_minutes_before", "no_show_grace_minutes")}),
        ("System", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description="buffers (before / after)")
    def buffers(self, obj) -> str:
        return f"{obj.buffer_before_minutes} / {obj.buffer_after_minutes} min"

    @admin.display(description="price", ordering="price")
    def price_display(self, obj) -> str:
        if obj.price is None:
            return "quoted"
        return "free" if obj.price == 0 else f"{obj.price} {obj.currency}"


# --- resources -----------------------------------------------------------------------------------


class WeeklyHoursInline(TenantInlineMixin, admin.TabularInline):
    model = WeeklyHours
    fields = ("weekday", "start_time", "end_time")
    extra = 0
    add_roles = change_roles = delete_roles = SUPERVISORS


class DateExceptionInline(TenantInlineMixin, admin.TabularInline):
    model = DateException
    fields = ("date", "start_time", "end_time", "reason")
    extra = 0
    add_roles = change_roles = delete_roles = SUPERVISORS
    verbose_name = "date exception (leave the times empty for a closed day)"


class ResourceForm(forms.ModelForm):
    class Meta:
        model = Resource
        fields = ("organization", "name", "kind", "user", "appointment_types", "is_active")

    def clean(self):
        cleaned = super().clean()
        organization_id = _organization_of(self, cleaned)
        foreign = [
            t
            for t in cleaned.get("appointment_types") or ()
            if t.organization_id != organization_id
        ]
        if foreign:
            self.add_error(
                "appointment_types",
                f"{foreign[0]} belongs to another organization than this resource.",
            )
        user = cleaned.get("user")
        if user and organization_id and organization_id not in user_organization_ids(user=user):
            self.add_error("user", "This person is not a member of the resource's organization.")
        return cleaned


@admin.register(Resource)
class ResourceAdmin(SuperuserOrganizationColumn, TenantAdmin):
    form = ResourceForm
    add_roles = change_roles = SUPERVISORS
    list_display = ("name", "kind", "user", "offers", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "user__email", "user__full_name")
    list_select_related = ("user", "organization")
    filter_horizontal = ("appointment_types",)
    readonly_fields = ("created_at", "updated_at")
    fields = ("organization", "name", "kind", "user", "appointment_types", "is_active")
    inlines = (WeeklyHoursInline, DateExceptionInline)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("appointment_types")

    @admin.display(description="offers")
    def offers(self, obj) -> str:
        return ", ".join(t.name for t in obj.appointment_types.all()) or "-"

    def save_formset(self, request, form, formset, change):
        # hours and exceptions belong to the resource's organization
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            obj.delete()
        for instance in instances:
            instance.organization_id = form.instance.organization_id
            instance.save()
        formset.save_m2m()


# --- bookings ------------------------------------------------------------------------------------


class BookingAddForm(forms.ModelForm):
    """Books through `booking_create`, inside the admin's transaction, so that every rule
    (hours, notice, conflicts) shows as a form error instead of a half-written booking."""

    start_local = forms.SplitDateTimeField(
        label="Start",
        widget=AdminSplitDateTime,
        help_text="In the organization's time zone.",
    )

    class Meta:
        model = Booking
        fields = ("contact", "appointment_type", "resource", "deal", "notes")
        help_texts = {"resource": "Leave empty to pick the least busy free one."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].required = False

    def clean(self):
        cleaned = super().clean()
        appointment_type = cleaned.get("appointment_type")
        contact = cleaned.get("contact")
        typed = cleaned.get("start_local")
        if self.errors or not (appointment_type and contact and typed):
            return cleaned
        organization = appointment_type.organization
        # Django read the typed wall time in UTC (the current time zone); re-read it locally.
        wall = timezone.make_naive(typed, timezone.get_current_timezone())
        instants = wall_time_instants(wall, organization.tz)
        if len(instants) != 1:
            happens = "does not exist" if not instants else "happens twice"
            raise ValidationError(f"{wall:%Y-%m-%d %H:%M} {happens} in {organization.timezone}.")
        try:
            self.booking = services.booking_create(
                organization=organization,
                contact=contact,
                appointment_type=appointment_type,
                start=instants[0],
                resource=cleaned.get("resource"),
                deal=cleaned.get("deal"),
                notes=cleaned.get("notes", ""),
                source="admin",
            )
        except DomainError as exc:
            raise ValidationError(exc.message, code=exc.code) from None
        return cleaned


def _run_action(modeladmin, request, queryset, verb: str, action) -> None:
    done, failed = 0, []
    for booking in queryset:
        try:
            action(booking)
            done += 1
        except DomainError as exc:
            failed.append(f"{booking}: {exc.message}")
    if done:
        modeladmin.message_user(request, f"{verb} {done} booking(s).", messages.SUCCESS)
    for failure in failed[:10]:
        modeladmin.message_user(request, failure, messages.WARNING)


@admin.register(Booking)
class BookingAdmin(SuperuserOrganizationColumn, TenantAdmin):
    add_roles = change_roles = WORKERS
    delete_roles = frozenset()  # bookings are cancelled, never deleted (the events stay true)
    list_display = (
        "local_start",
        "contact",
        "appointment_type",
        "resource",
        "status",
        "source",
        "reminder_sent_at",
    )
    list_filter = (
        "status",
        ("appointment_type", admin.RelatedOnlyFieldListFilter),
        ("resource", admin.RelatedOnlyFieldListFilter),
        ("start", admin.DateFieldListFilter),
        "source",
    )
    search_fields = ("contact__name", "contact__email", "contact__phone")
    list_select_related = ("contact", "appointment_type", "resource", "organization")
    raw_id_fields = ("contact", "deal")
    ordering = ("-start",)
    actions = ("confirm_bookings", "complete_bookings", "mark_no_show", "cancel_bookings")
    readonly_fields = (
        "organization",
        "contact",
        "appointment_type",
        "resource",
        "deal",
        "local_start",
        "start",
        "end",
        "blocked_start",
        "blocked_end",
        "status",
        "source",
        "reminder_due_at",
        "reminder_sent_at",
        "cancelled_at",
        "cancellation_reason",
        "completed_at",
        "no_show_at",
        "created_at",
        "updated_at",
    )

    @admin.display(description="start (local)", ordering="start")
    def local_start(self, obj) -> str:
        return obj.start.astimezone(obj.organization.tz).strftime("%a %d %b %Y %H:%M %Z")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = BookingAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("contact", "appointment_type", "start_local", "resource", "deal", "notes")
        return (*self.readonly_fields, "notes")

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def save_form(self, request, form, change):
        return form.booking if not change else super().save_form(request, form, change)

    def save_related(self, request, form, formsets, change):
        if change:  # a new booking was complete when the service returned it
            super().save_related(request, form, formsets, change)

    def save_model(self, request, obj, form, change):
        if change:  # only the notes are editable; state changes go through the actions
            obj.save(update_fields=["notes", "updated_at"])

    confirm_bookings_roles = WORKERS

    @admin.action(description="Confirm selected bookings", permissions=["change"])
    def confirm_bookings(self, request, queryset):
        _run_action(
            self, request, queryset, "Confirmed", lambda b: services.booking_confirm(booking=b)
        )

    complete_bookings_roles = WORKERS

    @admin.action(description="Mark selected bookings completed", permissions=["change"])
    def complete_bookings(self, request, queryset):
        _run_action(
            self, request, queryset, "Completed", lambda b: services.booking_complete(booking=b)
        )

    mark_no_show_roles = WORKERS

    @admin.action(description="Mark selected bookings as no-shows", permissions=["change"])
    def mark_no_show(self, request, queryset):
        _run_action(
            self,
            request,
            queryset,
            "Marked as no-show",
            lambda b: services.booking_mark_no_show(booking=b),
        )

    cancel_bookings_roles = WORKERS

    @admin.action(description="Cancel selected bookings", permissions=["change"])
    def cancel_bookings(self, request, queryset):
        reason = f"Cancelled in the console by {request.user}"
        _run_action(
            self,
            request,
            queryset,
            "Cancelled",
            lambda b: services.booking_cancel(booking=b, reason=reason),
        )
