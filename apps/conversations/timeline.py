"""Conversation messages on the contact's CRM timeline (`apps.crm.timeline`).

Registered from `ConversationsConfig.ready()`. One query per timeline, for the newest
`limit` messages (internal notes included: staff read the timeline).
"""

from __future__ import annotations

from django.urls import reverse

from apps.crm.timeline import TimelineEntry


def message_entries(contact, limit: int):
    from apps.conversations.models import Direction, Message

    rows = (
        Message.objects.filter(organization_id=contact.organization_id, contact=contact)
        .select_related("sender_user")
        .defer("raw")
        .order_by("-created_at")[:limit]
    )
    for message in rows:
        url = reverse("admin:inbox_conversation", args=[message.conversation_id])
        if message.is_internal_note:
            title, kind = "Internal note", "note"
        elif message.direction == Direction.INBOUND:
            title, kind = f"Message received ({message.get_channel_display()})", "message"
        else:
            title = (
                f"Message sent ({message.get_channel_display()}) · {message.get_status_display()}"
            )
            kind = "message"
        actor = (
            str(message.sender_user)
            if message.sender_user_id
            else message.get_sender_kind_display()
        )
        yield TimelineEntry(
            at=message.created_at,
            kind=kind,
            title=title,
            detail=message.text[:500] or message.subject,
            url=f"{url}#m-{message.pk}",
            actor=actor,
        )
