"""Base models shared by every app, and the idempotency record."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from apps.core.ids import uuid7


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class TenantQuerySet(models.QuerySet):
    def for_organization(self, organization) -> TenantQuerySet:
        """Rows of one organization (an Organization or its id)."""
        return self.filter(organization=organization)

    def for_organizations(self, organizations) -> TenantQuerySet:
        return self.filter(organization__in=organizations)


class TenantModel(TimeStampedModel):
    """A row owned by one organization. Every organization-owned model inherits this.

    The organization is set once, at creation, by a service; it never changes. Reads go
    through `objects.for_organization(...)` (selectors, API base view, tenant admin).
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, related_name="+"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class IdempotencyRecord(models.Model):
    """The stored outcome of one keyed POST/PATCH (see apps.core.idempotency).

    Unique per (organization, key). While the first request runs, its transaction holds
    the row, so a concurrent duplicate waits and then replays the stored response.
    """

    organization = models.ForeignKey("tenancy.Organization", on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="idempotency_org_key")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
