"""Mailgun (email) through django-anymail, with the webhook signing key per channel.

Signature: `hex(HMAC-SHA256(signing_key, timestamp + token))`, inside the form (inbound
route, raw MIME or parsed) or in the JSON `signature` block (event webhooks at
`/hooks/mailgun/<id>/events/`). A timestamp more than `MAILGUN_WEBHOOK_TOLERANCE` seconds
(default 300) from now is stale, and a token is accepted once (Redis `SET NX` with a TTL
longer than the tolerance), because the signature does not cover the body: a captured
signature must not be replayable with another body. Parsing and sending use anymail's
Mailgun views and backend, constructed per request with the channel's keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from email.utils import make_msgid, parsedate_to_datetime

from anymail.exceptions import AnymailAPIError, AnymailError
from anymail.signals import EventType
from anymail.webhooks.mailgun import MailgunInboundWebhookView, MailgunTrackingWebhookView
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage, get_connection

from apps.conversations.models import MessageStatus
from apps.core.choices import Channel
from apps.crm.models import IdentityKind
from apps.providers import http
from apps.providers.types import (
    InboundAttachment,
    InboundItem,
    Malformed,
    Sender,
    SendOutcome,
    StatusReport,
)

DEFAULT_TOLERANCE = 300
REPLAY_TTL = 900
_ID_RE = re.compile(r"<([^<>\s]+)>")

EVENT_STATUS = {
    EventType.DELIVERED: MessageStatus.DELIVERED,
    EventType.OPENED: MessageStatus.READ,
    EventType.CLICKED: MessageStatus.READ,
    EventType.BOUNCED: MessageStatus.FAILED,
    EventType.REJECTED: MessageStatus.FAILED,
    EventType.FAILED: MessageStatus.FAILED,
}


class Rejected(Exception):
    """Signature missing, wrong, stale or replayed: answered 403 with `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def tolerance() -> int:
    return int(getattr(settings, "MAILGUN_WEBHOOK_TOLERANCE", DEFAULT_TOLERANCE))


def check_signature(channel, *, timestamp, token, signature) -> None:
    """Raise Rejected unless signed with the channel's key, fresh, and its token unseen."""
    if not (timestamp and token and signature):
        raise Rejected("missing_signature")
    expected = hmac.new(
        str(channel.config["signing_key"]).encode(),
        f"{timestamp}{token}".encode(),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(signature).encode()):
        raise Rejected("bad_signature")
    try:
        age = abs(time.time() - float(timestamp))
    except (TypeError, ValueError):
        raise Rejected("stale") from None
    if age > tolerance():
        raise Rejected("stale")
    if not cache.add(f"mailgun-token:{channel.pk}:{token}", 1, timeout=REPLAY_TTL):
        raise Rejected("replayed")


def forget_token(channel, token) -> None:
    """Let a token be used again (the request that used it failed before storing anything)."""
    cache.delete(f"mailgun-token:{channel.pk}:{token}")


def email_ids(value) -> list[str]:
    """RFC 5322 message ids without angle brackets, in order."""
    if not value:
        return []
    found = _ID_RE.findall(str(value))
    return found or [v.strip("<> ") for v in str(value).split() if v.strip("<> ")]


def parse_inbound(request, channel) -> InboundItem:
    view = MailgunInboundWebhookView(webhook_signing_key=str(channel.config["signing_key"]))
    try:
        event = view.esp_to_anymail_event(request)
    except (
        AnymailError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        OverflowError,
    ) as exc:
        raise Malformed(f"Not a Mailgun inbound route payload ({type(exc).__name__}).") from None
    message = event.message
    from_address = message.from_email
    email = from_address.addr_spec if from_address else (request.POST.get("sender") or "")
    if not email:
        raise Malformed("The email has no sender.")
    sender = Sender(
        identities=[(IdentityKind.EMAIL, email)],
        email=email,
        name=(from_address.display_name if from_address else "") or "",
    )
    ids = email_ids(message["Message-ID"])
    message_id = ids[0] if ids else f"mailgun-{request.POST.get('token', '')}"
    reply_ids = email_ids(message["In-Reply-To"]) + email_ids(message["References"])
    try:
        sent_at = parsedate_to_datetime(message["Date"]) if message["Date"] else None
    except (TypeError, ValueError):
        sent_at = None
    attachments = []
    for part in message.attachments:
        content = part.get_content_bytes() or b""
        attachments.append(
            InboundAttachment(
                content_type=part.get_content_type(),
                size=len(content),
                filename=part.get_filename() or "",
                content=content,
            )
        )
    text = message.stripped_text or message.text or ""
    return InboundItem(
        sender=sender,
        channel=Channel.EMAIL,
        provider_message_id=message_id[:255],
        text=text,
        subject=message.subject or "",
        sent_at=sent_at,
        email_message_id=message_id[:255],
        email_reply_ids=[i[:255] for i in reply_ids],
        reply_to_provider_id=reply_ids[0][:255] if reply_ids else "",
        attachments=attachments,
        raw={
            k: v
            for k, v in request.POST.items()
            if k not in ("body-mime", "body-html", "stripped-html")
        },
    )


def parse_event(payload: dict, channel) -> StatusReport:
    view = MailgunTrackingWebhookView(webhook_signing_key=str(channel.config["signing_key"]))
    try:
        event = view.esp_to_anymail_event(payload)
    except (AnymailError, KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        # OverflowError: a timestamp no clock can hold (anymail converts it as given).
        raise Malformed(f"Not a Mailgun event payload ({type(exc).__name__}).") from None
    ids = email_ids(event.message_id)
    status = EVENT_STATUS.get(event.event_type)
    opted_out = event.event_type in (EventType.UNSUBSCRIBED, EventType.COMPLAINED)
    reason = event.description or event.mta_response or ""
    if status == MessageStatus.FAILED and not reason:
        reason = f"Mailgun: {event.event_type} ({event.reject_reason or 'no reason given'})"
    data = payload.get("event-data") or {}
    delivery_status = data.get("delivery-status") if isinstance(data, dict) else None
    code = delivery_status.get("code") if isinstance(delivery_status, dict) else ""
    return StatusReport(
        provider_message_id=ids[0][:255] if ids else "",
        status=status,
        occurred_at=event.timestamp,
        error_code=str(code or "")[:32] if status == MessageStatus.FAILED else "",
        error_reason=str(reason)[:300] if status == MessageStatus.FAILED else "",
        opted_out=opted_out,
        raw=data if isinstance(data, dict) else None,
    )


def send(message, channel, api_base: str, *, subject: str, in_reply_to: str, references: list[str]):
    config = channel.config
    message_id = make_msgid(domain=config["domain"])
    headers = {"Message-ID": message_id}
    if in_reply_to:
        headers["In-Reply-To"] = f"<{in_reply_to}>"
        headers["References"] = " ".join(f"<{r}>" for r in references or [in_reply_to])
    from_email = config["from_email"]
    if config.get("from_name"):
        from_email = f'"{config["from_name"]}" <{from_email}>'
    connection = get_connection(
        "anymail.backends.mailgun.EmailBackend",
        api_key=config["api_key"],
        sender_domain=config["domain"],
        api_url=api_base,
        timeout=http.timeout_of(config),
    )
    email = EmailMessage(
        subject=subject,
        body=message.text,
        from_email=from_email,
        to=[message.raw["to"]],
        headers=headers,
        connection=connection,
    )
    try:
        email.send()
    except AnymailAPIError as exc:
        status = getattr(exc, "status_code", None)
        retryable = status is None or status == 429 or status >= 500
        return SendOutcome(
            retry=retryable,
            error_code=str(status or "transport"),
            error_reason=str(exc).splitlines()[0][:300] if str(exc) else "Mailgun error",
        )
    provider_id = email.anymail_status.message_id or message_id
    return SendOutcome(
        ok=True,
        provider_message_id=email_ids(provider_id)[0] if email_ids(provider_id) else provider_id,
        response={"message_id": provider_id, "sent_message_id": message_id},
    )


def json_payload(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise Malformed("Expected a JSON object.")
    return payload
