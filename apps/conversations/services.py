"""Conversation write actions: threading inbound messages, the one send service, delivery status.

Every action runs in one transaction (no savepoint of its own, so composing them inside the
ingress transaction costs no extra round trips) and emits its events there. Network calls
never happen here: `message_send` queues a row and a Celery task (after commit) that calls
the provider (`apps.providers.services.message_deliver`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from apps.conversations import selectors
from apps.conversations.models import (
    STATUS_RANK,
    Attachment,
    AttachmentStatus,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    MessageStatusUpdate,
    SenderKind,
)
from apps.conversations.sql import fetch_prepared
from apps.core import tracing
from apps.core.choices import Channel
from apps.core.errors import Unprocessable, ValidationFailed
from apps.core.ids import uuid7
from apps.events.services import emit
from apps.revenue.limits import limit_check

logger = logging.getLogger(__name__)

_CONVERSATION = Conversation._meta.db_table
_MESSAGE = Message._meta.db_table
_STATUS_UPDATE = MessageStatusUpdate._meta.db_table
_CONTACT = "crm_contact"

# Senders whose message answers the contact (clears waiting_since; sets first_response_at).
_ANSWERING = {SenderKind.OPERATOR, SenderKind.AGENT}


def clean_text(value, limit: int | None = None) -> str:
    """A string PostgreSQL accepts (no NUL), cut to `limit` characters."""
    if value is None:
        return ""
    text = str(value).replace("\x00", "")
    return text[:limit] if limit else text


def clean_json(value):
    """`value` with NUL characters removed from every string (jsonb rejects \\u0000)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def message_event_data(message: Message, *, provider: str = "", attachments=None) -> dict:
    return {
        "message_id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "contact_id": str(message.contact_id),
        "channel": message.channel,
        "direction": message.direction,
        "text": message.text,
        "provider": provider,
        "provider_message_id": message.provider_message_id,
        "status": message.status,
        "error_code": message.error_code or None,
        "error_reason": message.error_reason or None,
        "attachments": attachments or [],
        "sent_at": message.sent_at,
    }


def _preview(text: str, subject: str = "", attachments: int = 0) -> str:
    text = " ".join((text or "").split())
    if not text and subject:
        text = subject
    if not text and attachments:
        text = "[attachment]"
    return text[:200]


# --- threading ------------------------------------------------------------------------------

_CONVERSATION_INSERT = f"""
INSERT INTO {_CONVERSATION}
    (id, organization_id, created_at, updated_at, contact_id, status, priority, assignee_id,
     agent_active, last_inbound_channel, last_channel_connection_id, last_message_at,
     last_message_preview, last_inbound_at, waiting_since, first_response_at, snoozed_until,
     resolved_at, escalated_at)
VALUES (%s, %s, %s, %s, %s, 'open', 'normal', NULL, true, %s, %s, NULL, '', NULL, NULL, NULL,
        NULL, NULL, NULL)
ON CONFLICT (contact_id) DO NOTHING
RETURNING id
"""  # noqa: S608 - table names are our own models'


def conversation_for_contact(
    *, organization, contact, channel: str = "", channel_connection_id=None
) -> Conversation:
    """The contact's one conversation, created (with `conversation.created`) when missing.

    Race-safe: concurrent callers for one contact get the same row. Idempotent.
    """
    with transaction.atomic(savepoint=False):
        existing = Conversation.objects.filter(contact_id=contact.pk).first()
        if existing is not None:
            return existing
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                _CONVERSATION_INSERT,
                [uuid7(), organization.pk, now, now, contact.pk, channel, channel_connection_id],
            )
            row = cursor.fetchone()
        conversation = Conversation.objects.get(contact_id=contact.pk)
        if row is not None:
            emit(
                organization=organization,
                type="conversation.created",
                subject_type="conversation",
                subject_id=conversation.id,
                data={
                    "conversation_id": str(conversation.id),
                    "contact_id": str(contact.pk),
                    "status": conversation.status,
                    "channel": channel or None,
                },
            )
        return conversation


@dataclass
class InboundAttachment:
    """An attachment as the provider describes it; `content` when it came inside the request."""

    content_type: str = ""
    size: int | None = None
    filename: str = ""
    provider_url: str = ""
    provider_media_id: str = ""
    content: bytes | None = None


