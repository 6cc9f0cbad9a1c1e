"""Demo channels and a few inbound messages for `make run`. Idempotent.

The channels carry placeholder credentials: webhooks signed with them are accepted (try
the samples in docs/providers.md), sends fail with the provider's authentication error.
"""

from __future__ import annotations

from apps.core.choices import Channel
from apps.crm.models import IdentityKind
from apps.providers.models import ChannelConnection
from apps.providers.services import channel_create, ingress_process
from apps.providers.types import InboundItem, Sender

_DEMO_SENDERS = {
    "demo": [("+14155550131", "Maya Lopez", "Hi! Do you have beginner classes on Saturday?")],
    "harbor-realty": [
        ("+447700900123", "Tom Reid", "Is the flat on Harbour Street still available?")
    ],
}


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
            },
        )
    if not ChannelConnection.objects.filter(
        organization=organization, provider="whatsapp"
    ).exists():
        channel_create(
            organization=organization,
            provider="whatsapp",
            name="Demo WhatsApp",
            config={
                "phone_number_id": "100000000000001",
                "access_token": "demo-access-token-not-real",
                "app_secret": "demo-app-secret-not-real",
                "verify_token": "demo-verify-token",
            },
        )
    items = [
        InboundItem(
            sender=Sender(identities=[(IdentityKind.PHONE, phone)], phone=phone, name=name),
            channel=Channel.SMS,
            provider_message_id=f"SMdemo{organization.slug}{n}",
            text=text,
        )
        for n, (phone, name, text) in enumerate(_DEMO_SENDERS.get(organization.slug, []))
    ]
    if items:
        ingress_process(channel=twilio, items=items)
