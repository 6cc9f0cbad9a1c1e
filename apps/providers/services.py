"""Channel write actions, the ingress pipeline (identity → threading → opt-out keywords) and
the send worker's provider call (`message_deliver`)."""

from __future__ import annotations

import functools
import hashlib
import logging
import mimetypes
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin, urlparse

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from apps.conversations import services as conversations
from apps.conversations.models import (
    Attachment,
    AttachmentStatus,
    Message,
    MessageStatus,
    SenderKind,
)
from apps.conversations.selectors import sender_lookup, whatsapp_window_open
from apps.core import coalesce, ratelimit
from apps.core.choices import Channel, Provider
from apps.core.errors import ValidationFailed
from apps.core.tasks import enqueue_on_commit
from apps.core.text import storable
from apps.crm import services as crm
from apps.crm.models import Contact, IdentityKind
from apps.crm.normalize import InvalidIdentity, normalize_email, normalize_identity, normalize_phone
from apps.events import netguard
from apps.providers import http, metrics, selectors
from apps.providers.models import ChannelConnection, ChannelStatus
from apps.providers.specs import ORGANIZATION_RATE_PER_SECOND, SPECS
from apps.providers.types import InboundItem, Sender, SendOutcome, StatusReport
from apps.revenue.limits import limit_check

logger = logging.getLogger(__name__)

# --- channels ---------------------------------------------------------------------------------


def channel_config_validate(*, provider: str, config) -> tuple[dict, str]:
    """(config without api_base, api_base) or ValidationFailed naming the first problem."""
    spec = SPECS.get(provider)
    if spec is None:
        raise ValidationFailed(
            f"provider: unknown provider {provider!r} (one of {', '.join(SPECS)}).",
            details={"provider": ["unknown"]},
        )
    if not isinstance(config, dict):
        raise ValidationFailed(
            "config: must be a JSON object.", details={"config": ["not an object"]}
        )
    config = dict(config)
    api_base = str(config.pop("api_base", "") or "").strip()
    missing = [k for k in spec.required if not str(config.get(k) or "").strip()]
    if missing:
        raise ValidationFailed(
            f"config: missing {', '.join(missing)} for {provider} "
            f"(required: {', '.join(spec.required)}).",
            details={"config": {k: ["required"] for k in missing}},
        )
    unknown = sorted(set(config) - set(spec.allowed))
    if unknown:
        raise ValidationFailed(
            f"config: unknown key {', '.join(unknown)} for {provider} "
            f"(allowed: {', '.join(spec.allowed)}, api_base).",
            details={"config": {k: ["unknown"] for k in unknown}},
        )
    for key in ("rate_per_second", "timeout"):
        if key in config:
            try:
                if float(config[key]) <= 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValidationFailed(
                    f"config: {key} must be a positive number.",
                    details={"config": {key: ["invalid"]}},
                ) from None
    if api_base:
        parsed = urlparse(api_base)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValidationFailed(
                "config: api_base must be an http(s) URL.",
                details={"config": {"api_base": ["invalid"]}},
            )
    return config, api_base.rstrip("/")


@transaction.atomic
def channel_create(
    *, organization, provider: str, config: dict, name: str = ""
) -> ChannelConnection:
    """Connect a provider account: credentials encrypted at rest. Not idempotent."""
    config, api_base = channel_config_validate(provider=provider, config=config)
    limit_check(organization=organization, limit="channels")
    spec = SPECS[provider]
    return ChannelConnection.objects.create(
        organization=organization,
        provider=provider,
        name=(name or "").strip()[:100]
        or f"{spec.provider.title()} {config.get(spec.identifier_key, '')}".strip(),
        config=config,
        api_base=api_base,
        identifier=str(config.get(spec.identifier_key, ""))[:255],
        status=ChannelStatus.ACTIVE,
    )


