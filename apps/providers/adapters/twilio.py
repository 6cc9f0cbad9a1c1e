"""Twilio (SMS and WhatsApp): signature check, inbound and status parsing, sends.

Signature: `X-Twilio-Signature` = base64 HMAC-SHA1(auth_token, URL + sorted params), computed
by twilio's `RequestValidator` over `PUBLIC_URL` + the request path (and query), with and
without the scheme's default port, because Twilio signs either form.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlparse

from twilio.request_validator import RequestValidator, add_port, remove_port

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

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_MEDIA = 10

STATUS_MAP = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
    "undelivered": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}

# Error codes: (reason, retryable, opted_out). Unknown 4xx codes are final, 5xx retried.
ERRORS = {
    "20429": ("Twilio rate limit (too many requests).", True, False),
    "63018": ("WhatsApp rate limit for this sender reached.", True, False),
    "21610": ("The recipient replied STOP: Twilio blocks messages to them.", False, True),
    "21211": ("Invalid 'To' phone number.", False, False),
    "21614": ("The 'To' number is not a mobile number.", False, False),
    "21408": ("Sending to this region is not enabled on the Twilio account.", False, False),
    "21612": ("Twilio cannot route to this number.", False, False),
    "63016": (
        "Outside the WhatsApp 24-hour window: a free-form message needs an approved template.",
        False,
        False,
    ),
    "63024": ("Invalid WhatsApp recipient.", False, False),
    "30003": ("Unreachable destination handset.", False, False),
    "30004": ("Message blocked by the recipient or carrier.", False, False),
    "30005": ("Unknown destination handset (invalid number).", False, False),
    "30006": ("Landline or unreachable carrier.", False, False),
    "30007": ("Filtered by the carrier as spam.", False, False),
    "30008": ("Unknown error from the carrier.", False, False),
    "20003": ("Twilio rejected the credentials (check account_sid/auth_token).", False, False),
}


def verify(request, channel, params, public_url: str) -> bool | None:
    """True: signed by this channel's auth token; False: wrong; None: header missing."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return None
    validator = RequestValidator(channel.config["auth_token"])
    url = public_url.rstrip("/") + request.get_full_path()
    parsed = urlparse(url)
    for candidate in (remove_port(parsed), add_port(parsed)):
        expected = validator.compute_signature(candidate, params)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return True
    return False


def _identities_from(value: str, external_user_id: str) -> tuple[str, Sender]:
    """Channel and sender from Twilio's `From` (+ `ExternalUserId`, a WhatsApp BSUID)."""
    if value.lower().startswith("whatsapp:"):
        address = value[len("whatsapp:") :].strip()
        sender = Sender()
        if address and any(ch.isalpha() for ch in address):  # a BSUID in From
            sender.identities.append((IdentityKind.WHATSAPP_BSUID, address))
        elif address:
            digits = "".join(ch for ch in address if ch.isdigit())
            if digits:
                sender.identities.append((IdentityKind.WHATSAPP_ID, digits))
            sender.phone = address
        bsuid = external_user_id.strip()
        if bsuid.lower().startswith("whatsapp:"):
            bsuid = bsuid[len("whatsapp:") :]
        if bsuid:
            sender.identities.append((IdentityKind.WHATSAPP_BSUID, bsuid))
        return Channel.WHATSAPP, sender
    return Channel.SMS, Sender(identities=[(IdentityKind.PHONE, value)], phone=value)


def parse_inbound(params) -> InboundItem:
    sid = (params.get("MessageSid") or params.get("SmsMessageSid") or "").strip()
    sender_address = (params.get("From") or "").strip()
    if not sid or not sender_address:
        raise Malformed("MessageSid and From are required.")
    if len(sid) > 64:
        raise Malformed("MessageSid is too long.")
    channel, sender = _identities_from(sender_address, params.get("ExternalUserId") or "")
    if not sender.identities:
        raise Malformed("From does not name a sender.")
    sender.name = (params.get("ProfileName") or "").strip()
    try:
        num_media = min(int(params.get("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        raise Malformed("NumMedia must be a number.") from None
    attachments = [
        InboundAttachment(
            content_type=params.get(f"MediaContentType{n}") or "",
            provider_url=params.get(f"MediaUrl{n}") or "",
        )
        for n in range(num_media)
        if params.get(f"MediaUrl{n}")
    ]
    return InboundItem(
        sender=sender,
        channel=channel,
        provider_message_id=sid,
        text=params.get("Body") or "",
        reply_to_provider_id=params.get("OriginalRepliedMessageSid") or "",
        attachments=attachments,
        raw={k: params.getlist(k) if len(params.getlist(k)) > 1 else params.get(k) for k in params},
    )


def parse_status(params) -> StatusReport:
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    raw_status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not sid or not raw_status:
        raise Malformed("MessageSid and MessageStatus are required.")
    code = (params.get("ErrorCode") or "").strip()
    reason = ERRORS.get(code, (None, False, False))[0] or (params.get("ErrorMessage") or "")
    if not reason and raw_status == "canceled":
        reason = "Canceled before sending."
    return StatusReport(
        provider_message_id=sid[:255],
        status=STATUS_MAP.get(raw_status),
        error_code=code[:32],
        error_reason=(reason or (f"Twilio error {code}" if code else ""))[:300],
        opted_out=code == "21610",
        raw={k: params.get(k) for k in params},
    )


def send_request(message, config: dict, status_url: str) -> list[tuple[str, str]]:
    """The form Twilio's Messages API gets, in the order of the documented samples."""
    to = message.raw["to"]
    sender = config["from_number"]
    if message.channel == Channel.WHATSAPP:
        to = to if to.startswith("whatsapp:") else f"whatsapp:{to}"
        sender = f"whatsapp:{config.get('whatsapp_from') or config['from_number']}"
    form = [("To", to)]
    if config.get("messaging_service_sid"):
        form.append(("MessagingServiceSid", config["messaging_service_sid"]))
    else:
        form.append(("From", sender))
    template = (message.raw or {}).get("template")
    if template:
        variables = {str(i): v for i, v in enumerate(template["variables"], start=1)}
        form += [("ContentSid", template["name"]), ("ContentVariables", json.dumps(variables))]
    else:
        form.append(("Body", message.text))
    form.append(("StatusCallback", status_url))
    return form


def send(message, channel, api_base: str, status_url: str) -> SendOutcome:
    config = channel.config
    url = f"{api_base}/2010-04-01/Accounts/{config['account_sid']}/Messages.json"
    reply = http.post(
        url,
        config=config,
        data=send_request(message, config, status_url),
        auth=(config["account_sid"], config["auth_token"]),
    )
    body = reply.body or {}
    if 200 <= reply.status < 300 and body.get("sid"):
        return SendOutcome(ok=True, provider_message_id=body["sid"], response=body)
    code = str(body.get("code") or "")
    reason, retryable, opted_out = ERRORS.get(code, (None, None, False))
    if retryable is None:
        retryable = reply.status == 429 or reply.status >= 500
    return SendOutcome(
        retry=retryable,
        retry_after=reply.retry_after(),
        error_code=code or str(reply.status),
        error_reason=reason or body.get("message") or f"Twilio answered HTTP {reply.status}.",
        opted_out=opted_out,
        response=body or {"status": reply.status, "text": reply.text[:500]},
    )
