"""Conversations: one timeline per contact across every channel, its messages, and who read what."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.choices import Channel
from apps.core.models import TenantModel


class ConversationStatus(models.TextChoices):
    OPEN = "open", "Open"
    PENDING = "pending", "Pending"
    SNOOZED = "snoozed", "Snoozed"
    RESOLVED = "resolved", "Resolved"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Conversation(TenantModel):
    """The contact's single conversation. A new message reopens it when resolved or snoozed."""

    contact = models.OneToOneField(
        "crm.Contact", on_delete=models.CASCADE, related_name="conversation"
    )
    status = models.CharField(
        max_length=10, choices=ConversationStatus.choices, default=ConversationStatus.OPEN
    )
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    agent_active = models.BooleanField(
        default=True, help_text="The AI agent answers; off when a human has taken over."
    )
    last_inbound_channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    last_channel_connection = models.ForeignKey(
        "providers.ChannelConnection",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    last_inbound_at = models.DateTimeField(
        null=True, blank=True, help_text="Opens the WhatsApp 24-hour window."
    )
    waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="Oldest unanswered inbound message; empty when answered."
    )
    first_response_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    last_inbound_received_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When we received the contact's last message (server time): read state.",
    )

    class Meta:
        ordering = ["-last_message_at"]
        indexes = [
            models.Index(fields=["organization", "-last_message_at"], name="conv_org_activity"),
            models.Index(
                fields=["organization", "status", "-last_message_at"],
                name="conv_org_status_activity",
            ),
            models.Index(
                fields=["organization", "assignee", "-last_message_at"],
                name="conv_org_assignee_activity",
            ),
            models.Index(
                fields=["organization", "waiting_since"],
                name="conv_org_waiting",
                condition=Q(waiting_since__isnull=False),
            ),
            models.Index(
                fields=["snoozed_until"], name="conv_snoozed", condition=Q(status="snoozed")
            ),
            models.Index(
                fields=["organization", "waiting_since", "last_message_at"],
                name="conv_org_backlog",
                condition=Q(assignee__isnull=True, status="open"),
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation with {self.contact}"


class Direction(models.TextChoices):
    INBOUND = "in", "Inbound"
    OUTBOUND = "out", "Outbound"


class SenderKind(models.TextChoices):
    CONTACT = "contact", "Contact"
    OPERATOR = "operator", "Operator"
    AGENT = "agent", "AI agent"
    SYSTEM = "system", "System"


class MessageStatus(models.TextChoices):
    """Ordered: a status update never moves a message to a lower rank (see STATUS_RANK)."""

    RECEIVED = "received", "Received"
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed"


STATUS_RANK = {
    MessageStatus.RECEIVED: 0,
    MessageStatus.SCHEDULED: 1,
    MessageStatus.QUEUED: 2,
    MessageStatus.SENDING: 3,
    MessageStatus.SENT: 4,
    MessageStatus.DELIVERED: 5,
    MessageStatus.READ: 6,
    MessageStatus.FAILED: 7,
}


class Message(TenantModel):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    channel_connection = models.ForeignKey(
        "providers.ChannelConnection",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    provider_message_id = models.CharField(max_length=255, null=True, blank=True)
    sender_kind = models.CharField(max_length=10, choices=SenderKind.choices)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    is_internal_note = models.BooleanField(default=False)
    text = models.TextField(blank=True)
    subject = models.CharField(max_length=255, blank=True, help_text="Email subject.")
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    error_code = models.CharField(max_length=32, blank=True)
    error_reason = models.CharField(max_length=300, blank=True)
    template_name = models.CharField(
        max_length=100, blank=True, help_text="Provider template used, if any."
    )
    reply_to = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reply_to_provider_id = models.CharField(max_length=255, blank=True)
    email_message_id = models.CharField(
        max_length=255, blank=True, help_text="RFC 5322 Message-ID."
    )
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="Provider time the message was sent."
    )
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="Held until then (quiet hours)."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    raw = models.JSONField(null=True, blank=True, help_text="The provider payload, kept for audit.")

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_conv_time"),
            models.Index(
                fields=["organization", "email_message_id"],
                name="message_org_email_id",
                condition=~Q(email_message_id=""),
            ),
            models.Index(
                fields=["status", "next_attempt_at"],
                name="message_pending_send",
                condition=Q(status__in=["queued", "scheduled", "sending"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel_connection", "provider_message_id"],
                condition=Q(provider_message_id__isnull=False),
                name="message_provider_id_per_channel",
            )
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.channel}: {self.text[:40]}"


class AttachmentStatus(models.TextChoices):
    PENDING = "pending", "Pending download"
    STORED = "stored", "Stored"
    FAILED = "failed", "Download failed"


class Attachment(TenantModel):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    provider_url = models.TextField(blank=True)
    provider_media_id = models.CharField(max_length=255, blank=True)
    file = models.FileField(upload_to="attachments/%Y/%m/", blank=True)
    status = models.CharField(
        max_length=8, choices=AttachmentStatus.choices, default=AttachmentStatus.PENDING
    )
    error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return self.filename or self.provider_media_id or str(self.id)


class MessageStatusUpdate(TenantModel):
    """Each provider status report once (dedupe), kept as the message's delivery history."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="status_updates")
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    occurred_at = models.DateTimeField()
    error_code = models.CharField(max_length=32, blank=True)
    error_reason = models.CharField(max_length=300, blank=True)
    raw = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "status"], name="statusupdate_message_status"
            )
        ]

    def __str__(self) -> str:
        return f"{self.message_id}: {self.status}"


class ReadState(TenantModel):
    """Per operator: what they have read in a conversation."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="read_states"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_read_at = models.DateTimeField(null=True, blank=True)
    marked_unread = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="readstate_conv_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.conversation_id} at {self.last_read_at}"


# --- the inbox: settings, audit trail, SLA breaches ----------------------------------------------


class AutoAssign(models.TextChoices):
    OFF = "off", "Off (assign by hand)"
    HANDED_OVER = "handed_over", "Only conversations the AI agent handed over"
    ALL = "all", "Every open conversation"


class EscalationTarget(models.TextChoices):
    SUPERVISORS = "supervisors", "Moderators, then admins"
    ADMINS = "admins", "Admins"
    USER = "user", "A named person (below), else moderators and admins"


DEFAULT_FIRST_RESPONSE_MINUTES = 15
DEFAULT_NEXT_RESPONSE_MINUTES = 60


class InboxSettings(TenantModel):
    """How an organization's inbox assigns and escalates. One row per organization; an
    organization without a row works with the defaults."""

    auto_assign = models.CharField(
        max_length=12,
        choices=AutoAssign.choices,
        default=AutoAssign.ALL,
        help_text="Round robin among available members under their open-conversation capacity.",
    )
    first_response_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=DEFAULT_FIRST_RESPONSE_MINUTES,
        help_text="A new message must get its first answer within this time (empty: no limit).",
    )
    next_response_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=DEFAULT_NEXT_RESPONSE_MINUTES,
        help_text="Later messages must be answered within this time (empty: no limit).",
    )
    reassign_on_breach = models.BooleanField(
        default=True,
        help_text="On a breach, first hand the conversation to another available member; "
        "escalate only when nobody is.",
    )
    escalate_to = models.CharField(
        max_length=12, choices=EscalationTarget.choices, default=EscalationTarget.SUPERVISORS
    )
    escalation_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    round_robin_last = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="The member who got the last auto-assigned conversation (round-robin cursor).",
    )

    class Meta:
        verbose_name = "inbox settings"
        verbose_name_plural = "inbox settings"
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="inboxsettings_organization")
        ]

    def __str__(self) -> str:
        return f"Inbox settings of {self.organization_id}"