@transaction.atomic
def channel_update(
    *,
    channel: ChannelConnection,
    config_changes: dict | None = None,
    name: str | None = None,
    status: str | None = None,
) -> ChannelConnection:
    """Change a channel: `config_changes` replace the given keys (others are kept)."""
    fields = ["updated_at"]
    if config_changes:
        merged = {**channel.config, **config_changes}
        if channel.api_base and "api_base" not in config_changes:
            merged["api_base"] = channel.api_base
        channel.config, channel.api_base = channel_config_validate(
            provider=channel.provider, config=merged
        )
        spec = SPECS[channel.provider]
        channel.identifier = str(channel.config.get(spec.identifier_key, ""))[:255]
        fields += ["config", "api_base", "identifier"]
    if name is not None:
        channel.name = name.strip()[:100]
        fields.append("name")
    if status is not None:
        if status not in ChannelStatus.values:
            raise ValidationFailed(f"status: must be one of {', '.join(ChannelStatus.values)}.")
        channel.status = status
        fields.append("status")
    channel.save(update_fields=fields)
    transaction.on_commit(lambda: selectors.channel_cache_forget(channel.pk))
    selectors.channel_cache_forget(channel.pk)
    return channel


# --- ingress ----------------------------------------------------------------------------------


@dataclass
class IngressResult:
    stored: list = field(default_factory=list)  # new message ids
    duplicates: int = 0
    statuses: int = 0


@functools.lru_cache(maxsize=4096)
def _normalized(kind: str, value: str, region: str) -> str:
    """Identity normalization (phonenumbers parsing is the costly part), memoized: the same
    senders write again and again."""
    if kind == "phone":
        return normalize_phone(value, region=region)
    if kind == "email":
        return normalize_email(value)
    return normalize_identity(kind, value, region=region)


def sender_keys(*, organization, sender: Sender) -> dict[str, str]:
    """The sender's identities, normalized as `contact_upsert` does ({kind: value})."""
    region = organization.default_phone_region
    keys: dict[str, str] = {}
    sender.name = conversations.clean_text(sender.name, 200).strip()
    try:
        for kind, value in sender.identities:
            keys[kind] = _normalized(kind, conversations.clean_text(value), region)
        if sender.email and IdentityKind.EMAIL not in keys:
            keys[IdentityKind.EMAIL] = _normalized(
                "email", conversations.clean_text(sender.email), region
            )
        if sender.phone and IdentityKind.PHONE not in keys:
            keys[IdentityKind.PHONE] = _normalized(
                "phone", conversations.clean_text(sender.phone), region
            )
    except InvalidIdentity as exc:
        raise ValidationFailed(str(exc), code="invalid_identity") from None
    for value in keys.values():
        if len(value) > 255:
            raise ValidationFailed("A sender identity is too long.", code="invalid_identity")
    return keys


def sender_known(*, organization, sender: Sender) -> tuple | None:
    """(contact_id, conversation_id or None) when resolving the sender writes nothing.

    One query: every identity is already known, on one live contact that needs no blank
    filled — exactly the case where `contact_upsert` would only match. None otherwise.
    Raises ValidationFailed for a sender without a usable identity. Reads only.
    """
    keys = sender_keys(organization=organization, sender=sender)
    if not keys:
        raise ValidationFailed("The message names no sender.", code="no_identity")
    rows = sender_lookup(organization_id=organization.pk, keys=keys)
    contacts = {row[1] for row in rows}
    if rows and len(contacts) == 1 and len({row[0] for row in rows}) == len(keys):
        _, contact_id, merged_into, name, email, phone, conversation_id, _ = rows[0]
        fills = (
            (sender.name and not name)
            or (IdentityKind.EMAIL in keys and not email)
            or (IdentityKind.PHONE in keys and not phone)
        )
        if merged_into is None and not fills:
            return contact_id, conversation_id
    return None


def _contact_upsert_for(*, organization, sender: Sender, source: str) -> tuple:
    """The sender past `sender_known`'s fast path: `contact_upsert` (race-safe) matches or
    creates and fills blanks; a new contact gets a lead with the channel as source
    (`contact.created`, `lead.created`). (contact_id, conversation_id or None)."""
    keys = sender_keys(organization=organization, sender=sender)
    email = keys.get(IdentityKind.EMAIL)
    phone = keys.get(IdentityKind.PHONE)
    result = crm.contact_upsert(
        organization=organization,
        identities=list(keys.items()),
        name=sender.name,
        email=email,
        phone=phone,
        source=source,
    )
    if result.created:
        crm.lead_create(organization=organization, contact=result.contact, source=source)
    conversation_id = (
        type(result.contact)
        .objects.filter(pk=result.contact.pk)
        .values_list("conversation__id", flat=True)
        .first()
    )
    return result.contact.pk, conversation_id


def _keyword(text: str) -> str | None:
    word = (text or "").strip().strip(".!?¡¿\"'").strip().upper()
    return word if word and len(word) <= 20 and " " not in word else None


