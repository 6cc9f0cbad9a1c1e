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
