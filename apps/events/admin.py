"""The operator console for events and webhooks: event log, endpoints (health, secret,
pause/resume, replay), deliveries with their attempts, and the dead-letter page."""

from __future__ import annotations

import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.core.errors import DomainError
from apps.events import charts, selectors, services
from apps.events.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointStatus,
    Event,
    WebhookEndpoint,
)
from apps.tenancy.roles import MANAGERS, SUPERVISORS
from apps.tenancy.scoping import TenantAdmin, TenantInlineMixin
from apps.tenancy.selectors import user_organization_ids


def _link(obj, label=None) -> str:
    url = reverse(f"admin:events_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or obj)


def _attempts_summary(delivery: Delivery) -> str:
    attempts = list(delivery.attempts.all())
    if not attempts:
        return "-"
    return format_html_join(
        " · ",
        '<span title="{}">#{} {} {}</span>',
        (
            (
                a.error or "ok",
                a.attempt_number,
                a.response_status or "—",
                f"{a.duration_ms} ms" if a.duration_ms is not None else "",
            )
            for a in attempts
        ),
    )


# --- event log ---------------------------------------------------------------------------


class DeliveryInline(TenantInlineMixin, admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "endpoint",
        "status",
        "attempt_count",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )
    readonly_fields = fields
    verbose_name_plural = "deliveries (open one for every attempt's request and answer)"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("endpoint")
            .prefetch_related(Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("id")))
        )

    @admin.display(description="attempts")
    def attempts(self, obj) -> str:
        return _attempts_summary(obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(TenantAdmin):
    """The event log: read-only, searchable by type, subject and trace id."""

    list_display = (
        "created_at",
        "type",
        "sequence",
        "subject",
        "trace_id",
        "dispatched_at",
        "organization",
    )
    list_filter = ("type",)
    search_fields = ("=id", "type", "=subject_id", "=trace_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "organization",
        "type",
        "version",
        "sequence",
        "subject_type",
        "subject_id",
        "trace_id",
        "created_at",
        "dispatched_at",
        "pretty_data",
    )
    exclude = ("data",)
    inlines = [DeliveryInline]
    actions = ["redeliver"]

    @admin.display(description="subject")
    def subject(self, obj) -> str:
        return f"{obj.subject_type}:{obj.subject_id}"

    @admin.display(description="data")
    def pretty_data(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_replay_permission(self, request) -> bool:
        return self._allowed(request, self.redeliver_roles)

    redeliver_roles = SUPERVISORS

    @admin.action(
        description="Redeliver to its endpoints (same webhook-id)", permissions=["replay"]
    )
    def redeliver(self, request, queryset):
        count = services.deliveries_replay(deliveries=Delivery.objects.filter(event__in=queryset))
        self.message_user(request, f"{count} deliveries requeued.", messages.SUCCESS)


# --- endpoints ---------------------------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    new_secret = forms.CharField(
        required=False,
        label="Secret",
        help_text="Optional whsec_ secret to sign with (e.g. the one n8n verifies with); "
        "one is generated when empty.",
        widget=forms.PasswordInput(render_value=False),
    )

    class Meta:
        model = WebhookEndpoint
        fields = (
            "organization",
            "url",
            "event_types",
            "description",
            "timeout_seconds",
            "max_concurrency",
            "rate_limit_per_second",
        )

    def _service_check(self, check, value):
        try:
            return check(value)
        except DomainError as exc:
            raise forms.ValidationError(exc.message.split(": ", 1)[-1]) from None

    def clean_url(self):
        return self._service_check(services._url_clean, self.cleaned_data["url"])

    def clean_event_types(self):
        return self._service_check(
            services.event_type_patterns_clean, self.cleaned_data["event_types"]
        )

    def clean_new_secret(self):
        value = self.cleaned_data.get("new_secret")
        return self._service_check(services._secret_clean, value) if value else ""


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantAdmin):
    """Subscriptions: health, masked secret, pause/resume, rotate, replay dead letters."""

    view_roles = add_roles = change_roles = delete_roles = MANAGERS
    form = WebhookEndpointForm
    list_display = (
        "url",
        "organization",
        "types",
        "status",
        "consecutive_failures",
        "last_success_at",
        "last_failure_at",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("url", "description")
    list_select_related = ("organization",)
    readonly_fields = (
        "id",
        "secret_masked",
        "previous_secret_expires_at",
        "status",
        "disabled_reason",
        "disabled_at",
        "consecutive_failures",
        "failing_since",
        "circuit_open_until",
        "last_success_at",
        "last_failure_at",
        "health",
        "created_at",
        "updated_at",
    )
    actions = ["pause", "resume", "disable", "rotate_secret", "replay_dead"]

    def get_fieldsets(self, request, obj=None):
        editable = [
            "organization",
            "url",
            "event_types",
            "description",
            "timeout_seconds",
            "max_concurrency",
            "rate_limit_per_second",
        ]
        if obj is None:
            return [(None, {"fields": [*editable, "new_secret"]})]
        return [
            ("Health", {"fields": ["health"]}),
            (None, {"fields": ["id", *editable, "secret_masked", "previous_secret_expires_at"]}),
            (
                "State",
                {
                    "fields": [
                        "status",
                        "disabled_reason",
                        "disabled_at",
                        "consecutive_failures",
                        "failing_since",
                        "circuit_open_until",
                        "last_success_at",
                        "last_failure_at",
                        "created_at",
                        "updated_at",
                    ]
                },
            ),
        ]

    @admin.display(description="event types")
    def types(self, obj) -> str:
        return ", ".join(obj.event_types)

    @admin.display(description="secret")
    def secret_masked(self, obj) -> str:
        return obj.masked_secret

    @admin.display(description="success rate and latency, last 24 h")
    def health(self, obj) -> str:
        return charts.endpoint_health_html(selectors.endpoint_health(endpoint=obj))

    def _notify_disabled(self, request, queryset) -> None:
        for endpoint in queryset.filter(status=EndpointStatus.DISABLED).exclude(
            disabled_reason="disabled by a person"
        )[:5]:
            messages.warning(
                request,
                format_html(
                    "Webhook endpoint {} was disabled on {} UTC: {}. "
                    "Fix it, set it active again, then replay its dead deliveries.",
                    _link(endpoint, endpoint.url),
                    f"{endpoint.disabled_at:%Y-%m-%d %H:%M}" if endpoint.disabled_at else "?",
                    endpoint.disabled_reason,
                ),
            )

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            self._notify_disabled(request, self.get_queryset(request))
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id)) if request.method == "GET" else None
        if obj is not None:  # get_object: None for a foreign or malformed id (not a 500)
            self._notify_disabled(request, self.get_queryset(request).filter(pk=obj.pk))
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = (
            "url",
            "event_types",
            "description",
            "timeout_seconds",
            "max_concurrency",
            "rate_limit_per_second",
        )
        if change:
            saved = services.webhook_endpoint_update(
                endpoint=WebhookEndpoint.objects.get(pk=obj.pk),
                **{name: data[name] for name in fields if name in form.changed_data},
            )
        else:
            saved = services.webhook_endpoint_create(
                organization=data["organization"],
                secret=data.get("new_secret") or None,
                **{name: data[name] for name in fields},
            )
            messages.warning(
                request,
                f"Signing secret: {saved.secret} — copy it now (e.g. into n8n's "
                "SWITCHBOARD_WEBHOOK_SECRET); it is shown masked from now on.",
            )
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj):
        services.webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            services.webhook_endpoint_delete(endpoint=endpoint)

    def _set_status(self, request, queryset, status: str, verb: str) -> None:
        for endpoint in queryset:
            services.webhook_endpoint_update(endpoint=endpoint, status=status)
        self.message_user(request, f"{queryset.count()} endpoint(s) {verb}.", messages.SUCCESS)

    pause_roles = MANAGERS

    @admin.action(description="Pause (hold deliveries)", permissions=["change"])
    def pause(self, request, queryset):
        self._set_status(request, queryset, EndpointStatus.PAUSED, "paused")

    resume_roles = MANAGERS

    @admin.action(description="Resume / re-enable", permissions=["change"])
    def resume(self, request, queryset):
        self._set_status(request, queryset, EndpointStatus.ACTIVE, "active")

    disable_roles = MANAGERS

    @admin.action(description="Disable (waiting deliveries become dead)", permissions=["change"])
    def disable(self, request, queryset):
        self._set_status(request, queryset, EndpointStatus.DISABLED, "disabled")

    rotate_secret_roles = MANAGERS

    @admin.action(description="Rotate secret (old one signs too for 24 h)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            endpoint = services.webhook_endpoint_rotate_secret(endpoint=endpoint)
            messages.warning(
                request, f"New secret for {endpoint.url}: {endpoint.secret} — copy it now."
            )

    replay_dead_roles = MANAGERS

    @admin.action(description="Replay dead deliveries", permissions=["change"])
    def replay_dead(self, request, queryset):
        total = 0
        for endpoint in queryset:
            try:
                total += services.endpoint_replay_dead(endpoint=endpoint)
            except DomainError as exc:
                messages.error(request, f"{endpoint.url}: {exc.message}")
        self.message_user(request, f"{total} dead deliveries requeued.", messages.SUCCESS)


# --- deliveries --------------------------------------------------------------------------


class DeliveryAttemptInline(TenantInlineMixin, admin.StackedInline):
    model = DeliveryAttempt
    fk_name = "delivery"
    extra = 0
    can_delete = False
    fields = (
        "attempt_number",
        "created_at",
        "succeeded",
        "response_status",
        "duration_ms",
        "error",
        "retry_at",
        "request_headers_pretty",
        "response_headers_pretty",
        "response_body",
    )
    readonly_fields = fields
    ordering = ("id",)

    @admin.display(description="request headers")
    def request_headers_pretty(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.request_headers, indent=2))

    @admin.display(description="response headers")
    def response_headers_pretty(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.response_headers, indent=2))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(TenantAdmin):
    """One event to one endpoint, with every attempt's request and answer; replay from here."""

    view_roles = change_roles = SUPERVISORS
    list_display = (
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_response_status",
        "last_error",
        "organization",
    )
    list_filter = ("status",)
    search_fields = ("=event__id", "=event__trace_id", "event__type", "=event__subject_id")
    list_select_related = ("event", "endpoint", "organization")
    readonly_fields = (
        "id",
        "organization",
        "event_link",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_attempt_at",
        "last_response_status",
        "last_error",
        "delivered_at",
        "replay_count",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    inlines = [DeliveryAttemptInline]
    actions = ["replay"]

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, obj) -> str:
        return obj.event.type

    @admin.display(description="event")
    def event_link(self, obj) -> str:
        return _link(obj.event, f"{obj.event.type} #{obj.event.sequence} ({obj.event_id})")

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_replay_permission(self, request) -> bool:
        return self._allowed(request, self.replay_roles)

    replay_roles = SUPERVISORS

    @admin.action(description="Replay (send again, same webhook-id)", permissions=["replay"])
    def replay(self, request, queryset):
        count = services.deliveries_replay(deliveries=queryset)
        skipped = queryset.count() - count
        self.message_user(
            request,
            f"{count} deliveries requeued"
            + (f"; {skipped} skipped (in flight, or endpoint disabled)" if skipped else "")
            + ".",
            messages.SUCCESS,
        )


