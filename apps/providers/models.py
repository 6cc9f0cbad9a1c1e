"""Channel connections: an organization's account at a provider, used for inbound and sends."""

from django.db import models

from apps.conversations.models import Message
from apps.core.choices import Provider
from apps.core.crypto import EncryptedJSONField
from apps.core.models import TenantModel


class ChannelStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"
    ERROR = "error", "Error"


class ChannelConnection(TenantModel):
    """Provider credentials (encrypted at rest) and identifiers for one channel.

    `config` holds what `create_channel --config` received (e.g. twilio: account_sid,
    auth_token, from_number; whatsapp: phone_number_id, access_token, app_secret,
    verify_token; manychat: api_key, inbound_token; mailgun: signing_key, domain, api_key,
    from_email). `api_base` overrides the provider's API base URL (tests, regional hosts).
    """

    provider = models.CharField(max_length=16, choices=Provider.choices)
    name = models.CharField(max_length=100, blank=True)
    config = EncryptedJSONField()
    api_base = models.URLField(blank=True)
    identifier = models.CharField(
        max_length=255,
        blank=True,
        help_text="Public id shown to operators: the number, page or domain.",
    )
    status = models.CharField(
        max_length=10, choices=ChannelStatus.choices, default=ChannelStatus.ACTIVE
    )
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["provider", "name"]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.identifier or self.name}".strip()


class MessageDelivery(Message):
    """Outbound and inbound messages as seen by support: provider ids, statuses, attempts.

    A proxy of conversations.Message for the read-only delivery admin (the inbox is the
    conversations app's)."""

    class Meta:
        proxy = True
        verbose_name = "message delivery"
        verbose_name_plural = "message deliveries"
