"""Reads for conversations and messages. Every selector takes the organization first."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apps.conversations.models import Conversation, Direction, Message
from apps.conversations.sql import fetch_prepared
from apps.core.choices import Channel
from apps.core.errors import NotFound

WHATSAPP_WINDOW = timedelta(hours=24)

_CONTACT_TABLE = "crm_contact"
_IDENTITY_TABLE = "crm_contactidentity"
_CONVERSATION_TABLE = Conversation._meta.db_table


def message_get(*, organization, message_id) -> Message:
    """One message of the organization (a foreign or unknown id is NotFound)."""
    message = (
        Message.objects.for_organization(organization)
        .select_related("conversation", "channel_connection")
        .prefetch_related("status_updates")
        .filter(pk=message_id)
        .first()
    )
    if message is None:
        raise NotFound("Message not found.")
    return message


def conversation_messages(*, organization, conversation) -> QuerySet[Message]:
    return (
        Message.objects.for_organization(organization)
        .filter(conversation=conversation)
        .select_related("sender_user", "channel_connection")
        .prefetch_related("attachments")
        .order_by("created_at")
    )


def conversation_get_for_contact(*, organization, contact_id) -> Conversation | None:
    return (
        Conversation.objects.for_organization(organization)
        .select_related("last_channel_connection")
        .filter(contact_id=contact_id)
        .first()
    )


def message_find_by_email_ids(*, organization, message_ids: list[str]) -> Message | None:
    """The newest message whose RFC 5322 Message-ID is one of `message_ids` (email threading)."""
    ids = [m for m in message_ids if m]
    if not ids:
        return None
    return (
        Message.objects.for_organization(organization)
        .filter(email_message_id__in=ids)
        .order_by("-created_at")
        .only("id", "contact_id", "conversation_id")
        .first()
    )


def message_id_by_provider_id(*, channel_connection_id, provider_message_id: str):
    """Id of the message a provider knows as `provider_message_id` on that channel, or None."""
    if not provider_message_id:
        return None
    return (
        Message.objects.filter(
            channel_connection_id=channel_connection_id, provider_message_id=provider_message_id
        )
        .values_list("id", flat=True)
        .first()
    )


def whatsapp_last_inbound_at(*, organization, conversation: Conversation) -> datetime | None:
    """When the contact last wrote over WhatsApp (opens the 24-hour customer-service window)."""
    if conversation.last_inbound_channel == Channel.WHATSAPP:
        return conversation.last_inbound_at
    return (
        Message.objects.for_organization(organization)
        .filter(conversation=conversation, direction=Direction.INBOUND, channel=Channel.WHATSAPP)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def whatsapp_window_open(*, organization, conversation: Conversation | None, now=None) -> bool:
    if conversation is None:
        return False
    last = whatsapp_last_inbound_at(organization=organization, conversation=conversation)
    return last is not None and (now or timezone.now()) - last < WHATSAPP_WINDOW


# One indexed query resolving a sender's identities to a contact and its conversation: the
# ingress hot path. Each row is one matching identity.
_SENDER_SQL = f"""
SELECT i.kind, c.id, c.merged_into_id, c.name, c.email, c.phone, v.id, v.status
FROM {_IDENTITY_TABLE} i
JOIN {_CONTACT_TABLE} c ON c.id = i.contact_id
LEFT JOIN {_CONVERSATION_TABLE} v ON v.contact_id = c.id
WHERE i.organization_id = %s AND (i.kind, i.value) IN ({{pairs}})
"""  # noqa: S608 - table names are our own models'


def sender_lookup(*, organization_id, keys: dict[str, str]) -> list[tuple]:
    """Rows `(kind, contact_id, merged_into_id, name, email, phone, conversation_id, status)`
    for each of the sender's normalized identities `keys` ({kind: value}) that is known."""
    if not keys:
        return []
    pairs = ", ".join(["(%s, %s)"] * len(keys))
    params: list = [organization_id]
    for kind, value in keys.items():
        params += [kind, value]
    return fetch_prepared(_SENDER_SQL.format(pairs=pairs), params, many=True)
