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
from datetime import UTC, datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.conversations import selectors
from apps.conversations.models import (
    DEFAULT_FIRST_RESPONSE_MINUTES,
    DEFAULT_NEXT_RESPONSE_MINUTES,
    STATUS_RANK,
    ActivityKind,
    ActorKind,
    Attachment,
    AttachmentStatus,
    AutoAssign,
    BreachAction,
    Conversation,
    ConversationActivity,
    ConversationStatus,
    Direction,
    EscalationTarget,
    InboxSettings,
    Message,
    MessageStatus,
    MessageStatusUpdate,
    Priority,
    ReadState,
    SenderKind,
    SlaBreach,
    SlaKind,
)
from apps.conversations.sql import fetch_prepared
from apps.core import tracing
from apps.core.choices import Channel
from apps.core.errors import NotFound, Unprocessable, ValidationFailed
from apps.core.ids import uuid7
from apps.core.text import storable
from apps.events.services import emit
from apps.revenue.limits import limit_check
from apps.tenancy.roles import SUPERVISORS, WORKERS

logger = logging.getLogger(__name__)

_CONVERSATION = Conversation._meta.db_table
_MESSAGE = Message._meta.db_table
_STATUS_UPDATE = MessageStatusUpdate._meta.db_table
_CONTACT = "crm_contact"

# Senders whose message answers the contact (clears waiting_since; sets first_response_at).
_ANSWERING = {SenderKind.OPERATOR, SenderKind.AGENT}


def clean_text(value, limit: int | None = None) -> str:
    """A string PostgreSQL accepts (see `storable`: no NUL, no lone surrogate), cut to
    `limit` characters."""
    if value is None:
        return ""
    text = storable(str(value))
    return text[:limit] if limit else text


EARLIEST_SENT_AT = datetime(2000, 1, 1, tzinfo=UTC)
SENT_AT_LEEWAY = timedelta(days=1)


def plausible_sent_at(sent_at: datetime | None, now: datetime) -> datetime | None:
    """The sender's timestamp when it can be one, else None (the raw payload keeps it).

    A naive time is taken as UTC (comparing it with aware times would fail). One before
    2000 or more than a day ahead is a sender's bug — and at the edges of the calendar it
    would not even survive the round trip through PostgreSQL (year 1 at +14:00 is stored
    as 1 BC and cannot be read back).
    """
    if sent_at is None:
        return None
    if timezone.is_naive(sent_at):
        sent_at = sent_at.replace(tzinfo=UTC)
    try:
        if EARLIEST_SENT_AT <= sent_at <= now + SENT_AT_LEEWAY:
            return sent_at
    except OverflowError:
        pass
    return None


def clean_json(value):
    """`value` with every string made `storable` (jsonb rejects \\u0000 and lone surrogates)."""
    if isinstance(value, str):
        return storable(value)
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
# status), and the contact's last activity. `FOR NO KEY UPDATE`: no key column changes, and
# the lock must not block other transactions' foreign-key checks on the conversation (at their
# COMMIT, while this one waits for the organization's event counter: a deadlock).
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
        last_inbound_received_at = %(now)s,
        waiting_since = COALESCE(c.waiting_since, %(now)s),
        status = CASE WHEN o.status IN ('resolved', 'snoozed') THEN 'open' ELSE o.status END,
        snoozed_until = CASE WHEN o.status = 'snoozed' THEN NULL ELSE c.snoozed_until END,
        resolved_at = CASE WHEN o.status = 'resolved' THEN NULL ELSE c.resolved_at END,
        updated_at = %(now)s
    FROM (SELECT id, status FROM {_CONVERSATION} WHERE id = %(conversation)s FOR NO KEY UPDATE) AS o
    WHERE c.id = o.id AND EXISTS (SELECT 1 FROM m)
    RETURNING o.status, c.assignee_id
), k AS (
    UPDATE {_CONTACT} SET last_activity_at = %(now)s
    WHERE id = %(contact)s AND EXISTS (SELECT 1 FROM m)
    RETURNING 1
)
SELECT (SELECT id FROM m), (SELECT status FROM v), (SELECT assignee_id FROM v),
       (SELECT count(*) FROM k)
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
    The inbox's part, after commit: a task escalates the conversation when the contact asks
    for a person, or auto-assigns it while it is unassigned (`_inbox_after_inbound`).
    """
    now = now or timezone.now()
    sent_at = plausible_sent_at(sent_at, now)
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
        inserted, old_status, assignee_id, _ = fetch_prepared(
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
        _inbox_after_inbound(
            conversation_id=conversation_id,
            message_id=message_id,
            text=text,
            assigned=assignee_id is not None,
        )
        return RecordedInbound(
            message_id,
            conversation_id,
            contact_id,
            reopened_from=reopened_from,
            attachment_ids=[a.id for a in attachment_rows if a.status == AttachmentStatus.PENDING],
        )


def _inbox_after_inbound(*, conversation_id, message_id, text: str, assigned: bool) -> None:
    """The inbox's part of ingress, kept off the hot path: after commit, a task escalates the
    conversation when the contact asks for a person, or auto-assigns an unassigned one.
    Costs one regex here; after commit, an escalation is a Celery publish and an
    auto-assignment a coalesced job (one Redis round trip with the transaction's others)."""
    from apps.conversations import handoff, tasks
    from apps.core import coalesce
    from apps.core.tasks import enqueue_on_commit

    if handoff.asks_for_human(text):
        enqueue_on_commit(
            tasks.conversation_customer_escalate, str(conversation_id), str(message_id)
        )
    elif not assigned:
        coalesce.enqueue_on_commit("conversations.auto_assign", conversation_id)


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
        queryset = Message.objects.select_for_update(no_key=True).filter(organization=organization)
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


# --- the inbox: assignment, status, hand-over, escalation, read state ---------------------------
#
# Every action locks the conversation row (`SELECT ... FOR NO KEY UPDATE`) and writes the change, its
# audit row (`ConversationActivity`) and its event in one transaction. Actions that choose an
# assignee by round robin lock the organization's `InboxSettings` row FIRST (then the
# conversation): that serializes auto-assignment per organization, so two concurrent
# assignments can never push a member over capacity, and keeps one lock order everywhere.

_OPEN_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)
_PRIORITY_RANK = {p: i for i, p in enumerate(Priority.values)}
_SETTINGS = InboxSettings._meta.db_table
_READ_STATE = ReadState._meta.db_table
_MEMBERSHIP = "tenancy_membership"
_USER = "tenancy_user"

