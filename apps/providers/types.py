"""Provider-independent shapes: what an adapter parses out of a webhook, and what a send did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from apps.conversations.services import InboundAttachment

__all__ = ["InboundAttachment", "InboundItem", "Malformed", "SendOutcome", "Sender", "StatusReport"]


class Malformed(ValueError):
    """The payload is not what the provider sends: answered 400 with this message."""


@dataclass
class Sender:
    identities: list[tuple[str, str]] = field(default_factory=list)
    name: str = ""
    email: str | None = None
    phone: str | None = None


@dataclass
class InboundItem:
    """One inbound message, normalized."""

    sender: Sender
    channel: str
    provider_message_id: str | None
    text: str = ""
    subject: str = ""
    sent_at: datetime | None = None
    reply_to_provider_id: str = ""
    email_message_id: str = ""
    email_reply_ids: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    raw: dict | None = None


@dataclass
class StatusReport:
    """One delivery-status report for a message we sent (`status` None: not one we track)."""

    provider_message_id: str
    status: str | None
    occurred_at: datetime | None = None
    error_code: str = ""
    error_reason: str = ""
    opted_out: bool = False  # the provider says the contact unsubscribed (Twilio 21610)
    raw: dict | None = None


@dataclass
class SendOutcome:
    """What one provider call did. Exactly one of: ok, retry, or a final failure."""

    ok: bool = False
    provider_message_id: str | None = None
    retry: bool = False  # transient: try again later
    retry_after: float | None = None  # seconds, when the provider said
    error_code: str = ""
    error_reason: str = ""
    opted_out: bool = False  # mark the contact opted out on the channel
    response: dict | None = None