def default_help_text(organization) -> str:
    return (
        f"{organization.name}: reply to this message and we will help you. "
        "Reply STOP to unsubscribe, START to subscribe again."
    )


def _handle_keyword(*, organization, channel, item: InboundItem, contact_id) -> None:
    keyword = _keyword(item.text)
    if keyword is None:
        return
    sets = selectors.opt_out_keywords(organization=organization, channel=item.channel)
    if keyword not in sets["stop"] | sets["start"] | sets["help"]:
        return
    contact = Contact.objects.get(pk=contact_id)
    if keyword in sets["stop"]:
        crm.contact_set_consent(
            organization=organization,
            contact=contact,
            channel=item.channel,
            opted_in=False,
            reason=f"keyword {keyword}",
            source="inbound",
            keyword=keyword,
        )
    elif keyword in sets["start"]:
        crm.contact_set_consent(
            organization=organization,
            contact=contact,
            channel=item.channel,
            opted_in=True,
            reason=f"keyword {keyword}",
            source="inbound",
            keyword=keyword,
        )
    elif channel is not None and not selectors.contact_opted_out(
        contact=contact, channel=item.channel
    ):
        conversations.message_send(
            organization=organization,
            contact=contact,
            text=organization.help_text or default_help_text(organization),
            channel=item.channel,
            channel_connection=channel,
            subject="Help",
            sender_kind=SenderKind.SYSTEM,
        )


def _exact_id(value: str | None, what: str) -> None:
    """Refuse a provider id with NUL or an unpaired surrogate (ValidationFailed, 400): ids
    are matched exactly (dedupe, status reports), so one is refused rather than altered."""
    if value and storable(value) != value:
        raise ValidationFailed(
            f"{what} contains characters that cannot be stored (NUL or an unpaired surrogate).",
            code="malformed_request",
        )


class _NothingStored(Exception):
    """A duplicate: undo what resolving its sender wrote (see `_inbound_store`)."""

    def __init__(self, recorded):
        super().__init__("duplicate")
        self.recorded = recorded


def _inbound_store(*, organization, sender: Sender, source: str, record) -> tuple:
    """(RecordedInbound, contact_id): resolve the sender, then `record(contact_id,
    conversation_id)` the message.

    A duplicate (the provider id is already stored) leaves nothing behind: when resolving
    the sender or threading wrote rows (a new contact, lead or conversation, or a filled-in
    field), they are rolled back with a savepoint, so a replay that names another sender
    creates no contact without a message. The hot path — a known sender with a
    conversation — writes nothing before the insert and takes no savepoint.
    """
    known = sender_known(organization=organization, sender=sender)
    if known is not None and known[1] is not None:
        return record(*known), known[0]
    try:
        with transaction.atomic():
            contact_id, conversation_id = known or _contact_upsert_for(
                organization=organization, sender=sender, source=source
            )
            recorded = record(contact_id, conversation_id)
            if not recorded.created:
                raise _NothingStored(recorded)
            return recorded, contact_id
    except _NothingStored as duplicate:
        return duplicate.recorded, None


def _thread_email(*, organization, item: InboundItem):
    """An email reply joins the conversation of the message it answers (In-Reply-To/References)."""
    from apps.conversations.selectors import message_find_by_email_ids

    return message_find_by_email_ids(organization=organization, message_ids=item.email_reply_ids)


_last_inbound_marks: dict = {}