_SETTINGS_ENSURE = f"""
INSERT INTO {_SETTINGS}
    (id, organization_id, created_at, updated_at, auto_assign, first_response_minutes,
     next_response_minutes, reassign_on_breach, escalate_to, escalation_user_id,
     round_robin_last_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, true, %s, NULL, NULL)
ON CONFLICT (organization_id) DO NOTHING
"""  # noqa: S608 - table name is our own model's


def inbox_settings_get(*, organization) -> InboxSettings:
    """The organization's inbox settings (an unsaved row with the defaults when it has none)."""
    found = InboxSettings.objects.filter(organization=organization).first()
    return found or InboxSettings(organization=organization)


def _settings_locked(organization) -> InboxSettings:
    """The organization's settings row, created when missing, locked until commit."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _SETTINGS_ENSURE,
            [
                uuid7(),
                organization.pk,
                now,
                now,
                AutoAssign.ALL,
                DEFAULT_FIRST_RESPONSE_MINUTES,
                DEFAULT_NEXT_RESPONSE_MINUTES,
                EscalationTarget.SUPERVISORS,
            ],
        )
    return InboxSettings.objects.select_for_update().get(organization=organization)


def inbox_settings_update(*, organization, **values) -> InboxSettings:
    """Change the organization's inbox settings (the admin form's save). Validates the
    escalation person is a supervisor of the organization."""
    allowed = {
        "auto_assign",
        "first_response_minutes",
        "next_response_minutes",
        "reassign_on_breach",
        "escalate_to",
        "escalation_user",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValidationFailed(f"Unknown inbox setting(s): {', '.join(sorted(unknown))}.")
    user = values.get("escalation_user")
    if user is not None and not is_member(organization, user.pk, SUPERVISORS):
        raise ValidationFailed(
            "escalation_user: must be a moderator or admin of the organization.",
            details={"escalation_user": ["not a supervisor"]},
        )
    with transaction.atomic():
        settings_row = _settings_locked(organization)
        for name, value in values.items():
            setattr(settings_row, name, value)
        settings_row.save()
    if settings_row.auto_assign != AutoAssign.OFF:
        from apps.conversations.tasks import inbox_assign_backlog as backlog_task
        from apps.core.tasks import enqueue_on_commit

        enqueue_on_commit(backlog_task, str(organization.pk))
    return settings_row


@dataclass
class MemberLoad:
    """A member who can work conversations, with their current open load."""

    user_id: object
    role: str
    available: bool
    capacity: int
    open: int

    @property
    def has_room(self) -> bool:
        return self.available and self.open < self.capacity


_LOADS_SQL = f"""
SELECT m.user_id, m.role, m.is_available, m.max_open_conversations,
       (SELECT count(*) FROM {_CONVERSATION} c
         WHERE c.organization_id = m.organization_id AND c.assignee_id = m.user_id
           AND c.status IN ('open', 'pending'))