@dataclass
class RecordedInbound:
    message_id: object | None  # None: a duplicate, nothing was stored
    conversation_id: object
    contact_id: object
    reopened_from: str | None = None
    attachment_ids: list = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.message_id is not None


# One round trip: insert the message unless the provider id is known (dedupe), and thread it:
# conversation activity, reopen when resolved/snoozed (the locked subquery yields the old
# status), and the contact's last activity.
_INBOUND_SQL = f"""
WITH m AS (
    INSERT INTO {_MESSAGE}
        (id, organization_id, created_at, updated_at, conversation_id, contact_id, direction,
         channel, channel_connection_id, provider_message_id, sender_kind, sender_user_id,
         is_internal_note, text, subject, status, error_code, error_reason, template_name,
         reply_to_id, reply_to_provider_id, email_message_id, sent_at, scheduled_for,
         delivered_at, read_at, failed_at, send_attempts, next_attempt_at, trace_id, raw)
    VALUES
        (%(id)s, %(org)s, %(now)s, %(now)s, %(conversation)s, %(contact)s, 'in', %(channel)s,
         %(connection)s, %(provider_id)s, 'contact', NULL, false, %(text)s, %(subject)s,
         'received', '', '', '', %(reply_to)s, %(reply_to_provider_id)s, %(email_message_id)s,
         %(sent_at)s, NULL, NULL, NULL, NULL, 0, NULL, %(trace_id)s, %(raw)s::jsonb)
    ON CONFLICT DO NOTHING
    RETURNING id
), v AS (
    UPDATE {_CONVERSATION} AS c SET
        last_inbound_channel = %(channel)s,
        last_channel_connection_id = COALESCE(%(connection)s, c.last_channel_connection_id),
        last_message_at = %(now)s,
        last_message_preview = %(preview)s,
        last_inbound_at = GREATEST(c.last_inbound_at, %(inbound_at)s),
        waiting_since = COALESCE(c.waiting_since, %(now)s),
        status = CASE WHEN o.status IN ('resolved', 'snoozed') THEN 'open' ELSE o.status END,
        snoozed_until = CASE WHEN o.status = 'snoozed' THEN NULL ELSE c.snoozed_until END,
        resolved_at = CASE WHEN o.status = 'resolved' THEN NULL ELSE c.resolved_at END,
        updated_at = %(now)s
    FROM (SELECT id, status FROM {_CONVERSATION} WHERE id = %(conversation)s FOR UPDATE) AS o
    WHERE c.id = o.id AND EXISTS (SELECT 1 FROM m)
    RETURNING o.status
), k AS (
    UPDATE {_CONTACT} SET last_activity_at = %(now)s
    WHERE id = %(contact)s AND EXISTS (SELECT 1 FROM m)
    RETURNING 1
)
SELECT (SELECT id FROM m), (SELECT status FROM v), (SELECT count(*) FROM k)
"""  # noqa: S608 - table names are our own models'