def ingress_process(
    *,
    channel: ChannelConnection,
    items: list[InboundItem],
    statuses: list[StatusReport] = (),
) -> IngressResult:
    """Store a webhook's messages and apply its status reports, in one transaction.

    Each message: identity resolution → the contact's conversation → stored once per
    provider id (a duplicate stores nothing) → `message.received`; STOP/START/HELP keywords
    act on consent (HELP replies through `message_send`). Attachment downloads are queued
    after commit. Idempotent for replays. A provider id PostgreSQL cannot store is
    ValidationFailed (400) before anything is written.
    """
    for item in items:
        _exact_id(item.provider_message_id, "The message id")
        # Only looked up, never stored as given: a cleaned id simply matches nothing.
        item.reply_to_provider_id = storable(item.reply_to_provider_id or "")
        item.email_reply_ids = [storable(i) for i in item.email_reply_ids]
    for report in statuses:
        _exact_id(report.provider_message_id, "The status report's message id")
    organization = channel.organization
    result = IngressResult()
    rescore = set()
    with transaction.atomic():
        for item in items:
            reply_to = None
            if item.channel == Channel.EMAIL and item.email_reply_ids:
                reply_to = _thread_email(organization=organization, item=item)

            def record(contact_id, conversation_id, item=item, reply_to=reply_to):
                return conversations.message_record_inbound(
                    organization=organization,
                    contact_id=contact_id,
                    conversation_id=conversation_id,
                    channel=item.channel,
                    channel_connection_id=channel.pk,
                    provider=channel.provider,
                    provider_message_id=item.provider_message_id,
                    text=item.text,
                    subject=item.subject,
                    sent_at=item.sent_at,
                    reply_to_provider_id=item.reply_to_provider_id,
                    reply_to_id=reply_to.id if reply_to is not None else None,
                    email_message_id=item.email_message_id,
                    attachments=item.attachments,
                    raw=item.raw,
                )

            if reply_to is not None:
                contact_id = reply_to.contact_id
                recorded = record(contact_id, reply_to.conversation_id)
            else:
                recorded, contact_id = _inbound_store(
                    organization=organization,
                    sender=item.sender,
                    source=item.channel,
                    record=record,
                )
            if not recorded.created:
                result.duplicates += 1
                continue
            result.stored.append(recorded.message_id)
            for attachment_id in recorded.attachment_ids:
                from apps.providers.tasks import attachment_download

                enqueue_on_commit(attachment_download, str(attachment_id))
            _handle_keyword(
                organization=organization, channel=channel, item=item, contact_id=contact_id
            )
            rescore.add(contact_id)
        for contact_id in rescore:  # keyword rules read messages: off the hot path
            coalesce.enqueue_on_commit("crm.leads_rescore", organization.pk, contact_id)
        for report in statuses:
            result.statuses += 1
            status_apply(channel=channel, report=report)
    provider = channel.provider
    if result.stored:
        metrics.webhook_messages.labels(provider, "stored").inc(len(result.stored))
        _mark_inbound(channel)
    if result.duplicates:
        metrics.webhook_messages.labels(provider, "duplicate").inc(result.duplicates)
    return result


def api_inbound_record(*, organization, values: dict):
    """Record a normalized message posted to `/api/v1/messages/inbound/` (custom channels).

    Same pipeline as the webhooks, without a channel connection; dedupe is per
    (organization, channel, message_id). Returns (RecordedInbound, id of the stored original
    when this was a duplicate); a duplicate's RecordedInbound names the original's
    conversation and contact, and nothing new is stored.
    """
    from apps.conversations.services import InboundAttachment, RecordedInbound

    given = values["from"]
    sender = Sender(
        identities=[(IdentityKind.EXTERNAL, given["external_id"])]
        if given.get("external_id")
        else [],
        name=given.get("name") or "",
        email=given.get("email") or None,
        phone=given.get("phone") or None,
    )
    channel = values["channel"]
    provider_message_id = values.get("message_id") or None
    item = InboundItem(
        sender=sender,
        channel=channel,
        provider_message_id=provider_message_id,
        text=values.get("text") or "",
    )
    with transaction.atomic():
        reply_to = None
        if values.get("in_reply_to"):
            reply_to = Message.objects.filter(
                organization=organization, pk=values["in_reply_to"]
            ).first()

        def record(contact_id, conversation_id):
            return conversations.message_record_inbound(
                organization=organization,
                contact_id=contact_id,
                conversation_id=conversation_id,
                channel=channel,
                provider="api",
                provider_message_id=provider_message_id,
                text=item.text,
                subject=values.get("subject") or "",
                sent_at=values.get("sent_at"),
                reply_to_id=reply_to.id if reply_to is not None else None,
                attachments=[
                    InboundAttachment(
                        provider_url=a["url"],
                        content_type=a.get("content_type") or "",
                        size=a.get("size"),
                        filename=a.get("filename") or "",
                    )
                    for a in values.get("attachments") or []
                ],
                raw=dict(values),
            )

        recorded, contact_id = _inbound_store(
            organization=organization, sender=sender, source=channel, record=record
        )
        if not recorded.created:
            # The stored original answers for the duplicate (whatever sender the copy named).
            original = (
                Message.objects.filter(
                    organization=organization,
                    channel_connection__isnull=True,
                    channel=channel,
                    provider_message_id=provider_message_id,
                )
                .values_list("id", "conversation_id", "contact_id")
                .first()
            )
            if original is None:
                return recorded, None
            message_id, conversation_id, contact_id = original
            return RecordedInbound(None, conversation_id, contact_id), message_id
        for attachment_id in recorded.attachment_ids:
            from apps.providers.tasks import attachment_download

            enqueue_on_commit(attachment_download, str(attachment_id))
        _handle_keyword(organization=organization, channel=None, item=item, contact_id=contact_id)
        coalesce.enqueue_on_commit("crm.leads_rescore", organization.pk, contact_id)
    return recorded, None


