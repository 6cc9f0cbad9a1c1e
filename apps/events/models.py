"""The event outbox. Each event row is written in the same transaction as the change it
describes; delivery to subscribers reads from here."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from apps.core.ids import uuid7


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

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "sequence"], name="event_org_sequence")
        ]
        indexes = [
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