def message_record_inbound(
    *,
    organization,
    contact_id,
    conversation_id=None,
    channel: str,
    channel_connection_id=None,
    provider: str = "",
    provider_message_id: str | None = None,
    text: str = "",
    subject: str = "",
    sent_at: datetime | None = None,
    reply_to_provider_id: str = "",
    reply_to_id=None,
    email_message_id: str = "",
    attachments: Iterable[InboundAttachment] = (),
    raw: dict | None = None,
    now: datetime | None = None,
) -> RecordedInbound:
    """Store one inbound message in the contact's conversation and emit `message.received`.

    Threading: the conversation (created when missing) gets the activity fields, the
    WhatsApp-window time (`last_inbound_at`) and `waiting_since`; a resolved or snoozed one
    reopens (`conversation.status_changed`). Idempotent per (channel connection, provider
    message id): a duplicate stores nothing, emits nothing and returns `message_id=None`.
    Attachments are rows in `pending` state for the download task (the caller enqueues it).
    """
    now = now or timezone.now()
    attachments = list(attachments)
    text = clean_text(text)
    subject = clean_text(subject, 255)
    with transaction.atomic(savepoint=False):
        if conversation_id is None:
            from apps.crm.models import Contact

            contact = Contact(pk=contact_id)
            conversation_id = conversation_for_contact(
                organization=organization,
                contact=contact,
                channel=channel,
                channel_connection_id=channel_connection_id,
            ).id
        if reply_to_id is None and reply_to_provider_id and channel_connection_id:
            reply_to_id = selectors.message_id_by_provider_id(
                channel_connection_id=channel_connection_id,
                provider_message_id=reply_to_provider_id,
            )
        message_id = uuid7()
        inbound_at = min(sent_at, now) if sent_at else now
        trace_id = tracing.current_trace_id()
        inserted, old_status, _ = fetch_prepared(
            _INBOUND_SQL,
            {
                "id": message_id,
                "org": organization.pk,
                "now": now,
                "conversation": conversation_id,
                "contact": contact_id,
                "channel": channel,
                "connection": channel_connection_id,
                "provider_id": provider_message_id,
                "text": text,
                "subject": subject,
                "reply_to": reply_to_id,
                "reply_to_provider_id": clean_text(reply_to_provider_id, 255),
                "email_message_id": clean_text(email_message_id, 255),
                "sent_at": sent_at,
                "trace_id": trace_id,
                "raw": json.dumps(clean_json(raw), cls=DjangoJSONEncoder)
                if raw is not None
                else None,
                "preview": _preview(text, subject, len(attachments)),
                "inbound_at": inbound_at,
            },
        )
        if inserted is None:
            return RecordedInbound(None, conversation_id, contact_id)

        attachment_rows = [
            Attachment(
                organization_id=organization.pk,
                message_id=message_id,
                content_type=clean_text(a.content_type, 100),
                size=a.size,
                filename=clean_text(a.filename, 255),
                provider_url=clean_text(a.provider_url),
                provider_media_id=clean_text(a.provider_media_id, 255),
            )
            for a in attachments
        ]
        if attachment_rows:
            for row, source in zip(attachment_rows, attachments, strict=True):
                if source.content is not None:
                    _attachment_store_content(row, source.content)
            Attachment.objects.bulk_create(attachment_rows)

        reopened_from = old_status if old_status in ("resolved", "snoozed") else None
        if reopened_from:
            emit(
                organization=organization,
                type="conversation.status_changed",
                subject_type="conversation",
                subject_id=conversation_id,
                data={
                    "conversation_id": str(conversation_id),
                    "contact_id": str(contact_id),
                    "status": ConversationStatus.OPEN,
                    "from_status": reopened_from,
                    "reason": "inbound message",
                    "channel": channel,
                },
            )
        emit(
            organization=organization,
            type="message.received",
            subject_type="message",
            subject_id=message_id,
            data={
                "message_id": str(message_id),
                "conversation_id": str(conversation_id),
                "contact_id": str(contact_id),
                "channel": channel,
                "direction": Direction.INBOUND.value,
                "text": text,
                "provider": provider,
                "provider_message_id": provider_message_id,
                "status": MessageStatus.RECEIVED.value,
                "error_code": None,
                "error_reason": None,
                "attachments": [
                    {
                        "id": str(a.id),
                        "content_type": a.content_type,
                        "size": a.size,
                        "filename": a.filename,
                    }
                    for a in attachment_rows
                ],
                "sent_at": sent_at,
            },
            trace_id=trace_id,
            occurred_at=now,
        )
        return RecordedInbound(
            message_id,
            conversation_id,
            contact_id,
            reopened_from=reopened_from,
            attachment_ids=[a.id for a in attachment_rows if a.status == AttachmentStatus.PENDING],
        )


def _attachment_store_content(attachment: Attachment, content: bytes) -> None:
    """Save bytes that arrived inside the webhook (email) to the default storage at once."""
    from django.core.files.base import ContentFile

    name = attachment.filename or f"{attachment.id}"
    attachment.file.save(name, ContentFile(content), save=False)
    attachment.size = len(content)
    attachment.status = AttachmentStatus.STORED


def attachment_mark(*, attachment: Attachment, stored_name: str = "", error: str = "") -> None:
    """Record the outcome of a download (stored file name, or the error)."""
    if stored_name:
        attachment.file.name = stored_name
        attachment.status, attachment.error = AttachmentStatus.STORED, ""
    else:
        attachment.status, attachment.error = AttachmentStatus.FAILED, clean_text(error, 300)
    attachment.save(update_fields=["file", "size", "content_type", "status", "error", "updated_at"])


# --- delivery status ----------------------------------------------------------------------------

