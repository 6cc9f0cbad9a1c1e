"""Channels, signed provider requests and sample payloads for the providers tests.

`samples/` is a copy of the shared provider fixtures (see samples/README.md and SOURCES.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qsl

from django.http import QueryDict
from twilio.request_validator import RequestValidator

from apps.providers.services import channel_create

SAMPLES = Path(__file__).parent / "samples"
TWILIO_TOKEN = "test_auth_token_0123456789abcdef"
WHATSAPP_SECRET = "test_app_secret"
MAILGUN_KEY = "TEST_WEBHOOK_SIGNING_KEY"
MAILGUN_EVENT_KEY = "key-0p6mqbf74lb20gzq9f4dhpn9rg3zyk26"
MANYCHAT_TOKEN = "mc-inbound-token-0123456789"
PUBLIC = "http://testserver"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_json(name: str) -> dict:
    return json.loads(sample(name))


def twilio_channel(organization, api_base: str = "", **extra):
    config = {
        "account_sid": "AC00000000000000000000000000000000",
        "auth_token": TWILIO_TOKEN,
        "from_number": "+12028831111",
        **extra,
    }
    if api_base:
        config["api_base"] = api_base
    return channel_create(organization=organization, provider="twilio", config=config)


def whatsapp_channel(organization, api_base: str = "", app_secret: str = WHATSAPP_SECRET, **extra):
    config = {
        "phone_number_id": "1122334455667",
        "access_token": "EAAG-test-access-token",
        "app_secret": app_secret,
        "verify_token": "meatyhamhock",
        **extra,
    }
    if api_base:
        config["api_base"] = api_base
    return channel_create(organization=organization, provider="whatsapp", config=config)


def manychat_channel(organization, api_base: str = "", **extra):
    config = {"api_key": "mc-api-key-123456", "inbound_token": MANYCHAT_TOKEN, **extra}
    if api_base:
        config["api_base"] = api_base
    return channel_create(organization=organization, provider="manychat", config=config)


def mailgun_channel(organization, api_base: str = "", signing_key: str = MAILGUN_KEY, **extra):
    config = {
        "signing_key": signing_key,
        "domain": "inbound.example.com",
        "api_key": "mg-api-key-123456",
        "from_email": "hello@inbound.example.com",
        **extra,
    }
    if api_base:
        config["api_base"] = api_base
    return channel_create(organization=organization, provider="mailgun", config=config)


# --- Twilio -----------------------------------------------------------------------------------


def twilio_path(channel, status: bool = False) -> str:
    return f"/hooks/twilio/{channel.id}/" + ("status/" if status else "")


def twilio_signature(url: str, body: bytes, token: str = TWILIO_TOKEN) -> str:
    params = QueryDict(body, encoding="utf-8")
    return RequestValidator(token).compute_signature(url, params)


def post_twilio(
    client, channel, body: bytes, *, status=False, token=TWILIO_TOKEN, signature=None, sign_url=None
):
    path = twilio_path(channel, status)
    headers = {}
    if signature is not False:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature or twilio_signature(
            sign_url or PUBLIC + path, body, token
        )
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded", **headers)


def twilio_form(**fields) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def form_replace(body: bytes, **changes) -> bytes:
    from urllib.parse import urlencode

    pairs = [
        (k, changes.pop(k) if k in changes else v)
        for k, v in parse_qsl(body.decode(), keep_blank_values=True)
    ]
    pairs += list(changes.items())
    return urlencode(pairs).encode()


# --- WhatsApp ---------------------------------------------------------------------------------


def whatsapp_signature(body: bytes, secret: str = WHATSAPP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp_number_of(body: bytes) -> str:
    """The `phone_number_id` a WhatsApp webhook body is addressed to (its first change)."""
    return json.loads(body)["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]


def post_whatsapp(client, channel, body: bytes, *, secret=WHATSAPP_SECRET, signature=None):
    headers = {}
    if signature is not False:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature or whatsapp_signature(body, secret)
    return client.post(
        f"/hooks/whatsapp/{channel.id}/", data=body, content_type="application/json", **headers
    )


# --- ManyChat ---------------------------------------------------------------------------------


def post_manychat(client, channel, body: bytes, *, token=MANYCHAT_TOKEN):
    headers = {"HTTP_X_SWITCHBOARD_TOKEN": token} if token else {}
    return client.post(
        f"/hooks/manychat/{channel.id}/", data=body, content_type="application/json", **headers
    )


# --- Mailgun ----------------------------------------------------------------------------------


def mailgun_sign(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_fresh(body: bytes, key: str = MAILGUN_KEY, *, timestamp: int | None = None) -> bytes:
    """The sample form with a new token, a current timestamp and a valid signature."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    token = secrets.token_hex(25)
    return form_replace(body, timestamp=ts, token=token, signature=mailgun_sign(key, ts, token))


def mailgun_event_fresh(payload: dict, key: str = MAILGUN_EVENT_KEY) -> bytes:
    ts = str(int(time.time()))
    token = secrets.token_hex(25)
    payload = {
        **payload,
        "signature": {"timestamp": ts, "token": token, "signature": mailgun_sign(key, ts, token)},
    }
    return json.dumps(payload).encode()


def post_mailgun(client, channel, body: bytes, *, events=False):
    path = f"/hooks/mailgun/{channel.id}/" + ("events/" if events else "")
    content_type = "application/json" if events else "application/x-www-form-urlencoded"
    return client.post(path, data=body, content_type=content_type)


# --- state ------------------------------------------------------------------------------------


def event_count(organization, type_: str) -> int:
    from apps.events.models import Event

    return Event.objects.filter(organization=organization, type=type_).count()


def sent_message(
    organization,
    channel,
    provider_message_id: str,
    *,
    kind: str = "sms",
    phone="+14133881111",
    status="sent",
):
    """An outbound message the provider accepted as `provider_message_id` (for status tests)."""
    from django.utils import timezone

    from apps.conversations.models import Message
    from apps.conversations.services import conversation_for_contact
    from apps.crm.services import contact_upsert

    contact = contact_upsert(organization=organization, phone=phone, email=None).contact
    conversation = conversation_for_contact(organization=organization, contact=contact)
    return Message.objects.create(
        organization=organization,
        conversation=conversation,
        contact=contact,
        direction="out",
        channel=kind,
        channel_connection=channel,
        provider_message_id=provider_message_id,
        sender_kind="agent",
        text="Hello",
        status=status,
        sent_at=timezone.now(),
        raw={"to": phone},
    )
