"""WhatsApp Cloud API (Meta): verify handshake, signature, batched messages and statuses, sends.

Signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>` over the
bytes exactly as received. One POST may batch several entries, changes, messages and
statuses. A sender may be known by its phone-based `wa_id`, its business-scoped user id
(BSUID, `user_id` / `from_user_id`), or only the BSUID.

Tenancy: one Meta app (one `app_secret`, one callback URL) may serve several phone numbers,
and so several channels of different organizations. Each change names its number in
`value.metadata.phone_number_id`; a change for any number other than the routed channel's
is skipped, never ingested into this channel's organization.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from apps.conversations.models import MessageStatus
from apps.core.choices import Channel
from apps.crm.models import IdentityKind
from apps.providers import http
from apps.providers.specs import GRAPH_VERSION
from apps.providers.types import (
    InboundAttachment,
    InboundItem,
    Malformed,
    Sender,
    SendOutcome,
    StatusReport,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")

STATUS_MAP = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "played": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
}

# Graph error codes: (reason, retryable). Unknown 4xx codes are final, 5xx retried.
ERRORS = {
    "130429": ("WhatsApp throughput limit reached (rate limit).", True),
    "131056": ("Too many messages to this contact in a short time (pair rate limit).", True),
    "80007": ("WhatsApp Business Account rate limit reached.", True),
    "131000": ("WhatsApp reported an internal error.", True),
    "131016": ("WhatsApp service temporarily unavailable.", True),
    "131047": (
        "Outside the WhatsApp 24-hour window: the contact has not written in the last 24 hours; "
        "use an approved template.",
        False,
    ),
    "131026": (
        "The recipient cannot receive WhatsApp messages (invalid or unregistered number).",
        False,
    ),
    "131030": ("The recipient is not in the allowed list of this test number.", False),
    "131049": ("Meta chose not to deliver this marketing message.", False),
    "131050": ("The contact stopped marketing messages from this business.", False),
    "131051": ("Unsupported message type.", False),
    "132000": ("Template parameter count mismatch.", False),
    "132001": ("The template does not exist or is not approved in this language.", False),
    "190": ("The access token expired or is invalid.", False),
    "100": ("Invalid parameter (check the recipient number).", False),
}


def verify_handshake(params, channel) -> str | None:
    """The challenge to echo when Meta's GET handshake names this channel's token."""
    token = params.get("hub.verify_token") or ""
    if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        token.encode(), str(channel.config["verify_token"]).encode()
    ):
        return None
    return params.get("hub.challenge") or ""


def verify(request, channel, body: bytes) -> bool | None:
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        return None
    expected = hmac.new(
        str(channel.config["app_secret"]).encode(), body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(f"sha256={expected}".encode(), header.strip().encode())


def _timestamp(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _text_and_media(message: dict) -> tuple[str, list[InboundAttachment]]:
    kind = message.get("type") or ""
    if kind == "text":
        return str(_obj(message.get("text")).get("body") or ""), []
    if kind in MEDIA_TYPES:
        media = _obj(message.get(kind))
        return str(media.get("caption") or ""), [
            InboundAttachment(
                content_type=str(media.get("mime_type") or ""),
                provider_media_id=str(media.get("id") or ""),
                filename=str(media.get("filename") or ""),
            )
        ]
    if kind == "interactive":
        interactive = _obj(message.get("interactive"))
        reply = _obj(interactive.get("button_reply") or interactive.get("list_reply"))
        return str(reply.get("title") or ""), []
    if kind == "button":
        return str(_obj(message.get("button")).get("text") or ""), []
    if kind == "location":
        loc = _obj(message.get("location"))
        label = " ".join(str(loc.get(k) or "") for k in ("name", "address")).strip()
        return f"{label} ({loc.get('latitude')}, {loc.get('longitude')})".strip(), []
    if kind == "reaction":
        return str(_obj(message.get("reaction")).get("emoji") or ""), []
    return f"[{kind or 'unknown'} message]", []


def _as_list(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} must be a list.")
    return value


def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def parse(body: bytes, *, phone_number_id: str) -> tuple[list[InboundItem], list[StatusReport]]:
    """Every message and status of a (possibly batched) webhook that is addressed to
    `phone_number_id` (the routed channel's number), or Malformed (any malformed change,
    addressed to us or not). Changes for another number, or naming none, are skipped."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("The body is not JSON.") from None
    try:
        return _parse(payload, str(phone_number_id))
    except (AttributeError, TypeError, KeyError):  # a shape Meta never sends
        raise Malformed("Unexpected WhatsApp webhook structure.") from None


def _addressed_to(value: dict) -> str:
    return str(_obj(value.get("metadata")).get("phone_number_id") or "")


