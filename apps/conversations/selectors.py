"""Reads for conversations and messages. Every selector takes the organization first."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, F, FilteredRelation, Q, QuerySet
from django.utils import timezone

from apps.conversations.models import (
    AutoAssign,
    Conversation,
    ConversationActivity,
    ConversationStatus,
    Direction,
    InboxSettings,
    Message,
    ReadState,
)
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


# --- the inbox ------------------------------------------------------------------------------------

INBOX_TABS = ("mine", "unassigned", "all")
UNREAD_COUNT_CAP = 99


@dataclass
class InboxFilters:
    """What the list shows. `status` "" = any status."""

    tab: str = "all"
    status: str = ConversationStatus.OPEN
    channel: str = ""
    tag: str = ""
    unread: bool = False


@dataclass
class InboxPage:
    rows: list[Conversation]  # each with .unread (bool) and .unread_count (int, capped)
    next_cursor: str | None
    per_page: int


def inbox_cursor_encode(conversation: Conversation) -> str:
    raw = f"{conversation.last_message_at.isoformat()}|{conversation.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def inbox_cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """(last_message_at, id) from a cursor, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, pk = raw.split("|", 1)
        parsed = datetime.fromisoformat(moment)
        if timezone.is_naive(parsed):
            return None
        return parsed, uuid.UUID(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None


def unread_condition() -> Q:
    """Unread for the user whose read state is annotated as `read_at` / `marked_unread`:
    marked unread, or the contact wrote after the user last read it."""
    return Q(marked_unread=True) | (
        Q(last_inbound_received_at__isnull=False)
        & (Q(read_at__isnull=True) | Q(read_at__lt=F("last_inbound_received_at")))
    )


def _with_read_state(queryset, user):
    return queryset.annotate(
        my_read=FilteredRelation("read_states", condition=Q(read_states__user=user)),
    ).annotate(
        read_at=F("my_read__last_read_at"),
        marked_unread=F("my_read__marked_unread"),
    )


def inbox_page(
    *,
    organization,
    user,
    filters: InboxFilters,
    cursor: str | None = None,
    per_page: int = 50,
) -> InboxPage:
    """One page of the inbox, newest activity first, keyset-paginated on
    (last_message_at, id): no OFFSET, no COUNT. Two queries whatever the page size: the rows
    (contact, assignee and the user's read state joined) and the unread counts of the page.
    Conversations without any message yet are not listed."""
    queryset = Conversation.objects.filter(organization=organization, last_message_at__isnull=False)
    if filters.tab == "mine":
        queryset = queryset.filter(assignee=user)
    elif filters.tab == "unassigned":
        queryset = queryset.filter(assignee__isnull=True)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.channel:
        queryset = queryset.filter(last_inbound_channel=filters.channel)
    if filters.tag:
        queryset = queryset.filter(contact__tags__contains=[filters.tag])
    queryset = _with_read_state(queryset, user).annotate(
        unread=ExpressionWrapper(unread_condition(), output_field=BooleanField())
    )
    if filters.unread:
        queryset = queryset.filter(unread_condition())
    position = inbox_cursor_decode(cursor) if cursor else None
    if position is not None:
        moment, pk = position
        queryset = queryset.filter(
            Q(last_message_at__lt=moment) | Q(last_message_at=moment, pk__lt=pk)
        )
    rows = list(
        queryset.select_related("contact", "assignee")
        .defer("contact__custom_fields")
        .order_by("-last_message_at", "-id")[: per_page + 1]
    )
    more = len(rows) > per_page
    rows = rows[:per_page]
    counts = unread_counts(user=user, conversation_ids=[r.pk for r in rows if r.unread])
    for row in rows:
        row.unread_count = counts.get(row.pk, 0)
    return InboxPage(
        rows=rows,
        next_cursor=inbox_cursor_encode(rows[-1]) if more and rows else None,
        per_page=per_page,
    )


_UNREAD_COUNTS_SQL = f"""
SELECT c.id, n.unread
FROM unnest(%s::uuid[]) AS c(id)
CROSS JOIN LATERAL (
    SELECT count(*) AS unread FROM (
        SELECT 1 FROM {Message._meta.db_table} m
        WHERE m.conversation_id = c.id AND m.direction = 'in'
          AND m.created_at > COALESCE(
              (SELECT r.last_read_at FROM {ReadState._meta.db_table} r
                WHERE r.conversation_id = c.id AND r.user_id = %s), '-infinity')
        LIMIT {UNREAD_COUNT_CAP + 1}
    ) AS recent
) AS n
"""  # noqa: S608 - table names are our own models'


def unread_counts(*, user, conversation_ids: list) -> dict:
    """{conversation id: messages from the contact that `user` has not read} (capped at
    UNREAD_COUNT_CAP + 1, shown as "99+"). One query for any number of conversations."""
    if not conversation_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_UNREAD_COUNTS_SQL, [list(conversation_ids), user.pk])
        return dict(cursor.fetchall())


def conversation_for_user(*, user, conversation_id, organization_ids=None) -> Conversation | None:
    """The conversation if it belongs to one of the user's organizations (any for a
    superuser), with its contact (owner, company) and assignee; else None (the view's 404)."""
    queryset = Conversation.objects.select_related(
        "organization", "contact", "contact__owner", "contact__company", "assignee"
    )
    if not user.is_superuser:
        queryset = queryset.filter(organization_id__in=organization_ids or [])
    return queryset.filter(pk=conversation_id).first()


