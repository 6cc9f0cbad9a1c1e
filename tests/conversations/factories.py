"""Arrange inbox state through the services: members with roles and capacity, contacts
writing in on a channel, conversations in a given state."""

from __future__ import annotations

import itertools
from datetime import datetime

from apps.conversations.models import Conversation
from apps.conversations.services import message_record_inbound
from apps.crm.services import contact_upsert
from apps.tenancy.models import Membership
from apps.tenancy.services import operator_upsert
from tests.factories import staff_user

_phones = itertools.count(1000)


def member(
    organization,
    role: str = "operator",
    *,
    email: str | None = None,
    available: bool = True,
    capacity: int = 25,
    name: str = "",
):
    """A staff user with `role` in `organization`, available or not, with a capacity."""
    email = email or f"{role}-{next(_phones)}-{organization.slug}@example.com"
    user = operator_upsert(
        organization=organization,
        email=email,
        role=role,
        password="pw-Secret-123",
        full_name=name,
    ).user
    Membership.objects.filter(user=user, organization=organization).update(
        is_available=available, max_open_conversations=capacity
    )
    return user


def contact(organization, *, name: str = "", phone: str | None = None, tags=None):
    phone = phone or f"+1415555{next(_phones):04d}"
    result = contact_upsert(
        organization=organization,
        phone=phone,
        name=name,
        identities=[("whatsapp_id", phone.lstrip("+"))],
    )
    if tags:
        result.contact.tags = list(tags)
        result.contact.save(update_fields=["tags"])
    return result.contact


def inbound(
    organization,
    person,
    text: str = "Hello",
    *,
    channel: str = "whatsapp",
    connection=None,
    now: datetime | None = None,
    provider_id: str | None = None,
) -> Conversation:
    """The contact writes in; returns their conversation."""
    recorded = message_record_inbound(
        organization=organization,
        contact_id=person.pk,
        channel=channel,
        channel_connection_id=connection.pk if connection is not None else None,
        provider_message_id=provider_id or f"wamid.{next(_phones)}",
        text=text,
        now=now,
    )
    return Conversation.objects.get(pk=recorded.conversation_id)


def conversation(organization, text: str = "Hello", **kwargs) -> Conversation:
    """A new contact who wrote once."""
    tags = kwargs.pop("tags", None)
    name = kwargs.pop("name", "")
    return inbound(organization, contact(organization, name=name, tags=tags), text, **kwargs)


__all__ = ["contact", "conversation", "inbound", "member", "staff_user"]
