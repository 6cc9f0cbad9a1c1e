"""REST hooks and the event log (`/api/v1/`): subscribe, unsubscribe, rotate, replay, read.

Thin views: parse with an input serializer, call one service or selector, render.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import OrganizationAPIView
from apps.core.errors import ValidationFailed
from apps.core.pagination import CreatedCursorPagination, page_of, paginated_response
from apps.events import catalog, selectors, services
from apps.events.models import EndpointStatus, Event, WebhookEndpoint

TAGS_WEBHOOKS = ["webhooks"]
TAGS_EVENTS = ["events"]

_ENDPOINT_EXAMPLE = {
    "id": "01939f4e-7a10-7c2b-9d51-2f0c9c8e4a11",
    "url": "https://n8n.example.com/webhook/switchboard-lead-created",
    "event_types": ["lead.created"],
    "description": "n8n: Lead → Qualify → Book",
    "status": "active",
    "disabled_reason": "",
    "disabled_at": None,
    "timeout_seconds": 10,
    "max_concurrency": 10,
    "rate_limit_per_second": None,
    "secret_hint": "whsec_MfKQ…",
    "previous_secret_expires_at": None,
    "consecutive_failures": 0,
    "failing_since": None,
    "last_success_at": "2026-11-27T10:15:02.120Z",
    "last_failure_at": None,
    "created_at": "2026-11-20T09:00:00Z",
    "updated_at": "2026-11-27T10:15:02.120Z",
}
_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - documentation example


# --- serializers -------------------------------------------------------------------------


class EndpointOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    status = serializers.ChoiceField(choices=EndpointStatus.choices)
    disabled_reason = serializers.CharField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    timeout_seconds = serializers.IntegerField()
    max_concurrency = serializers.IntegerField()
    rate_limit_per_second = serializers.IntegerField(allow_null=True)
    secret_hint = serializers.CharField(source="masked_secret")
    previous_secret_expires_at = serializers.DateTimeField(allow_null=True)
    consecutive_failures = serializers.IntegerField()
    failing_since = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EndpointWithSecretOutput(EndpointOutput):
    secret = serializers.CharField(help_text="The whsec_ signing secret (shown on create).")


class _EndpointFields(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL that receives events.")
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64),
        allow_empty=False,
        help_text="Patterns: an exact type (`lead.created`), a group (`booking.*`) or `*`.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=30, required=False)
    max_concurrency = serializers.IntegerField(min_value=1, max_value=50, required=False)
    rate_limit_per_second = serializers.IntegerField(
        min_value=1, max_value=10_000, required=False, allow_null=True
    )


class EndpointCreateInput(_EndpointFields):
    secret = serializers.CharField(
        max_length=120,
        required=False,
        help_text="Optional `whsec_` secret to sign with (one n8n can share one secret); "
        "generated when absent.",
    )


class EndpointUpdateInput(_EndpointFields):
    status = serializers.ChoiceField(
        choices=EndpointStatus.choices,
        required=False,
        help_text="`paused` holds deliveries until `active` again; `disabled` moves waiting "
        "deliveries to the dead letters; `active` re-enables.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class RotateInput(serializers.Serializer):
    secret = serializers.CharField(max_length=120, required=False)


class RotateOutput(serializers.Serializer):
    id = serializers.UUIDField()
    secret = serializers.CharField()
    previous_secret_expires_at = serializers.DateTimeField()


class ReplayInput(serializers.Serializer):
    scope = serializers.ChoiceField(
        choices=[("dead", "dead"), ("events", "events")],
        default="dead",
        help_text="`dead`: requeue the endpoint's dead deliveries. `events`: (re)send every "
        "event created in [since, until) matching event_types (a backfill).",
    )
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        allow_empty=False,
        help_text="Default: the endpoint's own patterns.",
    )

    def validate(self, attrs):
        if attrs["scope"] == "events" and "since" not in attrs:
            raise serializers.ValidationError({"since": ["required when scope is events."]})
        return attrs


class ReplayOutput(serializers.Serializer):
    scope = serializers.CharField()
    requeued = serializers.IntegerField()


class EventOutput(serializers.Serializer):
    id = serializers.UUIDField(help_text="Also the `webhook-id` of every delivery of it.")
    type = serializers.CharField()
    version = serializers.IntegerField()
    sequence = serializers.IntegerField()
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    trace_id = serializers.CharField()
    data = serializers.JSONField()
    created_at = serializers.DateTimeField()


class AttemptOutput(serializers.Serializer):
    attempt_number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    succeeded = serializers.BooleanField()
    duration_ms = serializers.IntegerField(allow_null=True)
    response_status = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    retry_at = serializers.DateTimeField(allow_null=True)


class DeliveryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    endpoint_id = serializers.UUIDField()
    endpoint_url = serializers.CharField(source="endpoint.url")
    status = serializers.CharField()
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_response_status = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    replay_count = serializers.IntegerField()
    attempts = AttemptOutput(many=True)


class EventDetailOutput(EventOutput):
    dispatched_at = serializers.DateTimeField(allow_null=True)
    deliveries = DeliveryOutput(many=True)


class RedeliverInput(serializers.Serializer):
    endpoint_id = serializers.UUIDField(
        required=False,
        help_text="Only to this endpoint (it gets the event even if it never had it). "
        "Default: every endpoint the event was delivered to.",
    )


class EventTypeOutput(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    group = serializers.CharField()
    description = serializers.CharField()
    data_schema = serializers.JSONField()


def _valid(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- webhook endpoints -------------------------------------------------------------------


class WebhookListView(OrganizationAPIView):
    """Subscribe (REST hook) and list subscriptions."""

    @extend_schema(
        operation_id="webhooks_list",
        tags=TAGS_WEBHOOKS,
        responses=page_of("PaginatedWebhookEndpointList", EndpointOutput),
    )
    def get(self, request):
        return paginated_response(
            self, selectors.webhook_endpoint_list(organization=self.organization), EndpointOutput
        )

    @extend_schema(
        operation_id="webhooks_create",
        tags=TAGS_WEBHOOKS,
        request=EndpointCreateInput,
        responses={201: EndpointWithSecretOutput},
        examples=[
            OpenApiExample(
                "n8n subscription",
                request_only=True,
                value={
                    "url": "https://n8n.example.com/webhook/switchboard-lead-created",
                    "event_types": ["lead.created"],
                    "secret": _SECRET_EXAMPLE,
                    "description": "n8n: Lead → Qualify → Book",
                },
            ),
            OpenApiExample(
                "Everything about bookings",
                request_only=True,
                value={"url": "https://hooks.example.com/bookings", "event_types": ["booking.*"]},
            ),
            OpenApiExample(
                "Created",
                response_only=True,
                status_codes=["201"],
                value={**_ENDPOINT_EXAMPLE, "secret": _SECRET_EXAMPLE},
            ),
        ],
    )
    def post(self, request):
        data = _valid(EndpointCreateInput, request.data)
        endpoint = services.webhook_endpoint_create(organization=self.organization, **data)
        return Response(EndpointWithSecretOutput(endpoint).data, status=201)


class WebhookDetailView(OrganizationAPIView):
    """One subscription: read, edit / pause / resume, unsubscribe."""

    def _endpoint(self, pk) -> WebhookEndpoint:
        return self.get_scoped_object(WebhookEndpoint, pk=pk)

    @extend_schema(operation_id="webhooks_get", tags=TAGS_WEBHOOKS, responses=EndpointOutput)
    def get(self, request, pk):
        return Response(EndpointOutput(self._endpoint(pk)).data)

    @extend_schema(
        operation_id="webhooks_update",
        tags=TAGS_WEBHOOKS,
        request=EndpointUpdateInput,
        responses=EndpointOutput,
        examples=[
            OpenApiExample("Pause", request_only=True, value={"status": "paused"}),
            OpenApiExample("Resume", request_only=True, value={"status": "active"}),
            OpenApiExample(
                "Change types", request_only=True, value={"event_types": ["lead.*", "deal.won"]}
            ),
        ],
    )
    def patch(self, request, pk):
        endpoint = self._endpoint(pk)
        data = _valid(EndpointUpdateInput, request.data, partial=True)
        endpoint = services.webhook_endpoint_update(endpoint=endpoint, **data)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(operation_id="webhooks_delete", tags=TAGS_WEBHOOKS, responses={204: None})
    def delete(self, request, pk):
        services.webhook_endpoint_delete(endpoint=self._endpoint(pk))
        return Response(status=204)


class WebhookRotateSecretView(OrganizationAPIView):
    @extend_schema(
        operation_id="webhooks_rotate_secret",
        tags=TAGS_WEBHOOKS,
        request=RotateInput,
        responses=RotateOutput,
        description="Issue a new secret (or set the given one). For 24 hours deliveries carry "
        "two signatures, one per secret, so receivers can switch without losing any.",
        examples=[
            OpenApiExample(
                "Rotated",
                response_only=True,
                value={
                    "id": _ENDPOINT_EXAMPLE["id"],
                    "secret": _SECRET_EXAMPLE,
                    "previous_secret_expires_at": "2026-11-28T10:00:00Z",
                },
            )
        ],
    )
    def post(self, request, pk):
        endpoint = self.get_scoped_object(WebhookEndpoint, pk=pk)
        data = _valid(RotateInput, request.data)
        endpoint = services.webhook_endpoint_rotate_secret(
            endpoint=endpoint, secret=data.get("secret")
        )
        return Response(RotateOutput(endpoint).data)


class WebhookReplayView(OrganizationAPIView):
    @extend_schema(
        operation_id="webhooks_replay",
        tags=TAGS_WEBHOOKS,
        request=ReplayInput,
        responses={202: ReplayOutput},
        description="Requeue the endpoint's dead deliveries, or backfill it with every event of "
        "a type/time range. Replays keep each event's `webhook-id`.",
        examples=[
            OpenApiExample("Dead letters", request_only=True, value={"scope": "dead"}),
            OpenApiExample(
                "Backfill a new subscriber",
                request_only=True,
                value={
                    "scope": "events",
                    "since": "2026-11-01T00:00:00Z",
                    "until": "2026-11-27T00:00:00Z",
                    "event_types": ["booking.*"],
                },
            ),
            OpenApiExample("Requeued", response_only=True, value={"scope": "dead", "requeued": 12}),
        ],
    )
    def post(self, request, pk):
        endpoint = self.get_scoped_object(WebhookEndpoint, pk=pk)
        data = _valid(ReplayInput, request.data)
        if data["scope"] == "dead":
            count = services.endpoint_replay_dead(endpoint=endpoint)
        else:
            count = services.endpoint_backfill(
                endpoint=endpoint,
                since=data["since"],
                until=data.get("until"),
                event_types=data.get("event_types"),
            )
        return Response({"scope": data["scope"], "requeued": count}, status=202)


# --- events ------------------------------------------------------------------------------


class EventListView(OrganizationAPIView):
    """The event log, newest first (cursor pagination)."""

    @extend_schema(
        operation_id="events_list",
        tags=TAGS_EVENTS,
        parameters=[
            OpenApiParameter(
                "type",
                OpenApiTypes.STR,
                description="A type or pattern: `lead.created`, `booking.*`, `*`.",
            ),
            OpenApiParameter("subject_type", OpenApiTypes.STR),
            OpenApiParameter("subject_id", OpenApiTypes.STR),
            OpenApiParameter("trace_id", OpenApiTypes.STR),
        ],
        responses=page_of("PaginatedEventList", EventOutput, cursor=True),
    )
    def get(self, request):
        params = request.query_params
        pattern = params.get("type") or None
        if pattern and not catalog.pattern_is_valid(pattern):
            raise ValidationFailed(
                f"type: unknown event type or pattern {pattern!r}.",
                code="unknown_event_type",
                details={"type": [f"{pattern!r} is not in the catalog"]},
            )
        queryset = selectors.event_list(
            organization=self.organization,
            type=pattern,
            subject_type=params.get("subject_type") or None,
            subject_id=params.get("subject_id") or None,
            trace_id=params.get("trace_id") or None,
        )
        return paginated_response(
            self, queryset, EventOutput, pagination_class=CreatedCursorPagination
        )


class EventDetailView(OrganizationAPIView):
    @extend_schema(operation_id="events_get", tags=TAGS_EVENTS, responses=EventDetailOutput)
    def get(self, request, pk):
        event = self.get_scoped_object(
            selectors.event_with_deliveries(organization=self.organization), pk=pk
        )
        return Response(EventDetailOutput(event).data)


class EventRedeliverView(OrganizationAPIView):
    @extend_schema(
        operation_id="events_redeliver",
        tags=TAGS_EVENTS,
        request=RedeliverInput,
        responses={
            202: inline_serializer("RedeliverOutput", {"requeued": serializers.IntegerField()})
        },
        description="Send the event again (same `webhook-id`, fresh signature).",
    )
    def post(self, request, pk):
        event = self.get_scoped_object(Event, pk=pk)
        data = _valid(RedeliverInput, request.data)
        endpoint = None
        if "endpoint_id" in data:
            endpoint = self.get_scoped_object(WebhookEndpoint, pk=data["endpoint_id"])
        count = services.event_redeliver(event=event, endpoint=endpoint)
        return Response({"requeued": count}, status=202)


class EventTypeListView(OrganizationAPIView):
    """The event catalog: every type with its version and the JSON schema of `data`."""

    @extend_schema(
        operation_id="event_types_list",
        tags=TAGS_EVENTS,
        responses=page_of("PaginatedEventTypeList", EventTypeOutput),
    )
    def get(self, request):
        return paginated_response(self, catalog.all_types(), EventTypeOutput)