FROM {_MEMBERSHIP} m JOIN {_USER} u ON u.id = m.user_id
WHERE m.organization_id = %s AND m.role = ANY(%s) AND u.is_active
ORDER BY m.user_id
"""  # noqa: S608 - table names are our own models'


def member_loads(*, organization, roles=WORKERS) -> list[MemberLoad]:
    """Members with one of `roles` (active users), ordered by user id, with how many open or
    pending conversations each is assigned. One query."""
    with connection.cursor() as cursor:
        cursor.execute(_LOADS_SQL, [organization.pk, sorted(roles)])
        return [MemberLoad(*row) for row in cursor.fetchall()]


def _round_robin_pick(loads: list[MemberLoad], last_user_id, exclude=()) -> MemberLoad | None:
    """The next member after `last_user_id` (by user id, wrapping) who is available and under
    capacity, skipping `exclude`."""
    eligible = [m for m in loads if m.has_room and m.user_id not in exclude]
    if not eligible:
        return None
    if last_user_id is not None:
        after = [m for m in eligible if m.user_id.int > last_user_id.int]
        if after:
            return after[0]
    return eligible[0]


def is_member(organization, user_id, roles=WORKERS) -> bool:
    """Is `user_id` an active member of `organization` with one of `roles`?"""
    from apps.tenancy.models import Membership

    return Membership.objects.filter(
        organization=organization, user_id=user_id, role__in=roles, user__is_active=True
    ).exists()


def _locked(organization, conversation) -> Conversation:
    conversation_id = getattr(conversation, "pk", conversation)
    locked = (
        Conversation.objects.select_for_update(no_key=True, of=("self",))
        .select_related("contact")
        .filter(organization=organization, pk=conversation_id)
        .first()
    )
    if locked is None:
        raise NotFound("Conversation not found.")
    locked.organization = organization
    return locked


def _activity(
    conversation: Conversation,
    kind: str,
    *,
    actor=None,
    actor_kind: str | None = None,
    from_value="",
    to_value="",
    detail: str = "",
    now: datetime | None = None,
) -> ConversationActivity:
    activity = ConversationActivity(
        organization_id=conversation.organization_id,
        conversation=conversation,
        kind=kind,
        actor=actor,
        actor_kind=actor_kind or (ActorKind.OPERATOR if actor is not None else ActorKind.SYSTEM),
        from_value=clean_text(from_value or "", 200),
        to_value=clean_text(to_value or "", 200),
        detail=clean_text(detail, 300),
    )
    if now is not None:
        activity.created_at = now
    activity.save(force_insert=True)
    return activity


def _conversation_event(conversation: Conversation, type_: str, **data) -> None:
    """Emit a `conversation.*` event; the conversation carries its organization (attached by
    the action that locked it, so this costs no query)."""
    emit(
        organization=conversation.organization,
        type=type_,
        subject_type="conversation",
        subject_id=conversation.id,
        data={
            "conversation_id": str(conversation.id),
            "contact_id": str(conversation.contact_id),
            "status": conversation.status,
            **data,
        },
    )


def _assign(
    conversation: Conversation,
    user_id,
    *,
    actor=None,
    actor_kind: str | None = None,
    reason: str,
    now: datetime,
) -> bool:
    """Set the assignee of a LOCKED conversation; audit row and `conversation.assigned`.
    False (nothing written) when it already has that assignee."""
    previous = conversation.assignee_id
    if previous == user_id:
        return False
    conversation.assignee_id = user_id
    conversation.assigned_at = now if user_id is not None else None
    Conversation.objects.filter(pk=conversation.pk).update(
        assignee_id=user_id, assigned_at=conversation.assigned_at, updated_at=now
    )
    _activity(
        conversation,
        ActivityKind.ASSIGNED if user_id is not None else ActivityKind.UNASSIGNED,
        actor=actor,
        actor_kind=actor_kind,
        from_value=str(previous or ""),
        to_value=str(user_id or ""),
        detail=reason,
        now=now,
    )
    _conversation_event(
        conversation,
        "conversation.assigned",
        assignee_id=str(user_id) if user_id else None,
        from_assignee_id=str(previous) if previous else None,
        reason=reason,
    )
    return True


def _release_capacity(organization_id) -> None:
    """A member's load went down: let the backlog sweep use the room at once (after commit)."""
    from apps.conversations.tasks import inbox_assign_backlog as backlog_task
    from apps.core.tasks import enqueue_on_commit

    enqueue_on_commit(backlog_task, str(organization_id))