class ActivityKind(models.TextChoices):
    ASSIGNED = "assigned", "Assigned"
    UNASSIGNED = "unassigned", "Unassigned"
    STATUS_CHANGED = "status_changed", "Status changed"
    SNOOZED = "snoozed", "Snoozed"
    ESCALATED = "escalated", "Escalated"
    SLA_BREACHED = "sla_breached", "Response time exceeded"
    AGENT_PAUSED = "agent_paused", "A person took over from the AI agent"
    AGENT_RESUMED = "agent_resumed", "Handed back to the AI agent"
    PRIORITY_CHANGED = "priority_changed", "Priority changed"


class ActorKind(models.TextChoices):
    OPERATOR = "operator", "Operator"
    AGENT = "agent", "AI agent"
    CONTACT = "contact", "Contact"
    SYSTEM = "system", "System"


class ConversationActivity(TenantModel):
    """The audit trail of a conversation: who assigned it, changed its status, escalated it,
    took it over from the AI agent... Written in the same transaction as the change."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="activities"
    )
    kind = models.CharField(max_length=20, choices=ActivityKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_kind = models.CharField(
        max_length=10, choices=ActorKind.choices, default=ActorKind.SYSTEM
    )
    from_value = models.CharField(max_length=200, blank=True)
    to_value = models.CharField(max_length=200, blank=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "conversation activities"
        ordering = ["created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="activity_conv_time")]

    def __str__(self) -> str:
        return f"{self.conversation_id}: {self.kind}"


class SlaKind(models.TextChoices):
    FIRST_RESPONSE = "first_response", "First response"
    NEXT_RESPONSE = "next_response", "Next response"


class BreachAction(models.TextChoices):
    ASSIGNED = "assigned", "Assigned to an available member"
    REASSIGNED = "reassigned", "Reassigned to another member"
    ESCALATED = "escalated", "Escalated to a supervisor"
    FLAGGED = "flagged", "Flagged (nobody available)"


class SlaBreach(TenantModel):
    """A response-time limit that was exceeded, once per (conversation, kind, waiting period):
    the unique constraint makes the beat job handle each breach exactly once."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="sla_breaches"
    )
    kind = models.CharField(max_length=16, choices=SlaKind.choices)
    waiting_since = models.DateTimeField()
    limit_minutes = models.PositiveIntegerField()
    action = models.CharField(max_length=12, choices=BreachAction.choices)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = "SLA breach"
        verbose_name_plural = "SLA breaches"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "kind", "waiting_since"], name="slabreach_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} breach on {self.conversation_id}"