_STATUS_EVENTS = {
    MessageStatus.SENT: "message.sent",
    MessageStatus.DELIVERED: "message.delivered",
    MessageStatus.READ: "message.read",
    MessageStatus.FAILED: "message.failed",
}

_STATUS_INSERT = f"""
INSERT INTO {_STATUS_UPDATE}
    (id, organization_id, created_at, updated_at, message_id, status, occurred_at, error_code,
     error_reason, raw)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (message_id, status) DO NOTHING
RETURNING id
"""  # noqa: S608 - table name is our own model's


@dataclass
class StatusApplied:
    message: Message | None
    recorded: bool = False  # a new status report (not a duplicate)
    moved: bool = False  # the message's status advanced


def message_apply_status(
    *,
    organization,
    status: str,
    message_id=None,
    channel_connection_id=None,
    provider_message_id: str | None = None,
    occurred_at: datetime | None = None,
    error_code: str = "",
    error_reason: str = "",
    raw: dict | None = None,
    provider: str = "",
) -> StatusApplied:
    """Apply a delivery status report to a message (by id, or by its provider id on a channel).

    Monotonic: the status only moves up `STATUS_RANK` (a late "delivered" never downgrades
    "read"); each (message, status) is recorded once in the history (dedupe), and a move
    emits `message.sent|delivered|read|failed`. Unknown messages are ignored. Idempotent.
    """
    now = timezone.now()
    occurred_at = occurred_at or now
    with transaction.atomic(savepoint=False):
        queryset = Message.objects.select_for_update().filter(organization=organization)
        if message_id is not None:
            queryset = queryset.filter(pk=message_id)
        elif provider_message_id:
            queryset = queryset.filter(
                channel_connection_id=channel_connection_id,
                provider_message_id=provider_message_id,
            )
        else:
            return StatusApplied(None)
        message = queryset.first()
        if message is None:
            return StatusApplied(None)
        error_code = clean_text(error_code, 32)
        error_reason = clean_text(error_reason, 300)
        with connection.cursor() as cursor:
            cursor.execute(
                _STATUS_INSERT,
                [
                    uuid7(),
                    organization.pk,
                    now,
                    now,
                    message.id,
                    status,
                    occurred_at,
                    error_code,
                    error_reason,
                    json.dumps(clean_json(raw), cls=DjangoJSONEncoder) if raw is not None else None,
                ],
            )
            if cursor.fetchone() is None:
                return StatusApplied(message)
        fields = ["updated_at"]
        if status in (MessageStatus.DELIVERED, MessageStatus.READ) and not message.delivered_at:
            message.delivered_at = occurred_at  # read implies delivered
            fields.append("delivered_at")
        if status == MessageStatus.READ and not message.read_at:
            message.read_at = occurred_at
            fields.append("read_at")
        if STATUS_RANK[status] <= STATUS_RANK[message.status]:
            if len(fields) > 1:
                message.save(update_fields=fields)
            return StatusApplied(message, recorded=True)
        message.status = status
        fields.append("status")
        if status == MessageStatus.FAILED:
            message.failed_at = occurred_at
            message.error_code, message.error_reason = error_code, error_reason
            message.next_attempt_at = None
            fields += ["failed_at", "error_code", "error_reason", "next_attempt_at"]
        message.save(update_fields=fields)
        event_type = _STATUS_EVENTS.get(status)
        if event_type:
            emit(
                organization=organization,
                type=event_type,
                subject_type="message",
                subject_id=message.id,
                data=message_event_data(message, provider=provider),
            )
        return StatusApplied(message, recorded=True, moved=True)


# --- sending --------------------------------------------------------------------------------


@dataclass
class SendPlan:
    """What `message_send` decided: where the message goes and how."""

    channel: str
    channel_connection: object
    to: str
    template: object | None = None