def conversation_assign(
    *, organization, conversation, assignee, actor=None, reason: str = "", now=None
) -> Conversation:
    """Assign (or with `assignee=None` unassign) a conversation by hand; reassigning is the
    same call. The assignee must be an active member with a working role (admin, moderator,
    operator); capacity is not enforced for a person's own choice. Idempotent: the same
    assignee again writes nothing and emits nothing."""
    now = now or timezone.now()
    assignee_id = getattr(assignee, "pk", assignee)
    if assignee_id is not None and not is_member(organization, assignee_id):
        raise ValidationFailed(
            "assignee: not a member of this organization who can work conversations.",
            code="invalid_assignee",
            details={"assignee": ["not a working member"]},
        )
    with transaction.atomic():
        locked = _locked(organization, conversation)
        previous = locked.assignee_id
        default = "unassigned" if assignee_id is None else "assigned by hand"
        changed = _assign(locked, assignee_id, actor=actor, reason=reason or default, now=now)
        if changed and previous is not None:
            _release_capacity(organization.pk)
        return locked


def conversation_auto_assign(*, organization, conversation_id, now=None) -> object | None:
    """Auto-assign one open, unassigned conversation by round robin among available members
    under capacity, when the organization's settings say so. Returns the new assignee's id,
    or None (already assigned, not open, auto-assignment off, nobody has room: the backlog
    sweep retries). Race-safe and idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        settings_row = _settings_locked(organization)
        if settings_row.auto_assign == AutoAssign.OFF:
            return None
        locked = (
            Conversation.objects.select_for_update(no_key=True)
            .filter(organization=organization, pk=conversation_id)
            .first()
        )
        if locked is None or locked.assignee_id is not None or locked.status != "open":
            return None
        locked.organization = organization
        if settings_row.auto_assign == AutoAssign.HANDED_OVER and locked.agent_active:
            return None
        pick = _round_robin_pick(
            member_loads(organization=organization), settings_row.round_robin_last_id
        )
        if pick is None:
            return None
        _assign(locked, pick.user_id, reason="auto-assigned (round robin)", now=now)
        settings_row.round_robin_last_id = pick.user_id
        settings_row.save(update_fields=["round_robin_last", "updated_at"])
        return pick.user_id


def inbox_assign_backlog(*, organization, limit: int = 200, now=None) -> int:
    """The backlog sweep: assign unassigned open conversations, oldest waiting first (then the
    longest idle), by round robin while members have room. Returns how many were assigned.
    Conversations locked by someone else are skipped (the next sweep gets them)."""
    now = now or timezone.now()
    with transaction.atomic():
        settings_row = _settings_locked(organization)
        if settings_row.auto_assign == AutoAssign.OFF:
            return 0
        loads = member_loads(organization=organization)
        room = sum(max(0, m.capacity - m.open) for m in loads if m.available)
        if room <= 0:
            return 0
        backlog = Conversation.objects.filter(
            organization=organization, assignee__isnull=True, status=ConversationStatus.OPEN
        )
        if settings_row.auto_assign == AutoAssign.HANDED_OVER:
            backlog = backlog.filter(agent_active=False)
        backlog = backlog.select_for_update(no_key=True, skip_locked=True).order_by(
            F("waiting_since").asc(nulls_last=True), "last_message_at", "id"
        )[: min(limit, room)]
        last = settings_row.round_robin_last_id
        assigned = 0
        for conversation in backlog:
            conversation.organization = organization
            pick = _round_robin_pick(loads, last)
            if pick is None:
                break
            _assign(conversation, pick.user_id, reason="auto-assigned (backlog)", now=now)
            pick.open += 1
            last = pick.user_id
            assigned += 1
        if assigned:
            settings_row.round_robin_last_id = last
            settings_row.save(update_fields=["round_robin_last", "updated_at"])
        return assigned


_STATUS_ACTIVITY_DETAIL = {
    ConversationStatus.OPEN: "reopened",
    ConversationStatus.PENDING: "set to pending",
    ConversationStatus.RESOLVED: "resolved",
}


def _set_status(
    conversation: Conversation, status: str, *, actor, actor_kind=None, reason: str, now
) -> bool:
    previous = conversation.status
    if previous == status:
        return False
    conversation.status = status
    if status == ConversationStatus.RESOLVED:
        conversation.resolved_at = now
        conversation.waiting_since = None  # nothing left to answer: no response-time clock
        conversation.escalated_at = None
    else:
        conversation.resolved_at = None
    if status != ConversationStatus.SNOOZED:
        conversation.snoozed_until = None
    Conversation.objects.filter(pk=conversation.pk).update(
        status=status,
        resolved_at=conversation.resolved_at,
        waiting_since=conversation.waiting_since,
        escalated_at=conversation.escalated_at,
        snoozed_until=conversation.snoozed_until,
        updated_at=now,
    )
    detail = reason or _STATUS_ACTIVITY_DETAIL.get(status, status)
    if status == ConversationStatus.SNOOZED and conversation.snoozed_until:
        kind = ActivityKind.SNOOZED
    else:
        kind = ActivityKind.STATUS_CHANGED
    _activity(
        conversation,
        kind,
        actor=actor,
        actor_kind=actor_kind,
        from_value=previous,
        to_value=status,
        detail=detail,
        now=now,
    )
    _conversation_event(
        conversation, "conversation.status_changed", from_status=previous, reason=detail
    )
    if conversation.assignee_id and status in (
        ConversationStatus.RESOLVED,
        ConversationStatus.SNOOZED,
    ):
        _release_capacity(conversation.organization_id)
    return True


def conversation_set_status(
    *, organization, conversation, status: str, actor=None, reason: str = "", now=None
) -> Conversation:
    """Open, set pending, or resolve a conversation (snoozing is `conversation_snooze`).
    Resolving clears the waiting clock and the escalation flag. Emits
    `conversation.status_changed`. Idempotent (the same status writes nothing)."""
    allowed = (ConversationStatus.OPEN, ConversationStatus.PENDING, ConversationStatus.RESOLVED)
    if status not in allowed:
        raise ValidationFailed(
            f"status: must be one of {', '.join(allowed)} (use snooze to snooze).",
            details={"status": ["invalid"]},
        )
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(organization, conversation)
        _set_status(locked, status, actor=actor, reason=reason, now=now)
        return locked


MAX_SNOOZE = timedelta(days=90)


def conversation_snooze(
    *, organization, conversation, until: datetime, actor=None, now=None
) -> Conversation:
    """Snooze until `until` (in the future, at most 90 days): the beat job
    `conversations.wake-snoozed` reopens it then; a message from the contact reopens it
    earlier. Emits `conversation.status_changed`."""
    now = now or timezone.now()
    if until is None or timezone.is_naive(until):
        raise ValidationFailed(
            "until: a date and time is required.", details={"until": ["required"]}
        )
    if until <= now:
        raise ValidationFailed("until: must be in the future.", details={"until": ["in the past"]})
    if until - now > MAX_SNOOZE:
        raise ValidationFailed(
            "until: at most 90 days ahead.", details={"until": ["too far ahead"]}
        )
    with transaction.atomic():
        locked = _locked(organization, conversation)
        if locked.status == ConversationStatus.SNOOZED:
            locked.snoozed_until = until
            Conversation.objects.filter(pk=locked.pk).update(snoozed_until=until, updated_at=now)
            _activity(
                locked,
                ActivityKind.SNOOZED,
                actor=actor,
                from_value="snoozed",
                to_value="snoozed",
                detail=f"snoozed until {until.isoformat()}",
                now=now,
            )
            return locked
        locked.snoozed_until = until
        _set_status(
            locked,
            ConversationStatus.SNOOZED,
            actor=actor,
            reason=f"snoozed until {until.isoformat()}",
            now=now,
        )
        return locked


def conversations_wake_snoozed(*, now=None, limit: int = 500) -> int:
    """Beat job: reopen snoozed conversations whose time has come (`conversation.status_changed`
    with reason "snooze ended"). Idempotent; concurrent runs skip each other's rows."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Conversation.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
            .select_related("organization")
            .filter(status=ConversationStatus.SNOOZED, snoozed_until__lte=now)
            .order_by("snoozed_until")[:limit]
        )
        for conversation in due:
            _set_status(
                conversation,
                ConversationStatus.OPEN,
                actor=None,
                actor_kind=ActorKind.SYSTEM,
                reason="snooze ended",
                now=now,
            )
        return len(due)


