"""Reads of decisions, their subjects and their outcomes."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, QuerySet

from apps.conversations.models import Conversation
from apps.core.errors import NotFound, ValidationFailed
from apps.crm.models import Contact
from apps.decisions.models import Decision, DecisionOutcome

MAX_MERGE_HOPS = 5


def _not_found(what: str, field: str) -> NotFound:
    return NotFound(f"{field}: {what} not found.", details={field: ["not found"]})


def _contact_query(organization):
    return Contact.objects.filter(organization=organization).select_related(
        "conversation", "decision_memory"
    )


def decision_subject_get(*, organization, contact_id=None, conversation_id=None):
    """(contact, conversation) a decision is about, with the conversation and the agent's
    memory preloaded (one query; a merged contact resolves to its survivor).

    Raises NotFound naming the field for another organization's (or an unknown) id, and
    ValidationFailed `contact_conversation_mismatch` when both are given and differ.
    """
    conversation = None
    if conversation_id is not None:
        conversation = (
            Conversation.objects.filter(organization=organization, pk=conversation_id)
            .select_related("contact", "contact__decision_memory")
            .first()
        )
        if conversation is None:
            raise _not_found("Conversation", "conversation_id")
    if contact_id is None or (conversation is not None and conversation.contact_id == contact_id):
        contact = conversation.contact
    else:
        contact = _contact_query(organization).filter(pk=contact_id).first()
        if contact is None:
            raise _not_found("Contact", "contact_id")
    hops = 0
    while contact.merged_into_id and hops < MAX_MERGE_HOPS:
        contact = _contact_query(organization).get(pk=contact.merged_into_id)
        hops += 1
    if conversation is not None and conversation.contact_id != contact.pk:
        raise ValidationFailed(
            "conversation_id: this conversation belongs to another contact than contact_id.",
            code="contact_conversation_mismatch",
            details={
                "conversation_id": ["belongs to another contact"],
                "contact_id": [str(contact_id)],
            },
        )
    return contact, conversation


def decision_for_event(*, organization, contact, event_id: str) -> Decision | None:
    """The decision already made for this (contact, event_id), if any."""
    return Decision.objects.filter(
        organization=organization, contact=contact, event_id=event_id
    ).first()


def decision_get(*, organization, decision_id) -> Decision:
    decision = Decision.objects.filter(organization=organization, pk=decision_id).first()
    if decision is None:
        raise NotFound("Decision not found.")
    return decision


def decision_list(*, organization, contact=None) -> QuerySet[Decision]:
    decisions = Decision.objects.filter(organization=organization).select_related("contact")
    if contact is not None:
        decisions = decisions.filter(contact=contact)
    return decisions.order_by("-created_at")


def decision_outcome_stats(*, organization, since: datetime) -> dict:
    """Decisions since `since` and how many led to a reply, a booking, a won deal
    (reporting: `{decisions, reply_received, booking_made, deal_won, by_engine}`)."""
    decisions = Decision.objects.filter(organization=organization, created_at__gte=since)
    totals = decisions.aggregate(
        decisions=Count("id", distinct=True),
        **{
            kind: Count("outcomes__decision", filter=Q(outcomes__kind=kind), distinct=True)
            for kind in ("reply_received", "booking_made", "deal_won")
        },
    )
    totals["by_engine"] = dict(
        decisions.values_list("engine").annotate(n=Count("id")).values_list("engine", "n")
    )
    return totals


def decision_outcomes_of(*, decision: Decision) -> QuerySet[DecisionOutcome]:
    return decision.outcomes.order_by("occurred_at")
