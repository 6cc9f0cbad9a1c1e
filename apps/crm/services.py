"""CRM write actions. Each runs in one transaction and emits its events there."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.crm.models import (
    ConsentStatus,
    Contact,
    ContactConsent,
    ContactIdentity,
    IdentityKind,
    Lead,
    LeadStatus,
)
from apps.crm.normalize import InvalidIdentity, normalize_email, normalize_identity, normalize_phone
from apps.events.services import emit

# When several identities point at different contacts, the most specific one wins.
IDENTITY_PRECEDENCE = [
    IdentityKind.WHATSAPP_BSUID,
    IdentityKind.WHATSAPP_ID,
    IdentityKind.MANYCHAT_ID,
    IdentityKind.EXTERNAL,
    IdentityKind.EMAIL,
    IdentityKind.PHONE,
]


def contact_event_data(contact: Contact, **extra) -> dict:
    return {
        "contact_id": str(contact.id),
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "lifecycle_stage": contact.lifecycle_stage,
        "source": contact.source,
        "tags": list(contact.tags),
        **extra,
    }


@dataclass
class ContactUpsert:
    contact: Contact
    created: bool
    matched_by: str | None = None  # identity kind, "email" or "phone"; None when created
    changed: list[str] = field(default_factory=list)


def _lock_identities(organization_id, keys: Iterable[tuple[str, str]]) -> None:
    """Serialize concurrent upserts of the same identities (held until commit).

    Locks are taken in sorted order, so two upserts sharing several identities cannot deadlock.
    """
    hashes = sorted(
        int.from_bytes(
            hashlib.blake2b(f"{organization_id}|{k}|{v}".encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )
        for k, v in keys
    )
    with connection.cursor() as cursor:
        for h in hashes:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [h])


def _normalized_identities(
    organization, identities, email, phone
) -> tuple[dict[str, str], str | None, str | None]:
    region = organization.default_phone_region
    found: dict[str, str] = {}
    try:
        for kind, value in identities:
            if kind not in IdentityKind.values:
                raise InvalidIdentity(f"unknown identity kind {kind!r}")
            found[kind] = normalize_identity(kind, value, region=region)
        email = normalize_email(email) if email else None
        phone = normalize_phone(phone, region=region) if phone else None
    except InvalidIdentity as exc:
        raise ValidationFailed(str(exc), code="invalid_identity") from None
    if email:
        found.setdefault(IdentityKind.EMAIL, email)
    if phone:
        found.setdefault(IdentityKind.PHONE, phone)
    return found, email, phone


@transaction.atomic
def contact_upsert(
    *,
    organization,
    identities: Iterable[tuple[str, str]] = (),
    name: str = "",
    email: str | None = None,
    phone: str | None = None,
    source: str = "",
    defaults: dict | None = None,
) -> ContactUpsert:
    """Find the contact these identities describe, or create it. Safe under concurrency.

    Matching order: an identity (most specific kind first), then email, then phone. A match
    gains any identities it lacked and fills empty name/email/phone (`contact.updated`);
    a new contact gets every identity (`contact.created`). Concurrent upserts of one new
    sender create one contact. Idempotent: the same call twice returns the same contact.
    """
    keys, email, phone = _normalized_identities(organization, identities, email, phone)
    if not keys:
        raise ValidationFailed(
            "A contact needs at least one identity, email or phone.", code="no_identity"
        )
    _lock_identities(organization.pk, keys.items())

    matched_by = None
    contact = None
    rows = list(
        ContactIdentity.objects.filter(organization=organization, kind__in=list(keys))
        .select_related("contact")
        .only("kind", "value", "contact")
    )
    by_kind = {r.kind: r.contact for r in rows if keys.get(r.kind) == r.value}
    for kind in IDENTITY_PRECEDENCE:
        if kind in by_kind:
            contact, matched_by = by_kind[kind], kind
            break
    if contact is not None:
        while contact.merged_into_id:  # identities of a merged contact lead to the survivor
            contact = contact.merged_into
    live = Contact.objects.filter(organization=organization, merged_into__isnull=True)
    if contact is None and email:
        contact = live.filter(email=email).order_by("created_at").first()
        matched_by = "email" if contact else None
    if contact is None and phone:
        contact = live.filter(phone=phone).order_by("created_at").first()
        matched_by = "phone" if contact else None

    now = timezone.now()
    if contact is None:
        contact = Contact.objects.create(
            organization=organization,
            name=(name or "").strip()[:200],
            email=email,
            phone=phone,
            source=source,
            last_activity_at=now,
            **(defaults or {}),
        )
        _attach_identities(organization, contact, keys)
        emit(
            organization=organization,
            type="contact.created",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact),
        )
        return ContactUpsert(contact=contact, created=True)

    changed = []
    if name and not contact.name:
        contact.name = name.strip()[:200]
        changed.append("name")
    if email and not contact.email:
        contact.email = email
        changed.append("email")
    if phone and not contact.phone:
        contact.phone = phone
        changed.append("phone")
    contact.last_activity_at = now
    contact.save(update_fields=[*changed, "last_activity_at", "updated_at"])
    _attach_identities(organization, contact, keys, known=by_kind)
    if changed:
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact, changed=changed),
        )
    return ContactUpsert(contact=contact, created=False, matched_by=matched_by, changed=changed)


def _attach_identities(
    organization, contact: Contact, keys: dict[str, str], known: dict | None = None
) -> None:
    """Add identities the contact lacks. An identity owned by another contact stays there."""
    missing = [(k, v) for k, v in keys.items() if not known or k not in known]
    if not missing:
        return
    ContactIdentity.objects.bulk_create(
        [
            ContactIdentity(organization=organization, contact=contact, kind=k, value=v)
            for k, v in missing
        ],
        ignore_conflicts=True,
    )


@transaction.atomic
def lead_create(
    *,
    organization,
    contact: Contact,
    source: str = "",
    campaign: str = "",
    answers: dict | None = None,
) -> Lead:
    """Open a lead for a contact and emit `lead.created`. Not idempotent: callers decide when."""
    lead = Lead.objects.create(
        organization=organization,
        contact=contact,
        status=LeadStatus.NEW,
        source=source,
        campaign=campaign,
        answers=answers or {},
        last_activity_at=timezone.now(),
    )
    emit(
        organization=organization,
        type="lead.created",
        subject_type="lead",
        subject_id=lead.id,
        data={
            "lead_id": str(lead.id),
            "contact_id": str(contact.id),
            "status": lead.status,
            "score": lead.score,
            "source": lead.source,
        },
    )
    return lead


@transaction.atomic
def contact_set_consent(
    *,
    organization,
    contact: Contact,
    channel: str,
    opted_in: bool,
    reason: str = "",
    source: str = "",
    keyword: str | None = None,
) -> ContactConsent:
    """Record a contact's consent on one channel; emit `contact.opted_out` when they opt out.

    Idempotent: repeating the current state changes nothing and emits nothing.
    """
    status = ConsentStatus.OPTED_IN if opted_in else ConsentStatus.OPTED_OUT
    consent = (
        ContactConsent.objects.select_for_update().filter(contact=contact, channel=channel).first()
    )
    if consent is not None and consent.status == status:
        return consent
    now = timezone.now()
    if consent is None:
        consent = ContactConsent(organization=organization, contact=contact, channel=channel)
    consent.status, consent.changed_at, consent.reason, consent.source = (
        status,
        now,
        reason[:200],
        source,
    )
    consent.save()
    if not opted_in:
        emit(
            organization=organization,
            type="contact.opted_out",
            subject_type="contact",
            subject_id=contact.id,
            data={
                "contact_id": str(contact.id),
                "channel": channel,
                "reason": reason,
                "keyword": keyword,
            },
        )
    else:
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact, changed=[f"consent.{channel}"]),
        )
    return consent