def _pause_agent(conversation: Conversation, *, actor, detail: str, now) -> bool:
    if not conversation.agent_active:
        return False
    conversation.agent_active = False
    Conversation.objects.filter(pk=conversation.pk).update(agent_active=False, updated_at=now)
    _activity(conversation, ActivityKind.AGENT_PAUSED, actor=actor, detail=detail, now=now)
    return True


def conversation_reply(
    *,
    organization,
    conversation,
    user,
    text: str,
    channel: str | None = None,
    channel_connection=None,
    subject: str = "",
    now=None,
) -> Message:
    """An operator's reply, through `message_send` (the one send path: opt-out, WhatsApp
    window, queue on `sends`). A human reply pauses the AI agent on the conversation, counts
    as the answer (first response time, waiting clock), assigns an unassigned conversation
    to the replier, and marks it read for them. Raises `Unprocessable` (opted_out,
    whatsapp_window_closed, no_channel, no_address, ...) with nothing written."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(organization, conversation)
        message = message_send(
            organization=organization,
            contact=locked.contact,
            text=text,
            channel=channel or None,
            channel_connection=channel_connection,
            subject=subject,
            sender_kind=SenderKind.OPERATOR,
            sender_user=user,
            now=now,
        )
        _pause_agent(locked, actor=user, detail="a person replied", now=now)
        if locked.assignee_id is None and is_member(organization, user.pk):
            _assign(locked, user.pk, actor=user, reason="replied", now=now)
        conversation_mark_read(conversation=locked, user=user, now=now)
        return message


MAX_NOTE_LENGTH = 10_000


def conversation_note_add(*, organization, conversation, user, text: str) -> Message:
    """An internal note: stored in the timeline for the team, never sent, no event (message
    events go to n8n; notes must not leave the building)."""
    text = clean_text(text).strip()
    if not text:
        raise ValidationFailed("text: the note is empty.", details={"text": ["blank"]})
    if len(text) > MAX_NOTE_LENGTH:
        raise ValidationFailed(
            f"text: at most {MAX_NOTE_LENGTH} characters.", details={"text": ["too long"]}
        )
    with transaction.atomic():
        locked = _locked(organization, conversation)
        return Message.objects.create(
            organization=organization,
            conversation=locked,
            contact_id=locked.contact_id,
            direction=Direction.OUTBOUND,
            channel="",
            sender_kind=SenderKind.OPERATOR,
            sender_user=user,
            is_internal_note=True,
            text=text,
            status="",
            trace_id=tracing.current_trace_id(),
        )


def conversation_take_over(*, organization, conversation, user, now=None) -> Conversation:
    """A person takes the conversation from the AI agent: the agent stops answering and the
    conversation is assigned to them (when they are a working member: a superuser who is
    not stays out of the rotation). Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(organization, conversation)
        _pause_agent(locked, actor=user, detail="taken over", now=now)
        if locked.assignee_id != user.pk and is_member(organization, user.pk):
            _assign(locked, user.pk, actor=user, reason="took over from the AI agent", now=now)
        return locked


