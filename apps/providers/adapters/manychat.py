"""ManyChat: an External Request action we configure, authenticated by a shared token.

ManyChat signs nothing, so the External Request carries `X-Switchboard-Token:
<inbound_token>` (compared in constant time). Its body is what the action is set up to
send; we expect `{"data": {{user}}, ...}` (the full subscriber object) and read the text
from `last_input_text`.

Message id: ManyChat sends none. We derive a stable one: `mc_` + sha256 over the
subscriber id, the text, and the subscriber's activity timestamps (`last_interaction`,
`last_seen`, `ig_last_interaction`, `ig_last_seen`), so a retried request dedupes while a
new message (new text, or a newer interaction time) does not. If the action sends its own
`message_id` (e.g. a ManyChat variable), that is used instead. Consequence: the same text
from the same subscriber with unchanged timestamps is treated as a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from django.utils.dateparse import parse_datetime

from apps.core.choices import Channel
from apps.crm.models import IdentityKind
from apps.providers import http
from apps.providers.types import InboundItem, Malformed, Sender, SendOutcome

TOKEN_HEADER = "X-Switchboard-Token"  # noqa: S105 - a header name
_TIME_FIELDS = ("last_interaction", "last_seen", "ig_last_interaction", "ig_last_seen")


def verify(request, channel) -> bool | None:
    token = request.headers.get(TOKEN_HEADER)
    if not token:
        return None
    return hmac.compare_digest(token.encode(), str(channel.config["inbound_token"]).encode())


def derived_message_id(subscriber_id: str, text: str, subscriber: dict) -> str:
    material = json.dumps(
        [subscriber_id, text, *[subscriber.get(f) for f in _TIME_FIELDS]], default=str
    )
    return "mc_" + hashlib.sha256(material.encode()).hexdigest()


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def parse(body: bytes) -> InboundItem:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("The body is not JSON.") from None
    try:
        return _parse(payload)
    except (AttributeError, TypeError, KeyError):
        raise Malformed("Unexpected ManyChat request structure.") from None


def _parse(payload) -> InboundItem:
    if not isinstance(payload, dict):
        raise Malformed("Expected a JSON object.")
    subscriber = payload.get("data", payload)
    if (
        not isinstance(subscriber, dict)
        or isinstance(subscriber.get("id"), bool)
        or not isinstance(subscriber.get("id"), str | int)
        or subscriber.get("id") == ""
    ):
        raise Malformed("Expected the subscriber object (with its id) in `data`.")
    subscriber_id = str(subscriber["id"])
    if len(subscriber_id) > 100:
        raise Malformed("The subscriber id is too long.")
    text = payload.get("text", subscriber.get("last_input_text"))
    text = "" if text is None else str(text)
    message_id = payload.get("message_id")
    message_id = (
        str(message_id)[:255] if message_id else derived_message_id(subscriber_id, text, subscriber)
    )
    sender = Sender(identities=[(IdentityKind.MANYCHAT_ID, subscriber_id)])
    name = subscriber.get("name") or " ".join(
        str(subscriber.get(k) or "") for k in ("first_name", "last_name")
    )
    sender.name = str(name or "").strip()
    phone = subscriber.get("whatsapp_phone") or subscriber.get("phone")
    email = subscriber.get("email")
    sender.phone = str(phone) if phone else None
    sender.email = str(email) if email else None
    if subscriber.get("whatsapp_bsuid"):
        sender.identities.append((IdentityKind.WHATSAPP_BSUID, str(subscriber["whatsapp_bsuid"])))
    sent_at = next((t for t in (_time(subscriber.get(f)) for f in _TIME_FIELDS) if t), None)
    return InboundItem(
        sender=sender,
        channel=Channel.MANYCHAT,
        provider_message_id=message_id,
        text=text,
        sent_at=sent_at,
        raw=payload,
    )


def send_request(message, config: dict) -> dict:
    """sendContent body, as in the documented sample (Dynamic Block v2)."""
    to = message.raw["to"]
    return {
        "subscriber_id": int(to) if str(to).isdigit() else to,
        "data": {
            "version": "v2",
            "content": {
                "type": config.get("content_type") or "whatsapp",
                "messages": [{"type": "text", "text": message.text}],
            },
        },
        "message_tag": config.get("message_tag") or "ACCOUNT_UPDATE",
    }


def send(message, channel, api_base: str) -> SendOutcome:
    config = channel.config
    reply = http.post(
        f"{api_base}/fb/sending/sendContent",
        config=config,
        json=send_request(message, config),
        headers={"Authorization": f"Bearer {config['api_key']}"},
    )
    body = reply.body or {}
    if 200 <= reply.status < 300 and body.get("status") == "success":
        return SendOutcome(ok=True, provider_message_id=None, response=body)
    retryable = reply.status == 429 or reply.status >= 500
    return SendOutcome(
        retry=retryable,
        retry_after=reply.retry_after(),
        error_code=str(body.get("code") or reply.status),
        error_reason=str(body.get("message") or f"ManyChat answered HTTP {reply.status}.")[:300],
        response=body or {"status": reply.status, "text": reply.text[:500]},
    )
