"""Tasks the test worker imports (`--include tests.support.tasks`) to probe the plumbing."""

from celery import shared_task
from django.db import transaction

from apps.events.services import emit
from apps.tenancy.models import Organization


@shared_task(name="tests.support.tasks.emit_probe")
def emit_probe(organization_id: str, contact_id: str) -> None:
    organization = Organization.objects.get(pk=organization_id)
    with transaction.atomic():
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact_id,
            data={"contact_id": contact_id, "changed": ["probe"]},
        )