def conversation_hand_back(*, organization, conversation, user=None, now=None) -> Conversation:
    """Give the conversation back to the AI agent (it answers again; the escalation flag is
    cleared). The assignee stays, as the owner. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(organization, conversation)
        if locked.agent_active and locked.escalated_at is None:
            return locked
        locked.agent_active, locked.escalated_at = True, None
        Conversation.objects.filter(pk=locked.pk).update(
            agent_active=True, escalated_at=None, updated_at=now
        )
        _activity(locked, ActivityKind.AGENT_RESUMED, actor=user, detail="handed back", now=now)
        return locked


def _raise_priority(conversation: Conversation, priority: str, *, actor, now) -> None:
    if _PRIORITY_RANK.get(priority, -1) <= _PRIORITY_RANK.get(conversation.priority, 0):
        return
    previous, conversation.priority = conversation.priority, priority
    Conversation.objects.filter(pk=conversation.pk).update(priority=priority, updated_at=now)
    _activity(
        conversation,
        ActivityKind.PRIORITY_CHANGED,
        actor=actor,
        from_value=previous,
        to_value=priority,
        now=now,
    )


def escalation_target(*, organization, settings_row, loads: list[MemberLoad] | None = None):
    """Who receives escalations: the settings' named person when they are still a supervisor,
    else the least loaded moderator (available first), then admin; `escalate_to = admins`
    skips moderators. None when the organization has no supervisor."""
    from apps.tenancy.roles import Role

    roles = (
        [Role.ADMIN]
        if settings_row.escalate_to == EscalationTarget.ADMINS
        else [Role.MODERATOR, Role.ADMIN]
    )
    loads = (
        loads if loads is not None else member_loads(organization=organization, roles=SUPERVISORS)
    )
    supervisors = [m for m in loads if m.role in roles]
    if settings_row.escalate_to == EscalationTarget.USER and settings_row.escalation_user_id:
        named = next((m for m in supervisors if m.user_id == settings_row.escalation_user_id), None)
        if named is not None:
            return named
    if not supervisors:
        return None
    return min(
        supervisors, key=lambda m: (not m.available, roles.index(m.role), m.open, m.user_id.int)
    )


ESCALATION_SOURCES = ("agent", "customer", "operator", "sla")


def conversation_escalate(
    *,
    organization,
    conversation,
    reason: str,
    priority: str = Priority.NORMAL,
    source: str = "agent",
    actor=None,
    to_supervisor: bool = False,
    now=None,
) -> Conversation:
    """Hand the conversation to a person: the AI agent stops answering, `escalated_at` is
    set, the priority is raised (never lowered), a resolved / pending / snoozed conversation
    reopens, and `conversation.escalated` is emitted (`escalated_by`: agent, customer,
    operator). Who gets it: the current assignee keeps it; an unassigned one goes by round
    robin to an available member with room (unless auto-assignment is off), else — and
    always with `to_supervisor` — to the escalation target (a moderator or admin).

    Idempotent: a conversation already escalated and not yet handed back or resolved is
    returned unchanged, with no event. The decision engine's `escalate_to_human` action
    calls this."""
    now = now or timezone.now()
    source = source if source in ESCALATION_SOURCES else "agent"
    reason = clean_text(reason, 300) or "escalated"
    with transaction.atomic():
        settings_row = _settings_locked(organization)
        locked = _locked(organization, conversation)
        if locked.escalated_at is not None and not locked.agent_active:
            return locked
        _pause_agent(locked, actor=actor, detail=f"escalated: {reason}", now=now)
        locked.escalated_at = now
        Conversation.objects.filter(pk=locked.pk).update(escalated_at=now, updated_at=now)
        _raise_priority(locked, priority, actor=actor, now=now)
        if locked.status != ConversationStatus.OPEN:
            _set_status(locked, ConversationStatus.OPEN, actor=actor, reason="escalated", now=now)
        loads = member_loads(organization=organization)
        pick = None
        round_robin = settings_row.auto_assign != AutoAssign.OFF
        if not to_supervisor and locked.assignee_id is None and round_robin:
            pick = _round_robin_pick(loads, settings_row.round_robin_last_id)
            if pick is not None:
                settings_row.round_robin_last_id = pick.user_id
                settings_row.save(update_fields=["round_robin_last", "updated_at"])
        supervisor_ids = {m.user_id for m in loads if m.role in SUPERVISORS}
        needs_supervisor = to_supervisor or locked.assignee_id is None
        if pick is None and needs_supervisor and locked.assignee_id not in supervisor_ids:
            pick = escalation_target(
                organization=organization,
                settings_row=settings_row,
                loads=[m for m in loads if m.role in SUPERVISORS],
            )
        if pick is not None:
            _assign(locked, pick.user_id, actor=actor, reason=f"escalation: {reason}", now=now)
        _activity(
            locked,
            ActivityKind.ESCALATED,
            actor=actor,
            actor_kind=ActorKind.OPERATOR if actor is not None else source_actor_kind(source),
            to_value=str(locked.assignee_id or ""),
            detail=reason,
            now=now,
        )
        _conversation_event(
            locked,
            "conversation.escalated",
            reason=reason,
            priority=locked.priority,
            escalated_by=source,
            assignee_id=str(locked.assignee_id) if locked.assignee_id else None,
        )
        return locked


def source_actor_kind(source: str) -> str:
    return {
        "agent": ActorKind.AGENT,
        "customer": ActorKind.CONTACT,
        "operator": ActorKind.OPERATOR,
    }.get(source, ActorKind.SYSTEM)


# --- response-time limits (SLA) -----------------------------------------------------------------

_SLA_DUE_SQL = f"""
SELECT c.id, c.organization_id, c.waiting_since,
       CASE WHEN c.first_response_at IS NULL THEN 'first_response' ELSE 'next_response' END,
       CASE WHEN c.first_response_at IS NULL
            THEN CASE WHEN s.id IS NULL THEN %(first)s ELSE s.first_response_minutes END
            ELSE CASE WHEN s.id IS NULL THEN %(next)s ELSE s.next_response_minutes END END