def _parse(payload, phone_number_id: str) -> tuple[list[InboundItem], list[StatusReport]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise Malformed("Expected a WhatsApp webhook object with an `entry` list.")
    items: list[InboundItem] = []
    statuses: list[StatusReport] = []
    for entry in payload["entry"]:
        if not isinstance(entry, dict):
            raise Malformed("entry[] items must be objects.")
        for change in _as_list(entry.get("changes"), "changes"):
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise Malformed("changes[] items must be objects with a value.")
            if change.get("field", "messages") != "messages":
                continue
            value = change["value"]
            # Checked after parsing, so a malformed change is a 400 whoever it names.
            ours = _addressed_to(value) == phone_number_id
            profiles: dict[str, dict] = {}
            for contact in _as_list(value.get("contacts"), "contacts"):
                if isinstance(contact, dict):
                    for key in ("wa_id", "user_id"):
                        if contact.get(key):
                            profiles[str(contact[key])] = contact
            change_items = [
                _parse_message(message, profiles, value)
                for message in _as_list(value.get("messages"), "messages")
            ]
            change_statuses = [
                _parse_status(status) for status in _as_list(value.get("statuses"), "statuses")
            ]
            if ours:  # else another channel's number (possibly another organization's)
                items.extend(change_items)
                statuses.extend(change_statuses)
    return items, statuses


def _parse_message(message, profiles: dict, value: dict) -> InboundItem:
    if not isinstance(message, dict) or not message.get("id"):
        raise Malformed("messages[] items need an id.")
    wamid = str(message["id"])
    if len(wamid) > 255:
        raise Malformed("messages[].id is too long.")
    wa_id = str(message.get("from") or "")
    bsuid = str(message.get("from_user_id") or "")
    profile = profiles.get(wa_id) or profiles.get(bsuid) or {}
    bsuid = bsuid or str(profile.get("user_id") or "")
    sender = Sender(name=str(_obj(profile.get("profile")).get("name") or ""))
    if bsuid:
        sender.identities.append((IdentityKind.WHATSAPP_BSUID, bsuid))
    if wa_id:
        digits = "".join(ch for ch in wa_id if ch.isdigit())
        if digits:
            sender.identities.append((IdentityKind.WHATSAPP_ID, digits))
            sender.phone = f"+{digits}"
    if not sender.identities:
        raise Malformed("messages[] items need `from` or `from_user_id`.")
    text, attachments = _text_and_media(message)
    reply_to = str(_obj(message.get("context")).get("id") or "")
    if message.get("type") == "reaction" and not reply_to:
        reply_to = str(_obj(message.get("reaction")).get("message_id") or "")
    return InboundItem(
        sender=sender,
        channel=Channel.WHATSAPP,
        provider_message_id=wamid,
        text=text,
        sent_at=_timestamp(message.get("timestamp")),
        reply_to_provider_id=reply_to,
        attachments=attachments,
        raw={"message": message, "metadata": value.get("metadata"), "contact": profile or None},
    )


def _parse_status(status) -> StatusReport:
    if not isinstance(status, dict) or not status.get("id") or not status.get("status"):
        raise Malformed("statuses[] items need an id and a status.")
    errors = status.get("errors") or []
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("code") or "")
    details = (
        (first.get("error_data") or {}).get("details")
        if isinstance(first.get("error_data"), dict)
        else None
    )
    reason = ERRORS.get(code, (None,))[0] or details or first.get("title") or first.get("message")
    return StatusReport(
        provider_message_id=str(status["id"])[:255],
        status=STATUS_MAP.get(str(status["status"])),
        occurred_at=_timestamp(status.get("timestamp")),
        error_code=code[:32],
        error_reason=str(reason or "")[:300],
        raw=status,
    )


def send_request(message) -> dict:
    """The Graph API body, in the shape of the documented samples."""
    base = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.raw["to"],
    }
    template = (message.raw or {}).get("template")
    if template:
        return {
            **base,
            "type": "template",
            "template": {
                "name": template["name"],
                "language": {"policy": "deterministic", "code": template["language"]},
                "components": [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": v} for v in template["variables"]],
                    }
                ],
            },
        }
    return {
        **base,
        "type": "text",
        "text": {"preview_url": False, "body": message.text},
        "biz_opaque_callback_data": f"outbox:{message.id}",
    }


def send(message, channel, api_base: str) -> SendOutcome:
    config = channel.config
    version = config.get("graph_version") or GRAPH_VERSION
    reply = http.post(
        f"{api_base}/{version}/{config['phone_number_id']}/messages",
        config=config,
        json=send_request(message),
        headers={"Authorization": f"Bearer {config['access_token']}"},
    )
    body = reply.body or {}
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    if 200 <= reply.status < 300 and messages and isinstance(messages[0], dict):
        return SendOutcome(ok=True, provider_message_id=messages[0].get("id"), response=body)
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = str(error.get("code") or "")
    reason, retryable = ERRORS.get(code, (None, None))
    if retryable is None:
        retryable = reply.status == 429 or reply.status >= 500
    details = (
        (error.get("error_data") or {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else None
    )
    return SendOutcome(
        retry=retryable,
        retry_after=reply.retry_after(),
        error_code=code or str(reply.status),
        error_reason=reason or details or error.get("message") or f"HTTP {reply.status}",
        response=body or {"status": reply.status, "text": reply.text[:500]},
    )


def media_url(channel, api_base: str, media_id: str) -> tuple[str, dict]:
    """Where to fetch a media id's bytes (Graph returns a short-lived URL) and the auth header."""
    config = channel.config
    version = config.get("graph_version") or GRAPH_VERSION
    headers = {"Authorization": f"Bearer {config['access_token']}"}
    response = http.session().get(
        f"{api_base}/{version}/{media_id}", headers=headers, timeout=http.timeout_of(config)
    )
    response.raise_for_status()
    return response.json()["url"], headers
