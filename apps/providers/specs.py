"""What each provider needs: config keys, default API base, send rate, channels it carries.

Send-rate defaults follow the providers' documented limits: Twilio 1 message/s per long code,
WhatsApp Cloud API 80 messages/s per business number, ManyChat 25 API requests/s, Mailgun a
conservative 10/s (its real limit depends on the account). `rate_per_second` in a channel's
config overrides the default (a Twilio short code or toll-free number sends faster).
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.choices import Channel, Provider

COMMON_OPTIONAL = ("rate_per_second", "timeout")


@dataclass(frozen=True)
class ProviderSpec:
    provider: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    default_api_base: str
    rate_per_second: float
    channels: tuple[str, ...]
    identifier_key: str  # the config key shown to operators as the channel's identifier

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.required + self.optional + COMMON_OPTIONAL


SPECS: dict[str, ProviderSpec] = {
    Provider.TWILIO: ProviderSpec(
        provider=Provider.TWILIO,
        required=("account_sid", "auth_token", "from_number"),
        optional=("messaging_service_sid", "whatsapp_from"),
        default_api_base="https://api.twilio.com",
        rate_per_second=1.0,
        channels=(Channel.SMS, Channel.WHATSAPP),
        identifier_key="from_number",
    ),
    Provider.WHATSAPP: ProviderSpec(
        provider=Provider.WHATSAPP,
        required=("phone_number_id", "access_token", "app_secret", "verify_token"),
        optional=("business_account_id", "graph_version"),
        default_api_base="https://graph.facebook.com",
        rate_per_second=80.0,
        channels=(Channel.WHATSAPP,),
        identifier_key="phone_number_id",
    ),
    Provider.MANYCHAT: ProviderSpec(
        provider=Provider.MANYCHAT,
        required=("api_key", "inbound_token"),
        optional=("content_type", "message_tag", "page_id"),
        default_api_base="https://api.manychat.com",
        rate_per_second=25.0,
        channels=(Channel.MANYCHAT,),
        identifier_key="page_id",
    ),
    Provider.MAILGUN: ProviderSpec(
        provider=Provider.MAILGUN,
        required=("signing_key", "domain", "api_key", "from_email"),
        optional=("from_name",),
        default_api_base="https://api.mailgun.net/v3",
        rate_per_second=10.0,
        channels=(Channel.EMAIL,),
        identifier_key="domain",
    ),
}

ORGANIZATION_RATE_PER_SECOND = 100.0
GRAPH_VERSION = "v25.0"


def hook_paths(provider: str, channel_id) -> tuple[str, str | None]:
    """(inbound path, status path or None) under the site root, per ARCHITECTURE.md."""
    inbound = f"/hooks/{provider}/{channel_id}/"
    if provider == Provider.TWILIO:
        return inbound, inbound + "status/"
    if provider == Provider.WHATSAPP:
        return inbound, inbound  # statuses arrive on the same webhook as messages
    if provider == Provider.MAILGUN:
        return inbound, inbound + "events/"
    return inbound, None
