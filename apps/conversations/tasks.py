"""Thin Celery tasks of the inbox (queue `default`): take ids, load, call a service.

Every task is idempotent; the beat jobs (`schedule.py`) are the durable safety net for the
per-event tasks (a lost auto-assign is done by the backlog sweep; a lost escalation is
not retried, the SLA job still flags the conversation when nobody answers).
"""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


def _organization(organization_id):
    from apps.tenancy.models import Organization

    return Organization.objects.filter(pk=organization_id).first()


def auto_assign(conversation_id: str) -> str | None:
    """Round-robin assignment of a conversation that received a message while unassigned.

    The ingress queues it as a coalesced job (`apps.core.coalesce`, kind
    `conversations.auto_assign`); assigning an assigned conversation is a no-op."""
    from apps.conversations.models import Conversation
    from apps.conversations.services import conversation_auto_assign as assign

    conversation = (
        Conversation.objects.select_related("organization").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    assignee = assign(organization=conversation.organization, conversation_id=conversation.pk)
    return str(assignee) if assignee else None


@shared_task(name="apps.conversations.tasks.conversation_auto_assign", acks_late=True)
def conversation_auto_assign(conversation_id: str) -> str | None:
    """The same as a Celery task (kept for messages queued before an upgrade)."""
    return auto_assign(conversation_id)


@shared_task(name="apps.conversations.tasks.conversation_customer_escalate", acks_late=True)
def conversation_customer_escalate(conversation_id: str, message_id: str) -> bool:
    """The contact asked for a person (see `apps.conversations.handoff`): escalate.

    The message must be an inbound message of that conversation (and so of its
    organization); any other id escalates nothing and returns False, so another
    tenant's text never lands in this conversation's reason, activity or event."""
    from apps.conversations.models import Conversation, Direction, Message
    from apps.conversations.services import clean_text, conversation_escalate

    conversation = (
        Conversation.objects.select_related("organization").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return False
    text = (
        Message.objects.filter(
            pk=message_id,
            conversation_id=conversation.pk,
            organization_id=conversation.organization_id,
            direction=Direction.INBOUND,
        )
        .values_list("text", flat=True)
        .first()
    )
    if text is None:
        return False
    conversation_escalate(
        organization=conversation.organization,
        conversation=conversation,
        reason=f'The contact asked for a person: "{clean_text(text, 120)}"',
        source="customer",
    )
    return True


@shared_task(name="apps.conversations.tasks.inbox_assign_backlog", acks_late=True)
def inbox_assign_backlog(organization_id: str) -> int:
    """Assign one organization's backlog now (capacity was freed or settings changed)."""
    from apps.conversations.services import inbox_assign_backlog as sweep

    organization = _organization(organization_id)
    return sweep(organization=organization) if organization else 0


@shared_task(name="apps.conversations.tasks.assign_backlog_sweep")
def assign_backlog_sweep() -> int:
    """Beat: every organization with unassigned open conversations and auto-assignment on."""
    from apps.conversations.selectors import organizations_with_backlog
    from apps.conversations.services import inbox_assign_backlog as sweep

    total = 0
    for organization in organizations_with_backlog():
        total += sweep(organization=organization)
    return total


@shared_task(name="apps.conversations.tasks.wake_snoozed")
def wake_snoozed() -> int:
    """Beat: reopen conversations whose snooze ended."""
    from apps.conversations.services import conversations_wake_snoozed

    return conversations_wake_snoozed()


@shared_task(name="apps.conversations.tasks.sla_check")
def sla_check() -> int:
    """Beat: handle each new response-time breach once (reassign or escalate)."""
    from apps.conversations.services import conversation_sla_breach, sla_due_breaches

    handled = 0
    organizations: dict = {}
    for breach in sla_due_breaches():
        if breach.organization_id not in organizations:
            organizations[breach.organization_id] = _organization(breach.organization_id)
        organization = organizations[breach.organization_id]
        try:
            if conversation_sla_breach(organization=organization, breach=breach) is not None:
                handled += 1
        except Exception:  # one bad row must not stop the others; the next run retries it
            logger.exception("SLA breach handling failed for %s", breach.conversation_id)
    return handled
