"""CRM background work: thin tasks that load by id and call a service."""

from celery import shared_task

from apps.crm.models import Contact
from apps.crm.services import contact_leads_rescore


def rescore_contact(organization_id: str, contact_id: str) -> int:
    """Rescore a contact's open leads after new engagement (an inbound message).

    Idempotent: unchanged inputs emit nothing. A vanished contact is a no-op. The ingress
    queues it as a coalesced job (`apps.core.coalesce`, kind `crm.leads_rescore`).
    """
    contact = (
        Contact.objects.select_related("organization__primary_niche")
        .filter(pk=contact_id, organization_id=organization_id)
        .first()
    )
    if contact is None:
        return 0
    return len(contact_leads_rescore(organization=contact.organization, contact=contact))


@shared_task(name="apps.crm.tasks.leads_rescore")
def leads_rescore(organization_id: str, contact_id: str) -> int:
    """The same as a Celery task (kept for messages queued before an upgrade)."""
    return rescore_contact(organization_id, contact_id)