def conversation_is_unread(*, conversation: Conversation, user) -> bool:
    state = ReadState.objects.filter(conversation=conversation, user=user).first()
    if state is None:
        return conversation.last_inbound_received_at is not None
    return state.marked_unread or (
        conversation.last_inbound_received_at is not None
        and (
            state.last_read_at is None or state.last_read_at < conversation.last_inbound_received_at
        )
    )


TIMELINE_MESSAGES = 100


def conversation_timeline_messages(
    *, organization, conversation, before: datetime | None = None, limit: int = TIMELINE_MESSAGES
) -> tuple[list[Message], bool]:
    """The newest `limit` messages (notes included) before `before`, oldest first, and
    whether older ones exist. One query (+1 for attachments)."""
    queryset = Message.objects.filter(organization=organization, conversation=conversation)
    if before is not None:
        queryset = queryset.filter(created_at__lt=before)
    rows = list(
        queryset.select_related("sender_user")
        .prefetch_related("attachments")
        .defer("raw")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    return list(reversed(rows[:limit])), len(rows) > limit


def conversation_activities(
    *, organization, conversation, since: datetime | None = None, limit: int = 200
) -> list[ConversationActivity]:
    queryset = ConversationActivity.objects.filter(
        organization=organization, conversation=conversation
    )
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    rows = list(queryset.select_related("actor").order_by("-created_at")[:limit])
    return list(reversed(rows))


def conversation_changes(*, organization, conversation, since: datetime):
    """For the page's polling: messages created or changed (delivery status) and activities
    recorded since `since`. Two queries."""
    messages = list(
        Message.objects.filter(
            organization=organization, conversation=conversation, updated_at__gt=since
        )
        .select_related("sender_user")
        .prefetch_related("attachments")
        .defer("raw")
        .order_by("created_at", "id")[:200]
    )
    activities = conversation_activities(
        organization=organization, conversation=conversation, since=since
    )
    return messages, activities


def organizations_with_backlog():
    """Organizations with unassigned open conversations whose auto-assignment is on."""
    from apps.tenancy.models import Organization

    with_backlog = Conversation.objects.filter(
        assignee__isnull=True, status=ConversationStatus.OPEN
    ).values("organization_id")
    switched_off = InboxSettings.objects.filter(auto_assign=AutoAssign.OFF).values(
        "organization_id"
    )
    return list(Organization.objects.filter(pk__in=with_backlog).exclude(pk__in=switched_off))


def whatsapp_window_closes_at(*, organization, conversation: Conversation) -> datetime | None:
    last = whatsapp_last_inbound_at(organization=organization, conversation=conversation)
    return last + WHATSAPP_WINDOW if last is not None else None


@dataclass(frozen=True)
class Suggestion:
    text: str
    source: str  # "decision": the decision API's proposal; "simulated": asked just now
    created_at: datetime | None = None
    decision_id: object | None = None
    rationale: str = ""


def ai_suggestion(*, organization, conversation: Conversation) -> Suggestion | None:
    """The adapter to the decision API for the reply box's "AI suggestion": the body of the
    `send_message` action of the newest decision recorded for this conversation after the
    contact's last message (a proposal that answers it). None when the decisions app is not
    installed yet, or there is no such decision. One query."""
    try:
        from apps.decisions.models import Decision
    except ImportError:
        return None
    queryset = Decision.objects.filter(
        organization=organization,
        conversation=conversation,
        action_types__contains=["send_message"],
    )
    if conversation.last_inbound_received_at is not None:
        queryset = queryset.filter(created_at__gte=conversation.last_inbound_received_at)
    decision = (
        queryset.order_by("-created_at")
        .only("id", "created_at", "actions", "rationale", "action_types")
        .first()
    )
    if decision is None:
        return None
    body = next(
        (
            a.get("body")
            for a in decision.actions or []
            if isinstance(a, dict) and a.get("type") == "send_message" and a.get("body")
        ),
        None,
    )
    if not body:
        return None
    return Suggestion(
        text=str(body),
        source="decision",
        created_at=decision.created_at,
        decision_id=decision.pk,
        rationale=str(decision.rationale or "")[:300],
    )


def ai_suggestion_simulate(*, organization, conversation: Conversation) -> Suggestion | None:
    """Ask the decision engine what it would answer now, with no side effect (no decision
    row, no event, no credits): `apps.decisions.services.decision_simulate`. None when the
    decisions app does not offer it (yet) or it proposes no message. May call the LLM: use
    it on demand, never while rendering a page."""
    try:
        from apps.decisions.services import decision_simulate
    except ImportError:
        return None
    last = (
        Message.objects.filter(
            organization=organization, conversation=conversation, direction=Direction.INBOUND
        )
        .order_by("-created_at")
        .values_list("text", flat=True)
        .first()
    )
    plan = decision_simulate(
        organization=organization,
        contact=conversation.contact,
        trigger="message.received" if last else "manual",
        message=last or "",
    )
    for action in getattr(plan, "actions", None) or []:
        if isinstance(action, dict) and action.get("type") == "send_message" and action.get("body"):
            rationale = getattr(getattr(plan, "result", None), "rationale", "") or ""
            return Suggestion(text=str(action["body"]), source="simulated", rationale=rationale)
    return None
