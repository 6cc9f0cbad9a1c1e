"""Demo data for `manage.py seed_demo`: the organization's credit account (with this
month's plan grant) and one decision per demo contact with a lead, made by the rules
engine, so the decision log and the simulator have something to show. Idempotent (each
decision has a stable event id)."""

from __future__ import annotations

from apps.crm.models import Lead
from apps.decisions.credits import credits_account
from apps.decisions.selectors import decision_subject_get
from apps.decisions.services import decision_make


def seed_demo(*, organization) -> None:
    credits_account(organization=organization)
    leads = Lead.objects.filter(organization=organization).select_related("contact")[:5]
    for lead in leads:
        contact, conversation = decision_subject_get(
            organization=organization, contact_id=lead.contact_id
        )
        decision_make(
            organization=organization,
            contact=contact,
            conversation=conversation,
            trigger="lead.created",
            event_id=f"demo:lead:{lead.pk}",
        )