def _mark_inbound(channel: ChannelConnection) -> None:
    """Record the channel's last inbound time, at most once a minute per process."""
    now = time.monotonic()
    if now - _last_inbound_marks.get(channel.pk, -1e9) < 60:
        return
    _last_inbound_marks[channel.pk] = now
    ChannelConnection.objects.filter(pk=channel.pk).update(last_inbound_at=timezone.now())


EARLY_STATUS_SECONDS = 600


def _early_key(channel_id, provider_message_id: str) -> str:
    # Hashed: the id comes from the request and may be any length.
    digest = hashlib.sha256(provider_message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"early-status:{channel_id}:{digest}"


def _early_status_keep(channel: ChannelConnection, report: StatusReport) -> None:
    """A status can beat our own record of the send (Twilio calls back within milliseconds
    of answering us): keep it briefly; `status_replay_early` applies it once the provider
    id is stored."""
    from django.core.cache import cache

    key = _early_key(channel.pk, report.provider_message_id)
    try:
        kept = cache.get(key) or []
        kept.append(
            {
                "status": report.status,
                "occurred_at": report.occurred_at,
                "error_code": report.error_code,
                "error_reason": report.error_reason,
                "opted_out": report.opted_out,
            }
        )
        cache.set(key, kept[-10:], timeout=EARLY_STATUS_SECONDS)
    except Exception:  # the cache is an optimization here
        logger.warning("could not keep an early status report", exc_info=True)


def status_replay_early(*, channel: ChannelConnection, provider_message_id: str | None) -> int:
    """Apply status reports that arrived before the send was recorded. Idempotent."""
    from django.core.cache import cache

    if not provider_message_id:
        return 0
    key = _early_key(channel.pk, provider_message_id)
    try:
        kept = cache.get(key) or []
        cache.delete(key)
    except Exception:
        return 0
    for item in kept:
        status_apply(
            channel=channel, report=StatusReport(provider_message_id=provider_message_id, **item)
        )
    return len(kept)


def status_apply(*, channel: ChannelConnection, report: StatusReport) -> None:
    """Apply one provider status report (monotonic, deduplicated; see message_apply_status).

    A report for a message we do not know (yet) is kept for a few minutes: it may have beaten
    the send worker's own update."""
    organization = channel.organization
    with transaction.atomic(savepoint=False):
        applied = None
        if report.status is not None:
            applied = conversations.message_apply_status(
                organization=organization,
                channel_connection_id=channel.pk,
                provider_message_id=report.provider_message_id,
                status=report.status,
                occurred_at=report.occurred_at,
                error_code=report.error_code,
                error_reason=report.error_reason,
                raw=report.raw,
                provider=channel.provider,
            )
        if applied is not None and applied.message is None and report.provider_message_id:
            _early_status_keep(channel, report)
            return
        if report.opted_out:
            message = (
                applied.message
                if applied is not None and applied.message is not None
                else Message.objects.filter(
                    channel_connection_id=channel.pk,
                    provider_message_id=report.provider_message_id,
                )
                .select_related("contact")
                .first()
            )
            if message is not None:
                crm.contact_set_consent(
                    organization=organization,
                    contact=message.contact,
                    channel=message.channel,
                    opted_in=False,
                    reason=f"{channel.get_provider_display()} {report.error_code or 'unsubscribe'}",
                    source="provider",
                )


# --- sending ----------------------------------------------------------------------------------

MAX_SEND_ATTEMPTS = 8
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 600.0
SEND_LEASE = timedelta(seconds=180)  # above the task's hard time limit
SWEEP_GRACE = timedelta(seconds=20)


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter (half to all of base·2^(n-1)), capped; at least
    what the provider asked for with Retry-After."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def _rate(channel: ChannelConnection) -> float:
    try:
        return float(
            channel.config.get("rate_per_second") or SPECS[channel.provider].rate_per_second
        )
    except (TypeError, ValueError):
        return SPECS[channel.provider].rate_per_second


def _email_context(message: Message) -> tuple[str, str, list[str]]:
    """Subject, In-Reply-To and References for an outbound email in its conversation."""
    last = (
        Message.objects.filter(
            conversation_id=message.conversation_id, channel=Channel.EMAIL, direction="in"
        )
        .exclude(email_message_id="")
        .order_by("-created_at")
        .first()
    )
    subject = message.subject
    if not subject and last is not None and last.subject:
        subject = last.subject if last.subject.lower().startswith("re:") else f"Re: {last.subject}"
    if last is None:
        return subject or message.organization.name, "", []
    references = list((last.raw or {}).get("references", [])) if isinstance(last.raw, dict) else []
    return (
        subject or message.organization.name,
        last.email_message_id,
        [*references, last.email_message_id],
    )


def _call_provider(message: Message, channel: ChannelConnection) -> SendOutcome:
    from apps.providers.adapters import mailgun, manychat, twilio, whatsapp

    api_base = selectors.channel_api_base(channel)
    try:
        if channel.provider == Provider.TWILIO:
            return twilio.send(message, channel, api_base, selectors.channel_urls(channel)[1])
        if channel.provider == Provider.WHATSAPP:
            return whatsapp.send(message, channel, api_base)
        if channel.provider == Provider.MANYCHAT:
            return manychat.send(message, channel, api_base)
        subject, in_reply_to, references = _email_context(message)
        return mailgun.send(
            message,
            channel,
            api_base,
            subject=subject,
            in_reply_to=in_reply_to,
            references=references,
        )
    except http.TransportError as exc:
        code = "timeout" if "Timeout" in str(exc) else "transport"
        return SendOutcome(retry=True, error_code=code, error_reason=str(exc)[:300])


@dataclass
class DeliverResult:
    outcome: str  # sent | failed | retry | rate_limited | skipped
    retry_in: float | None = None


def message_deliver(*, message_id) -> DeliverResult:
    """Send one queued message through its provider (run by the `sends` worker).

    Claims the row (so duplicate tasks never send concurrently), checks consent again, takes
    a rate-limit token (when none: back to `queued` for later — waiting is not failing),
    calls the provider outside any transaction, then records `sent` (with the provider id),
    a retry (transient errors, with backoff, at most MAX_SEND_ATTEMPTS attempts) or `failed`
    with the mapped reason (`message.failed`; Twilio 21610 also opts the contact out).
    Retry state lives in the row (`next_attempt_at`, `send_attempts`); `sends_sweep` re-queues
    anything whose task was lost.
    """
    if not conversations.message_claim_for_send(message_id=message_id, lease=SEND_LEASE):
        return DeliverResult("skipped")
    message = Message.objects.select_related(
        "channel_connection", "contact", "organization", "conversation"
    ).get(pk=message_id)
    organization = message.organization
    channel = message.channel_connection
    provider = channel.provider if channel is not None else ""
    if channel is None or channel.status == ChannelStatus.DISABLED:
        conversations.message_mark_failed(
            organization=organization,
            message=message,
            error_code="no_channel",
            reason="The channel connection was removed or disabled.",
            provider=provider,
        )
        metrics.sends.labels(provider, "failed").inc()
        return DeliverResult("failed")
    if selectors.contact_opted_out(contact=message.contact, channel=message.channel):
        conversations.message_mark_failed(
            organization=organization,
            message=message,
            error_code="opted_out",
            reason=f"The contact opted out of {message.channel} messages.",
            provider=provider,
        )
        metrics.sends.labels(provider, "failed").inc()
        return DeliverResult("failed")

    if (
        message.channel == Channel.WHATSAPP
        and not (message.raw or {}).get("template")
        and not whatsapp_window_open(organization=organization, conversation=message.conversation)
    ):
        # queued inside the window, but it closed while the send waited (rate limit, retries)
        conversations.message_mark_failed(
            organization=organization,
            message=message,
            error_code="whatsapp_window_closed",
            reason="The WhatsApp 24-hour window closed before the message could be sent; "
            "send an approved template instead.",
            provider=provider,
        )
        metrics.sends.labels(provider, "failed").inc()
        return DeliverResult("failed")

    rate = _rate(channel)
    wait = ratelimit.acquire(
        [
            (f"channel:{channel.pk}", rate, max(1.0, rate)),
            (f"org:{organization.pk}", ORGANIZATION_RATE_PER_SECOND, ORGANIZATION_RATE_PER_SECOND),
        ]
    )
    if wait > 0:
        conversations.message_release(message=message, at=timezone.now() + timedelta(seconds=wait))
        metrics.sends.labels(provider, "rate_limited").inc()
        return DeliverResult("rate_limited", retry_in=wait)

    outcome = _call_provider(message, channel)
    if outcome.ok:
        with transaction.atomic():
            conversations.message_mark_sent(
                organization=organization,
                message=message,
                provider_message_id=outcome.provider_message_id,
                email_message_id=(outcome.response or {}).get("sent_message_id", ""),
                provider=provider,
                response=outcome.response,
            )
        status_replay_early(channel=channel, provider_message_id=outcome.provider_message_id)
        metrics.sends.labels(provider, "sent").inc()
        return DeliverResult("sent")
    if outcome.retry and message.send_attempts < MAX_SEND_ATTEMPTS:
        delay = retry_delay(message.send_attempts, outcome.retry_after)
        conversations.message_schedule_retry(
            message=message,
            at=timezone.now() + timedelta(seconds=delay),
            error_code=outcome.error_code,
            reason=outcome.error_reason,
        )
        metrics.sends.labels(provider, "retry").inc()
        return DeliverResult("retry", retry_in=delay)
    reason = outcome.error_reason
    if outcome.retry:
        reason = f"Gave up after {message.send_attempts} attempts: {reason}"
    with transaction.atomic():
        if outcome.opted_out:
            crm.contact_set_consent(
                organization=organization,
                contact=message.contact,
                channel=message.channel,
                opted_in=False,
                reason=f"{channel.get_provider_display()} {outcome.error_code}",
                source="provider",
            )
        conversations.message_mark_failed(
            organization=organization,
            message=message,
            error_code=outcome.error_code,
            reason=reason,
            provider=provider,
            response=outcome.response,
        )
    metrics.sends.labels(provider, "failed").inc()
    return DeliverResult("failed")


def sends_sweep(*, now=None, limit: int = 500) -> list[str]:
    """Re-queue sends whose task was lost (broker outage, worker crash). Idempotent.

    A `sending` row whose lease expired goes back to `queued` (or `failed` when its attempts
    are used up); `queued` rows due for longer than a grace period are published again.
    Returns the ids published; the task's claim makes a duplicate publish harmless.
    """
    from apps.providers.tasks import message_deliver as deliver_task

    now = now or timezone.now()
    stuck = Message.objects.filter(
        direction="out", status=MessageStatus.SENDING, next_attempt_at__lt=now
    ).select_related("organization")[:limit]
    for message in stuck:
        if message.send_attempts >= MAX_SEND_ATTEMPTS:
            conversations.message_mark_failed(
                organization=message.organization,
                message=message,
                error_code="stuck",
                reason=f"Gave up after {message.send_attempts} attempts (worker lost).",
                provider="",
            )
        else:
            Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
                status=MessageStatus.QUEUED, next_attempt_at=now, updated_at=now
            )
    due = list(
        Message.objects.filter(
            direction="out",
            status=MessageStatus.QUEUED,
            next_attempt_at__lte=now - SWEEP_GRACE,
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    stuck_ids = [m.id for m in stuck if m.send_attempts < MAX_SEND_ATTEMPTS]
    published = []
    for message_id in [*due, *stuck_ids]:
        try:
            deliver_task.apply_async(args=[str(message_id)])
            published.append(str(message_id))
        except Exception:  # broker still down: the next sweep tries again
            logger.warning("sweeper could not publish %s", message_id, exc_info=True)
            break
    return published


# --- attachments ------------------------------------------------------------------------------

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024


class DownloadFailed(Exception):
    """Permanent: the URL is unusable or the provider refused."""


def _target_check(url: str) -> None:
    """Refuse `url` when private targets are not allowed and its host resolves to one.

    The same definition of "internal" as webhook deliveries (`apps.events.netguard`). A host
    that does not resolve right now is left to the GET, whose failure is retried."""
    if settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        return
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise DownloadFailed(f"not a downloadable URL: {url[:100]!r}") from None
    try:
        addresses = netguard.resolve(host, port, cached=False)
    except netguard.BlockedURL:
        return
    try:
        netguard.addresses_check(host, addresses)
    except netguard.BlockedURL as exc:
        raise DownloadFailed(f"private network addresses are not fetched: {exc}") from None


MAX_REDIRECTS = 5


def _fetch(url: str, *, headers: dict, auth, timeout, check_first: bool):
    """GET `url` (streamed), following at most MAX_REDIRECTS redirects by hand.

    Unless `WEBHOOKS_ALLOW_PRIVATE_URLS`, every redirect target (and the first URL when
    `check_first`) must not resolve to a private, loopback or link-local address: a public
    URL must not bounce the worker into the internal network. Credentials go only to the
    first URL's host. Raises DownloadFailed for a refused or unusable URL, `requests`
    errors for transient failures.
    """
    session = http.session()
    origin = urlparse(url).netloc
    for hop in range(MAX_REDIRECTS + 1):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DownloadFailed(f"not a downloadable URL: {url[:100]!r}")
        if hop or check_first:
            _target_check(url)
        response = session.get(
            url, headers=headers, auth=auth, timeout=timeout, stream=True, allow_redirects=False
        )
        if not response.is_redirect:
            return response
        response.close()
        try:
            url = urljoin(url, response.headers["Location"])
            host = urlparse(url).netloc
        except ValueError:
            raise DownloadFailed("the redirect's Location is not a URL") from None
        if host != origin:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            auth = None
    raise DownloadFailed(f"more than {MAX_REDIRECTS} redirects")


def attachment_download(*, attachment_id) -> str:
    """Fetch a pending attachment from its provider into the default storage.

    Raises `requests` errors on transient failures (the task retries); marks the attachment
    `failed` on permanent ones. Idempotent: a stored attachment is left alone.
    """
    import requests

    from apps.providers.adapters import whatsapp

    attachment = Attachment.objects.select_related(
        "message__channel_connection", "message__organization"
    ).get(pk=attachment_id)
    if attachment.status != AttachmentStatus.PENDING:
        return attachment.status
    channel = attachment.message.channel_connection
    headers: dict = {}
    auth = None
    url = attachment.provider_url
    config = channel.config if channel is not None else {}
    try:
        if (
            channel is not None
            and channel.provider == Provider.WHATSAPP
            and attachment.provider_media_id
        ):
            url, headers = whatsapp.media_url(
                channel, selectors.channel_api_base(channel), attachment.provider_media_id
            )
        elif channel is not None and channel.provider == Provider.TWILIO:
            auth = (config["account_sid"], config["auth_token"])
        response = _fetch(
            url,
            headers=headers,
            auth=auth,
            timeout=http.timeout_of(config),
            check_first=channel is None,  # a URL from the API; a provider's is its own
        )
        if 400 <= response.status_code < 500:
            raise DownloadFailed(f"HTTP {response.status_code} from the provider")
        response.raise_for_status()
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_ATTACHMENT_BYTES:
                raise DownloadFailed("larger than 25 MiB")
            chunks.append(chunk)
    except DownloadFailed as exc:
        conversations.attachment_mark(attachment=attachment, error=str(exc))
        return AttachmentStatus.FAILED
    except requests.exceptions.InvalidURL as exc:
        conversations.attachment_mark(attachment=attachment, error=str(exc))
        return AttachmentStatus.FAILED
    content_type = attachment.content_type or response.headers.get("Content-Type", "").split(";")[0]
    extension = mimetypes.guess_extension(content_type or "") or ""
    month = timezone.now().strftime("%Y/%m")
    name = default_storage.save(
        f"attachments/{month}/{attachment.id}{extension}", ContentFile(b"".join(chunks))
    )
    attachment.size = size
    attachment.content_type = content_type[:100]
    conversations.attachment_mark(attachment=attachment, stored_name=name)
    return AttachmentStatus.STORED


def attachments_sweep(*, now=None, limit: int = 200) -> list[str]:
    """Re-queue downloads still pending after 10 minutes (their task was lost)."""
    from apps.providers.tasks import attachment_download as download_task

    now = now or timezone.now()
    ids = list(
        Attachment.objects.filter(
            status=AttachmentStatus.PENDING,
            created_at__lt=now - timedelta(minutes=10),
            created_at__gt=now - timedelta(days=2),
        ).values_list("id", flat=True)[:limit]
    )
    for attachment_id in ids:
        try:
            download_task.apply_async(args=[str(attachment_id)])
        except Exception:
            logger.warning("sweeper could not publish download %s", attachment_id, exc_info=True)
            break
    return [str(i) for i in ids]