def message_send(
    *,
    organization,
    contact,
    text: str = "",
    channel: str | None = None,
    channel_connection=None,
    purpose: str | None = None,
    template: str | None = None,
    template_variables: list | None = None,
    subject: str = "",
    sender_kind: str = SenderKind.AGENT,
    sender_user=None,
    now: datetime | None = None,
) -> Message:
    """Queue an outbound message: THE send service for every channel.

    In the caller's transaction: checks that sending is allowed (a channel connection for the
    channel, an address, consent, the WhatsApp 24-hour window — outside it an approved
    template for `purpose` is used), writes the message as `queued` and threads it; after
    commit a task on the `sends` queue calls the provider (`sent` or `failed` follow, with
    events). Raises `Unprocessable` (codes `opted_out`, `no_channel`, `no_address`,
    `whatsapp_window_closed`, `unknown_template`) when the send is not allowed; nothing is
    written then. Not idempotent (the API makes it so with Idempotency-Key).
    """
    from apps.core.tasks import enqueue_on_commit
    from apps.providers import selectors as provider_selectors
    from apps.providers.tasks import message_deliver

    now = now or timezone.now()
    text = clean_text(text)
    if not text.strip() and not template and not purpose:
        raise ValidationFailed("text: This field may not be blank.", details={"text": ["blank"]})
    if contact.organization_id != organization.pk:
        raise ValidationFailed("The contact belongs to another organization.")
    # Every check (reads only) comes before the writes: a refusal leaves the caller's
    # transaction usable.
    conversation = selectors.conversation_get_for_contact(
        organization=organization, contact_id=contact.pk
    )
    plan = provider_selectors.send_plan(
        organization=organization,
        contact=contact,
        conversation=conversation,
        channel=channel,
        channel_connection=channel_connection,
    )
    if provider_selectors.contact_opted_out(contact=contact, channel=plan.channel):
        raise Unprocessable(
            f"The contact opted out of {plan.channel} messages; nothing was sent.",
            code="opted_out",
            details={"channel": plan.channel},
        )
    raw: dict = {"to": plan.to}
    template_row = None
    if plan.channel == Channel.WHATSAPP and (
        template
        or not selectors.whatsapp_window_open(
            organization=organization, conversation=conversation, now=now
        )
    ):
        template_row = provider_selectors.whatsapp_template(
            organization=organization, purpose=purpose, name=template
        )
        if template_row is None:
            if template:
                raise Unprocessable(
                    f"No approved WhatsApp template named {template!r}.",
                    code="unknown_template",
                    details={"template": template},
                )
            raise Unprocessable(
                "The WhatsApp 24-hour window is closed (the contact has not written in the "
                "last 24 hours) and no approved template is configured"
                + (f" for purpose {purpose!r}." if purpose else "; pass a purpose."),
                code="whatsapp_window_closed",
                details={"purpose": purpose},
            )
        variables = [str(v) for v in (template_variables or [])]
        raw["template"] = {
            "name": template_row.name,
            "language": template_row.language,
            "variables": variables,
        }
        text = text or _render_template(template_row.body, variables)
    if not text.strip():
        raise ValidationFailed("text: This field may not be blank.", details={"text": ["blank"]})
    enforce = sender_kind != SenderKind.SYSTEM  # system sends (HELP replies) are never refused
    limit_check(organization=organization, limit="outbound_messages_per_day", enforce=enforce)
    with transaction.atomic(savepoint=False):
        if conversation is None:
            conversation = conversation_for_contact(
                organization=organization,
                contact=contact,
                channel=plan.channel,
                channel_connection_id=plan.channel_connection.pk,
            )
        message = Message.objects.create(
            organization=organization,
            conversation=conversation,
            contact=contact,
            direction=Direction.OUTBOUND,
            channel=plan.channel,
            channel_connection=plan.channel_connection,
            sender_kind=sender_kind,
            sender_user=sender_user,
            text=text,
            subject=clean_text(subject, 255),
            status=MessageStatus.QUEUED,
            template_name=template_row.name if template_row else "",
            next_attempt_at=now,
            trace_id=tracing.current_trace_id(),
            raw=raw,
        )
        updates = {
            "last_message_at": now,
            "last_message_preview": _preview(text, subject),
            "updated_at": now,
        }
        if sender_kind in _ANSWERING:
            updates["waiting_since"] = None
            if conversation.first_response_at is None:
                updates["first_response_at"] = now
        Conversation.objects.filter(pk=conversation.pk).update(**updates)
        enqueue_on_commit(message_deliver, str(message.id))
        return message


def _render_template(body: str, variables: list[str]) -> str:
    for index, value in enumerate(variables, start=1):
        body = body.replace("{{" + str(index) + "}}", value)
    return body


_CLAIM_SQL = f"""
UPDATE {_MESSAGE}
SET status = 'sending', send_attempts = send_attempts + 1, next_attempt_at = %s, updated_at = %s
WHERE id = %s AND direction = 'out' AND status = 'queued'
  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
RETURNING id
"""  # noqa: S608 - table name is our own model's