# --- dead letters ------------------------------------------------------------------------


def _dead_letter_scope(request) -> list | None:
    """Organization ids whose dead letters the user may see and replay (None: all)."""
    user = request.user
    if user.is_superuser:
        return None
    org_ids = user_organization_ids(user=user, roles=SUPERVISORS)
    if not org_ids:
        raise PermissionDenied
    return org_ids


def dead_letters(request):
    """Dead deliveries of the operator's organizations, with bulk replay."""
    org_ids = _dead_letter_scope(request)
    queryset = selectors.dead_letters(organization_ids=org_ids)
    endpoints = WebhookEndpoint.objects.all()
    if org_ids is not None:
        endpoints = endpoints.filter(organization_id__in=org_ids)
    endpoint_id = request.GET.get("endpoint") or request.POST.get("endpoint") or ""
    if endpoint_id:
        try:
            queryset = queryset.filter(endpoint_id=uuid.UUID(endpoint_id))
        except ValueError:
            endpoint_id, queryset = "", queryset.none()
    if request.method == "POST":
        if request.POST.get("all") == "1":
            chosen = queryset
        else:
            try:
                chosen_ids = [uuid.UUID(value) for value in request.POST.getlist("delivery")]
            except ValueError:
                return HttpResponseBadRequest(
                    "A selected delivery id is not a valid id.", content_type="text/plain"
                )
            chosen = queryset.filter(pk__in=chosen_ids)
        count = services.deliveries_replay(
            deliveries=Delivery.objects.filter(pk__in=chosen.values("pk"))
        )
        messages.success(request, f"{count} dead deliveries requeued.")
        url = reverse("admin:dead_letters")
        return redirect(f"{url}?endpoint={endpoint_id}" if endpoint_id else url)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    context = {
        **admin.site.each_context(request),
        "title": "Dead letters",
        "page": page,
        "endpoints": endpoints.filter(
            pk__in=Delivery.objects.filter(status=DeliveryStatus.DEAD).values("endpoint_id")
        ).order_by("url"),
        "endpoint_id": endpoint_id,
    }
    return TemplateResponse(request, "admin/events/dead_letters.html", context)


admin.site.register_page("dead-letters/", dead_letters, name="dead_letters", title="Dead letters")
