"""Reads for channels: the webhook hot path's cached channel lookup, send planning, templates,
opt-out keywords."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from apps.core.choices import Channel, Provider
from apps.core.errors import Unprocessable
from apps.providers.models import ChannelConnection, ChannelStatus
from apps.providers.specs import SPECS, hook_paths

# --- the hook hot path: channel by id, decrypted config cached per process ------------------

CHANNEL_CACHE_SECONDS = 10.0
_channel_cache: dict[str, tuple[float, ChannelConnection | None]] = {}
_cache_lock = threading.Lock()


def hook_channel(*, channel_id, provider: str) -> ChannelConnection | None:
    """The active channel a webhook URL names, or None (unknown, other provider, disabled).

    Cached in-process for a few seconds with its organization and decrypted config, so a
    webhook costs no lookup and no decryption; `channel_cache_forget` drops an entry when a
    service changes the channel (other processes see the change within the cache period).
    """
    key = str(channel_id)
    now = time.monotonic()
    hit = _channel_cache.get(key)
    if hit is not None and hit[0] > now:
        channel = hit[1]
    else:
        channel = ChannelConnection.objects.select_related("organization").filter(pk=key).first()
        with _cache_lock:
            if len(_channel_cache) > 10_000:
                _channel_cache.clear()
            _channel_cache[key] = (now + CHANNEL_CACHE_SECONDS, channel)
    if channel is None or channel.provider != provider or channel.status == ChannelStatus.DISABLED:
        return None
    return channel


def channel_cache_forget(channel_id) -> None:
    with _cache_lock:
        _channel_cache.pop(str(channel_id), None)


def channel_urls(channel: ChannelConnection) -> tuple[str, str | None]:
    """(inbound_url, status_url) as given to the provider: PUBLIC_URL + the hook path."""
    inbound, status = hook_paths(channel.provider, channel.pk)
    base = settings.PUBLIC_URL.rstrip("/")
    return base + inbound, (base + status if status else None)


def channel_api_base(channel: ChannelConnection) -> str:
    return (channel.api_base or SPECS[channel.provider].default_api_base).rstrip("/")


def organization_channels(*, organization):
    return ChannelConnection.objects.for_organization(organization).order_by("provider", "name")


# --- send planning --------------------------------------------------------------------------

_CHANNEL_PROVIDERS = {
    Channel.SMS: (Provider.TWILIO,),
    Channel.WHATSAPP: (Provider.WHATSAPP, Provider.TWILIO),
    Channel.MANYCHAT: (Provider.MANYCHAT,),
    Channel.EMAIL: (Provider.MAILGUN,),
}


def _usable(connection: ChannelConnection | None, channel: str) -> bool:
    return (
        connection is not None
        and connection.status != ChannelStatus.DISABLED
        and channel in SPECS[connection.provider].channels
    )


def send_plan(*, organization, contact, conversation, channel=None, channel_connection=None):
    """Choose the channel, connection and address for a send, or raise Unprocessable.

    Without `channel`: the conversation's last inbound channel over its last connection.
    With `channel`: that connection when it carries the channel, else the organization's
    first active connection that does (WhatsApp Cloud before Twilio's WhatsApp).
    """
    from apps.conversations.services import SendPlan

    if channel is None and channel_connection is not None:
        channel = SPECS[channel_connection.provider].channels[0]
    if channel is None:
        if conversation is None or not conversation.last_inbound_channel:
            raise Unprocessable(
                "The contact has never written in: pass a channel to send on.",
                code="no_channel",
            )
        channel = conversation.last_inbound_channel
    if channel not in _CHANNEL_PROVIDERS:
        raise Unprocessable(
            f"Messages cannot be sent on the {channel!r} channel.",
            code="no_channel",
            details={"channel": channel},
        )
    connection = channel_connection
    if connection is None and conversation is not None:
        last = conversation.last_channel_connection
        if _usable(last, channel):
            connection = last
    if connection is None:
        candidates = [
            c
            for c in ChannelConnection.objects.for_organization(organization).exclude(
                status=ChannelStatus.DISABLED
            )
            if channel in SPECS[c.provider].channels
        ]
        order = _CHANNEL_PROVIDERS[channel]
        candidates.sort(key=lambda c: (order.index(c.provider), c.created_at))
        connection = candidates[0] if candidates else None
    if not _usable(connection, channel):
        raise Unprocessable(
            f"No active channel connection can send {channel} messages for this organization.",
            code="no_channel",
            details={"channel": channel},
        )
    to = contact_address(contact=contact, channel=channel, provider=connection.provider)
    return SendPlan(channel=channel, channel_connection=connection, to=to)


def contact_address(*, contact, channel: str, provider: str) -> str:
    """Where a provider sends to: E.164 phone, wa_id, ManyChat subscriber id or email."""
    from apps.crm.models import ContactIdentity, IdentityKind

    identities = dict(ContactIdentity.objects.filter(contact=contact).values_list("kind", "value"))
    address = None
    if channel == Channel.SMS:
        address = contact.phone or identities.get(IdentityKind.PHONE)
    elif channel == Channel.WHATSAPP:
        wa_id = identities.get(IdentityKind.WHATSAPP_ID)
        phone = contact.phone or identities.get(IdentityKind.PHONE)
        if provider == Provider.WHATSAPP:
            address = wa_id or (phone.lstrip("+") if phone else None)
        else:
            address = phone or (f"+{wa_id}" if wa_id else None)
    elif channel == Channel.MANYCHAT:
        address = identities.get(IdentityKind.MANYCHAT_ID)
    elif channel == Channel.EMAIL:
        address = contact.email or identities.get(IdentityKind.EMAIL)
    if not address:
        raise Unprocessable(
            f"The contact has no address for {channel} messages.",
            code="no_address",
            details={"channel": channel},
        )
    return address


def contact_opted_out(*, contact, channel: str) -> bool:
    from apps.crm.models import ConsentStatus, ContactConsent

    return ContactConsent.objects.filter(
        contact=contact, channel=channel, status=ConsentStatus.OPTED_OUT
    ).exists()


def whatsapp_template(*, organization, purpose: str | None, name: str | None = None):
    """An approved WhatsApp template by name or for the purpose (the organization's own
    first; see `apps.niches.selectors.platform_template_for`)."""
    from apps.niches.selectors import platform_template_for

    return platform_template_for(
        organization=organization, channel=Channel.WHATSAPP, purpose=purpose, name=name
    )


# --- opt-out keywords -----------------------------------------------------------------------

KEYWORD_CACHE_SECONDS = 60.0
_keyword_cache: dict[tuple, tuple[float, dict]] = {}


def opt_out_keywords(*, organization, channel: str) -> dict[str, frozenset[str]]:
    """The organization's {"stop", "start", "help"} keywords on `channel` (semantics:
    `apps.niches.selectors.opt_out_keywords`), memoized in the process for a minute so the
    ingress hot path does not read the niche context on every message."""
    from apps.niches.selectors import opt_out_keywords as niche_keywords

    key = (organization.pk, channel)
    now = time.monotonic()
    hit = _keyword_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    result = niche_keywords(organization=organization, channel=channel)
    _keyword_cache[key] = (now + KEYWORD_CACHE_SECONDS, result)
    return result


def keyword_cache_clear() -> None:
    _keyword_cache.clear()
