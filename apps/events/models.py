"""The event outbox. Each event row is written in the same transaction as the change it
describes; delivery to subscribers reads from here."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.crypto import EncryptedTextField
from apps.core.ids import uuid7
from apps.core.models import TenantModel


class Event(models.Model):
    """One significant change, in the shape subscribers receive (see `envelope`).

    `sequence` increases by exactly one per event within an organization, in commit order
    (see `emit`), so a consumer can order events and notice a gap.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, related_name="events"
    )
    type = models.CharField(max_length=64)
    version = models.PositiveSmallIntegerField(default=1)
    sequence = models.BigIntegerField()
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=64)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    trace_id = models.CharField(max_length=32)
    created_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its deliveries were created (fan-out). Empty: not fanned out yet.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "sequence"], name="event_org_sequence")
        ]
        indexes = [
            # The outbox: events still waiting for fan-out, oldest first.
            models.Index(
                fields=["created_at"],
                name="event_undispatched",
                condition=models.Q(dispatched_at__isnull=True),
            ),
            models.Index(
                fields=["organization", "type", "-created_at"], name="event_org_type_time"
            ),
            models.Index(
                fields=["organization", "subject_type", "subject_id"], name="event_org_subject"
            ),
            models.Index(fields=["trace_id"], name="event_trace"),
            models.Index(fields=["created_at"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.sequence}"

    def envelope(self) -> dict:
        """The body subscribers receive (ARCHITECTURE.md, "Outbound event webhooks")."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "timestamp": self.created_at.isoformat().replace("+00:00", "Z"),
            "organization": {"id": str(self.organization_id), "slug": self.organization.slug},
            "sequence": self.sequence,
            "trace_id": self.trace_id,
            "data": self.data,
        }


class EventCounter(models.Model):
    """Last sequence number handed out per organization (row-locked by `emit`)."""

    organization = models.OneToOneField(
        "tenancy.Organization", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last_sequence = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.last_sequence}"


class EndpointStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    DISABLED = "disabled", "Disabled"


class WebhookEndpoint(TenantModel):
    """A subscriber: where events of the subscribed types are POSTed, signed with `secret`.

    `event_types` holds patterns: an exact type (`lead.created`), a group (`booking.*`) or
    `*`. Paused endpoints keep their deliveries queued until resumed; disabled ones
    (by an operator, a 410 answer, or five days of failures) get no new deliveries.
    """

    # Not a URLField: container host names without a dot (http://n8n:5678) are valid
    # targets; `netguard` checks the URL instead.
    url = models.CharField(max_length=2000)
    event_types = ArrayField(models.CharField(max_length=64), help_text="Type patterns.")
    description = models.CharField(max_length=500, blank=True)
    secret = EncryptedTextField(help_text="whsec_ signing secret (encrypted at rest).")
    previous_secret = EncryptedTextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=EndpointStatus.choices, default=EndpointStatus.ACTIVE
    )
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    timeout_seconds = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )
    max_concurrency = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="Requests in flight to this endpoint at once, across all workers.",
    )
    rate_limit_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text="Requests per second at most (empty: no limit).",
    )
    # Health and circuit breaker (written by the delivery workers).
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    circuit_open_until = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="endpoint_org_status")]

    def __str__(self) -> str:
        return self.url

    @property
    def masked_secret(self) -> str:
        return f"{self.secret[:10]}…" if self.secret else ""


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead"


OPEN_DELIVERY_STATUSES = (
    DeliveryStatus.PENDING,
    DeliveryStatus.DELIVERING,
    DeliveryStatus.FAILED,
)


class Delivery(TenantModel):
    """One event to one endpoint: at most one row per pair (unique), whatever races.

    Its timing lives here: `next_attempt_at` is when it is due (empty while its endpoint is
    paused); while `delivering`, it is the end of the claiming worker's lease, after which
    any worker may take it again. Replays reset the row and keep the event id (webhook-id).
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveSmallIntegerField(
        default=0, help_text="Attempts since it was created or last replayed."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=models.Q(status__in=OPEN_DELIVERY_STATUSES),
            ),
            models.Index(fields=["endpoint", "status"], name="delivery_endpoint_status"),
            models.Index(
                fields=["organization", "-created_at"],
                name="delivery_dead",
                condition=models.Q(status=DeliveryStatus.DEAD),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery (or a lost one: the worker died during it)."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, related_name="+"
    )
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="attempts")
    attempt_number = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(help_text="When the request started.")
    succeeded = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    request_headers = models.JSONField(default=dict)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True, help_text="Truncated.")
    error = models.CharField(max_length=500, blank=True)
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next attempt was scheduled."
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["endpoint", "created_at"], name="attempt_endpoint_time"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt_number} of {self.delivery_id}"