FROM {_CONVERSATION} c
LEFT JOIN {_SETTINGS} s ON s.organization_id = c.organization_id
WHERE c.status = 'open' AND c.waiting_since IS NOT NULL
  AND c.waiting_since < %(now)s - make_interval(mins => CASE WHEN c.first_response_at IS NULL
            THEN CASE WHEN s.id IS NULL THEN %(first)s ELSE s.first_response_minutes END
            ELSE CASE WHEN s.id IS NULL THEN %(next)s ELSE s.next_response_minutes END END)
  AND NOT EXISTS (SELECT 1 FROM {SlaBreach._meta.db_table} b
                  WHERE b.conversation_id = c.id AND b.waiting_since = c.waiting_since)
ORDER BY c.waiting_since
LIMIT %(limit)s
"""  # noqa: S608 - table names are our own models'


@dataclass(frozen=True)
class DueBreach:
    conversation_id: object
    organization_id: object
    waiting_since: datetime
    kind: str
    limit_minutes: int


def sla_due_breaches(*, now=None, limit: int = 500) -> list[DueBreach]:
    """Open conversations waiting longer than their organization's first- or next-response
    limit whose breach was not handled yet, oldest first (organizations without settings use
    the defaults; an empty limit means none). One query."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _SLA_DUE_SQL,
            {
                "now": now,
                "first": DEFAULT_FIRST_RESPONSE_MINUTES,
                "next": DEFAULT_NEXT_RESPONSE_MINUTES,
                "limit": limit,
            },
        )
        return [DueBreach(*row) for row in cursor.fetchall()]


_BREACH_INSERT = f"""
INSERT INTO {SlaBreach._meta.db_table}
    (id, organization_id, created_at, updated_at, conversation_id, kind, waiting_since,
     limit_minutes, action, assignee_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL)
ON CONFLICT (conversation_id, kind, waiting_since) DO NOTHING
RETURNING id
"""  # noqa: S608 - table name is our own model's


