"""Demo channels and a few inbound messages for `make run`. Idempotent.

The channels carry placeholder credentials: webhooks signed with them are accepted (try
the samples in docs/providers.md), sends fail with the provider's authentication error.
"""

from __future__ import annotations

from django.conf import settings

from apps.core.choices import Channel
from apps.crm.models import IdentityKind
from apps.providers.models import ChannelConnection
from apps.providers.services import channel_create, ingress_process
from apps.providers.types import InboundItem, Sender

# (channel, phone, name, text): a few conversations so the inbox has something to show.
_DEMO_SENDERS = {
    "demo": [
        (
            Channel.SMS,
            "+14155550131",
            "Maya Lopez",
            "Hi! Do you have beginner classes on Saturday?",
        ),
        (
            Channel.WHATSAPP,
            "+14155550172",
            "Jordan Alvarez",
            "Can I bring a friend to the trial class?",
        ),
        (Channel.SMS, "+14155550153", "Priya Shah", "How much is a monthly membership?"),
        (
            Channel.WHATSAPP,
            "+14155550164",
            "Leo Park",
            "I'd rather talk to a real person about my knee injury.",
        ),
    ],
    "harbor-realty": [
        (
            Channel.SMS,
            "+447700900123",
            "Tom Reid",
            "Is the flat on Harbour Street still available?",
        ),
        (
            Channel.WHATSAPP,
            "+447700900456",
            "Ava Hughes",
            "Could we view the house on Saturday morning?",
        ),
    ],
}


def _sandbox_api_base(provider: str) -> dict:
    """Demo channels send through the local provider sandbox when it is mounted."""
    if not settings.PROVIDER_SANDBOX:
        return {}
    return {"api_base": f"{settings.PUBLIC_URL}/sandbox/{provider}"}


def seed_demo(*, organization) -> None:
    twilio = ChannelConnection.objects.filter(organization=organization, provider="twilio").first()
    if twilio is None:
        twilio = channel_create(
            organization=organization,
            provider="twilio",
            name="Demo SMS",
            config={
                "account_sid": "AC00000000000000000000000000000000",
                "auth_token": "demo-auth-token-not-real",
                "from_number": "+15005550006",
                **_sandbox_api_base("twilio"),
            },
        )
    whatsapp = ChannelConnection.objects.filter(
        organization=organization, provider="whatsapp"
    ).first()
    if whatsapp is None:
        whatsapp = channel_create(
            organization=organization,
            provider="whatsapp",
            name="Demo WhatsApp",
            config={
                "phone_number_id": "100000000000001",
                "access_token": "demo-access-token-not-real",
                "app_secret": "demo-app-secret-not-real",
                "verify_token": "demo-verify-token",
                **_sandbox_api_base("whatsapp"),
            },
        )
    for connection, channel in ((twilio, Channel.SMS), (whatsapp, Channel.WHATSAPP)):
        items = [
            InboundItem(
                sender=_sender(channel, phone, name),
                channel=channel,
                provider_message_id=f"demo-{organization.slug}-{n}",
                text=text,
            )
            for n, (kind, phone, name, text) in enumerate(_DEMO_SENDERS.get(organization.slug, []))
            if kind == channel
        ]
        if items:
            ingress_process(channel=connection, items=items)


def _sender(channel: str, phone: str, name: str) -> Sender:
    identities = [(IdentityKind.PHONE, phone)]
    if channel == Channel.WHATSAPP:
        identities.append((IdentityKind.WHATSAPP_ID, phone.lstrip("+")))
    return Sender(identities=identities, phone=phone, name=name)