def message_claim_for_send(*, message_id, lease: timedelta, now: datetime | None = None) -> bool:
    """Atomically take a due queued message for one send attempt (status `sending`).

    The lease (`next_attempt_at`) lets the sweeper recover a send whose worker died. Returns
    False when the message is not queued or not yet due (another worker has it, or it is
    done): callers then do nothing, so duplicate tasks never send twice concurrently.
    """
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [now + lease, now, message_id, now])
        return cursor.fetchone() is not None


def message_release(*, message: Message, at: datetime, count_attempt: bool = False) -> None:
    """Put a claimed message back to `queued` until `at` (rate limit: waiting is not failing)."""
    message.status = MessageStatus.QUEUED
    message.next_attempt_at = at
    fields = ["status", "next_attempt_at", "updated_at"]
    if not count_attempt:
        message.send_attempts = max(0, message.send_attempts - 1)
        fields.append("send_attempts")
    message.save(update_fields=fields)


def message_schedule_retry(*, message: Message, at: datetime, error_code: str, reason: str) -> None:
    """A transient provider error: back to `queued` until `at`, keeping the last error."""
    message.status = MessageStatus.QUEUED
    message.next_attempt_at = at
    message.error_code = clean_text(error_code, 32)
    message.error_reason = clean_text(reason, 300)
    message.save(
        update_fields=["status", "next_attempt_at", "error_code", "error_reason", "updated_at"]
    )


def message_mark_sent(
    *,
    organization,
    message: Message,
    provider_message_id: str | None,
    email_message_id: str = "",
    provider: str = "",
    response=None,
) -> Message:
    """The provider accepted the message: `sent` with its id (and the email's Message-ID,
    which replies quote in In-Reply-To), then `message.sent`."""
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        message.provider_message_id = clean_text(provider_message_id, 255) or None
        message.sent_at = now
        message.error_code = message.error_reason = ""
        message.raw = {**(message.raw or {}), "response": clean_json(response)}
        if message.channel == Channel.EMAIL:
            message.email_message_id = clean_text(
                (email_message_id or provider_message_id or "").strip("<>"), 255
            )
        message.save(
            update_fields=[
                "provider_message_id",
                "sent_at",
                "error_code",
                "error_reason",
                "raw",
                "email_message_id",
                "updated_at",
            ]
        )
        message_apply_status(
            organization=organization,
            message_id=message.id,
            status=MessageStatus.SENT,
            occurred_at=now,
            provider=provider,
        )
        Message.objects.filter(pk=message.pk).update(next_attempt_at=None)
        message.refresh_from_db()
        return message


def message_mark_failed(
    *,
    organization,
    message: Message,
    error_code: str,
    reason: str,
    provider: str = "",
    response=None,
) -> Message:
    """A final failure: `failed` with the mapped reason and `message.failed`."""
    with transaction.atomic(savepoint=False):
        if response is not None:
            Message.objects.filter(pk=message.pk).update(
                raw={**(message.raw or {}), "response": clean_json(response)}
            )
        message_apply_status(
            organization=organization,
            message_id=message.id,
            status=MessageStatus.FAILED,
            error_code=error_code,
            error_reason=reason,
            provider=provider,
        )
        message.refresh_from_db()
        return message


def message_send_retry(*, organization, message: Message) -> Message:
    """Replay a failed outbound message (an operator's decision): queued again, now."""
    from apps.core.tasks import enqueue_on_commit
    from apps.providers.tasks import message_deliver

    if message.direction != Direction.OUTBOUND or message.status != MessageStatus.FAILED:
        raise Unprocessable("Only failed outbound messages can be retried.", code="not_failed")
    with transaction.atomic(savepoint=False):
        MessageStatusUpdate.objects.filter(message=message).exclude(
            status=MessageStatus.QUEUED
        ).delete()
        message.status = MessageStatus.QUEUED
        message.send_attempts = 0
        message.next_attempt_at = timezone.now()
        message.error_code = message.error_reason = ""
        message.failed_at = None
        message.save(
            update_fields=[
                "status",
                "send_attempts",
                "next_attempt_at",
                "error_code",
                "error_reason",
                "failed_at",
                "updated_at",
            ]
        )
        enqueue_on_commit(message_deliver, str(message.id))
        return message