def conversation_sla_breach(*, organization, breach: DueBreach, now=None) -> SlaBreach | None:
    """Handle one response-time breach, exactly once (the `SlaBreach` row is the proof): the
    conversation is flagged (escalated_at, priority at least high) and handed to another
    available member with room (`reassign_on_breach`), else to the escalation target (a
    moderator / admin); `conversation.escalated` (escalated_by `sla`) and, when the assignee
    changes, `conversation.assigned`. Returns None when it was already handled or no longer
    applies (answered, resolved, snoozed meanwhile). The AI agent is not paused: it may
    still answer."""
    now = now or timezone.now()
    with transaction.atomic():
        settings_row = _settings_locked(organization)
        locked = (
            Conversation.objects.select_for_update(no_key=True)
            .filter(organization=organization, pk=breach.conversation_id)
            .first()
        )
        if (
            locked is None
            or locked.status != ConversationStatus.OPEN
            or locked.waiting_since != breach.waiting_since
        ):
            return None
        locked.organization = organization
        with connection.cursor() as cursor:
            cursor.execute(
                _BREACH_INSERT,
                [
                    uuid7(),
                    organization.pk,
                    now,
                    now,
                    locked.pk,
                    breach.kind,
                    breach.waiting_since,
                    breach.limit_minutes,
                    BreachAction.FLAGGED,
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        loads = member_loads(organization=organization)
        current = locked.assignee_id
        action, pick = BreachAction.FLAGGED, None
        if settings_row.reassign_on_breach and settings_row.auto_assign != AutoAssign.OFF:
            pick = _round_robin_pick(loads, settings_row.round_robin_last_id, exclude={current})
            if pick is not None:
                action = BreachAction.REASSIGNED if current else BreachAction.ASSIGNED
                settings_row.round_robin_last_id = pick.user_id
                settings_row.save(update_fields=["round_robin_last", "updated_at"])
        if pick is None:
            pick = escalation_target(
                organization=organization,
                settings_row=settings_row,
                loads=[m for m in loads if m.role in SUPERVISORS],
            )
            if pick is not None:
                action = BreachAction.ESCALATED
        label = SlaKind(breach.kind).label.lower()
        reason = f"{label} time of {breach.limit_minutes} min exceeded"
        locked.escalated_at = now
        Conversation.objects.filter(pk=locked.pk).update(escalated_at=now, updated_at=now)
        _raise_priority(locked, Priority.HIGH, actor=None, now=now)
        _activity(
            locked,
            ActivityKind.SLA_BREACHED,
            from_value=str(current or ""),
            to_value=str(pick.user_id if pick else current or ""),
            detail=f"{reason}; {BreachAction(action).label.lower()}",
            now=now,
        )
        if pick is not None:
            _assign(locked, pick.user_id, reason=f"SLA: {reason}", now=now)
        _conversation_event(
            locked,
            "conversation.escalated",
            reason=reason,
            priority=locked.priority,
            escalated_by="sla",
            sla=breach.kind,
            action=action,
            assignee_id=str(locked.assignee_id) if locked.assignee_id else None,
        )
        SlaBreach.objects.filter(pk=row[0]).update(action=action, assignee_id=locked.assignee_id)
        return SlaBreach.objects.get(pk=row[0])


# --- read state ---------------------------------------------------------------------------------

_READ_UPSERT = f"""
INSERT INTO {_READ_STATE} AS r
    (id, organization_id, created_at, updated_at, conversation_id, user_id, last_read_at,
     marked_unread)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (conversation_id, user_id) DO UPDATE SET
    last_read_at = CASE WHEN EXCLUDED.marked_unread THEN r.last_read_at
                        ELSE GREATEST(r.last_read_at, EXCLUDED.last_read_at) END,
    marked_unread = EXCLUDED.marked_unread,
    updated_at = EXCLUDED.updated_at
"""  # noqa: S608 - table name is our own model's


def _read_state_write(*, conversation, user, read_at, unread: bool, now) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _READ_UPSERT,
            [
                uuid7(),
                conversation.organization_id,
                now,
                now,
                conversation.pk,
                user.pk,
                read_at,
                unread,
            ],
        )


def conversation_mark_read(*, conversation, user, now=None) -> None:
    """Everything up to now is read by `user` (only them). One statement; idempotent."""
    now = now or timezone.now()
    _read_state_write(conversation=conversation, user=user, read_at=now, unread=False, now=now)


def conversation_mark_unread(*, conversation, user, now=None) -> None:
    """Show the conversation as unread to `user` until they open it again. Idempotent."""
    now = now or timezone.now()
    _read_state_write(conversation=conversation, user=user, read_at=None, unread=True, now=now)
