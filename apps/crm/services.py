"""CRM write actions. Each runs in one transaction and emits its events there, once.

Contacts (upsert with duplicate detection, create, update, merge, consent, identities),
companies, leads (create, update, rescore, qualify, disqualify, convert), pipelines and
stages, deals (create, update, move stage), tasks (create, update, complete) and notes.

Objects passed in are trusted to be loaded by the caller, but every service re-checks that
they belong to `organization` (a foreign object is `NotFound`, naming the field).
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from apps.core.choices import Channel
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.crm.models import (
    Company,
    ConsentStatus,
    Contact,
    ContactConsent,
    ContactIdentity,
    Deal,
    DealStageChange,
    DealStatus,
    IdentityKind,
    Lead,
    LeadStatus,
    LifecycleStage,
    Note,
    Pipeline,
    Stage,
    Task,
    TaskStatus,
)
from apps.crm.normalize import InvalidIdentity, normalize_email, normalize_identity, normalize_phone
from apps.crm.pipelines import pipeline_template_for
from apps.crm.scoring import lead_score_compute
from apps.events.services import emit
from apps.revenue.limits import limit_check

# When several identities point at different contacts, the most specific one wins.
IDENTITY_PRECEDENCE = [
    IdentityKind.WHATSAPP_BSUID,
    IdentityKind.WHATSAPP_ID,
    IdentityKind.MANYCHAT_ID,
    IdentityKind.EXTERNAL,
    IdentityKind.EMAIL,
    IdentityKind.PHONE,
]

# How far along the customer journey a lifecycle stage is (a merge keeps the furthest).
LIFECYCLE_RANK = {
    LifecycleStage.SUBSCRIBER: 0,
    LifecycleStage.LEAD: 1,
    LifecycleStage.OPPORTUNITY: 2,
    LifecycleStage.CHURNED: 3,
    LifecycleStage.CUSTOMER: 4,
}

MAX_TAGS = 50
MAX_CUSTOM_FIELDS = 100
MAX_NOTE_LENGTH = 20_000
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_UNSET = object()


# --- shared helpers -------------------------------------------------------------------------


def _invalid(field_name: str, message: str, *, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(f"{field_name}: {message}", code=code, details={field_name: [message]})


def _not_found(field_name: str, what: str) -> NotFound:
    message = f"{what} not found."
    return NotFound(f"{field_name}: {message}", details={field_name: [message]})


def _require_same_organization(organization, obj, field_name: str) -> None:
    if obj is not None and obj.organization_id != organization.pk:
        raise _not_found(field_name, obj._meta.verbose_name.capitalize())


def _require_member(organization, user, field_name: str) -> None:
    """Staff assigned to a record must belong to the organization."""
    if user is None:
        return
    from apps.tenancy.models import Membership

    if not Membership.objects.filter(organization=organization, user=user).exists():
        raise _not_found(field_name, "User")


def _differs(obj, key: str, value) -> bool:
    """Whether setting `key` to `value` changes `obj` (foreign keys compared by id, unloaded)."""
    field_ = obj._meta.get_field(key)
    if field_.is_relation:
        return getattr(obj, field_.attname) != (value.pk if value is not None else None)
    return getattr(obj, key) != value


def _who(user, actor: str) -> dict:
    """Who made a change, for event data: a staff user's id and/or a label ('api key n8n')."""
    return {"changed_by_id": str(user.pk) if user else None, "actor": actor or ""}


def _advisory_lock(*parts) -> None:
    """A transaction-scoped lock on an arbitrary key (released at commit or rollback)."""
    key = "|".join(str(p) for p in parts)
    value = int.from_bytes(
        hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [value])


def _clean_tags(tags: Iterable[str] | None) -> list[str]:
    """Strip, drop blanks and case-insensitive duplicates; keep the first spelling and order."""
    if tags is None:
        return []
    if isinstance(tags, str):
        raise _invalid("tags", "Expected a list of strings.")
    cleaned, seen = [], set()
    for tag in tags:
        if not isinstance(tag, str):
            raise _invalid("tags", "Expected a list of strings.")
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > 50:
            raise _invalid("tags", f"{tag[:20]!r}… is longer than 50 characters.")
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise _invalid("tags", f"At most {MAX_TAGS} tags.")
    return cleaned


def _has_nul(value) -> bool:
    """PostgreSQL stores no NUL character in text or JSON: refuse it as bad input."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _clean_json_object(value, field_name: str) -> dict:
    if not isinstance(value, Mapping):
        raise _invalid(field_name, "Expected an object.")
    if _has_nul(value):
        raise _invalid(field_name, "Text may not contain NUL characters.")
    return dict(value)


def _clean_custom_fields(value, *, allow_null_values: bool = False) -> dict:
    if value is None:
        return {}
    value = _clean_json_object(value, "custom_fields")
    if len(value) > MAX_CUSTOM_FIELDS:
        raise _invalid("custom_fields", f"At most {MAX_CUSTOM_FIELDS} fields.")
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 100:
            raise _invalid("custom_fields", "Field names are 1 to 100 characters.")
        if item is None and not allow_null_values:
            raise _invalid("custom_fields", f"{key}: null is not a value.")
    return dict(value)


def _clean_timezone(value: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _invalid("timezone", f"{value!r} is not an IANA time zone.") from None
    return value


def _clean_lifecycle(value: str) -> str:
    if value not in LifecycleStage.values:
        raise _invalid("lifecycle_stage", f"Must be one of {', '.join(LifecycleStage.values)}.")
    return value


def _clean_amount(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _invalid("amount", "Not a number.") from None
    if not amount.is_finite() or amount < 0:
        raise _invalid("amount", "Must be zero or more.")
    if amount >= Decimal("1e10"):
        raise _invalid("amount", "Too large.")
    return amount.quantize(Decimal("0.01"))


def _clean_currency(value: str | None, organization) -> str:
    currency = (value or organization.currency or "USD").strip().upper()
    if not _CURRENCY_RE.match(currency):
        raise _invalid("currency", "Use a 3-letter ISO 4217 code, e.g. USD.")
    return currency


# --- contacts: recognition ------------------------------------------------------------------


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
    where = "identities"
    try:
        for kind, value in identities:
            if kind not in IdentityKind.values:
                raise InvalidIdentity(f"unknown identity kind {kind!r}")
            found[kind] = normalize_identity(kind, value, region=region)
        where = "email"
        email = normalize_email(email) if email else None
        where = "phone"
        phone = normalize_phone(phone, region=region) if phone else None
    except InvalidIdentity as exc:
        raise ValidationFailed(
            f"{where}: {exc}", code="invalid_identity", details={where: [str(exc)]}
        ) from None
    if email:
        found.setdefault(IdentityKind.EMAIL, email)
    if phone:
        found.setdefault(IdentityKind.PHONE, phone)
    return found, email, phone


def _contact_match(organization, keys: dict[str, str], email, phone):
    """The live contact these identities describe: (contact, matched_by, identities it has).

    The matched contact's row is locked, so a merge running concurrently either finished
    (we follow `merged_into` to the survivor) or waits for us.
    """
    rows = list(
        ContactIdentity.objects.filter(organization=organization, kind__in=list(keys))
        .select_related("contact")
        .select_for_update(no_key=True, of=("contact",))
        .only("kind", "value", "contact")
    )
    by_kind = {r.kind: r.contact for r in rows if keys.get(r.kind) == r.value}
    contact, matched_by = None, None
    for kind in IDENTITY_PRECEDENCE:
        if kind in by_kind:
            contact, matched_by = by_kind[kind], kind
            break
    if contact is not None and contact.merged_into_id:
        # identities of a merged contact lead to the survivor
        contact = _contact_survivor(contact)
        by_kind = {}
    live = Contact.objects.filter(
        organization=organization, merged_into__isnull=True
    ).select_for_update(no_key=True)
    if contact is None and email:
        contact = live.filter(email=email).order_by("created_at").first()
        matched_by = "email" if contact else None
    if contact is None and phone:
        contact = live.filter(phone=phone).order_by("created_at").first()
        matched_by = "phone" if contact else None
    return contact, matched_by, by_kind


def _contact_survivor(contact: Contact) -> Contact:
    seen = set()
    while contact.merged_into_id and contact.pk not in seen:
        seen.add(contact.pk)
        contact = Contact.objects.select_for_update(no_key=True).get(pk=contact.merged_into_id)
    return contact


def _contact_fill_blanks(contact: Contact, *, name=None, email=None, phone=None) -> list[str]:
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
    return changed


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
    contact, matched_by, known = _contact_match(organization, keys, email, phone)

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

    changed = _contact_fill_blanks(contact, name=name, email=email, phone=phone)
    contact.last_activity_at = now
    contact.save(update_fields=[*changed, "last_activity_at", "updated_at"])
    _attach_identities(organization, contact, keys, known=known)
    if changed:
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact, changed=changed),
        )
    return ContactUpsert(contact=contact, created=False, matched_by=matched_by, changed=changed)


# --- contacts: consent ----------------------------------------------------------------------


def _consent_write(
    organization, contact: Contact, channel: str, *, opted_in: bool, reason: str, source: str
) -> tuple[ContactConsent, bool]:
    """Store one channel's consent; `changed` is False when it already had that status."""
    if channel not in Channel.values:
        raise _invalid("consent", f"Unknown channel {channel!r}.")
    status = ConsentStatus.OPTED_IN if opted_in else ConsentStatus.OPTED_OUT
    consent = (
        ContactConsent.objects.select_for_update().filter(contact=contact, channel=channel).first()
    )
    if consent is not None and consent.status == status:
        return consent, False
    if consent is None:
        consent = ContactConsent(organization=organization, contact=contact, channel=channel)
    consent.status, consent.changed_at = status, timezone.now()
    consent.reason, consent.source = (reason or "")[:200], (source or "")[:32]
    consent.save()
    return consent, True


def _emit_opted_out(organization, contact, channel, reason, keyword=None) -> None:
    emit(
        organization=organization,
        type="contact.opted_out",
        subject_type="contact",
        subject_id=contact.id,
        data={
            "contact_id": str(contact.id),
            "channel": channel,
            "reason": reason or "",
            "keyword": keyword,
        },
    )


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
    _require_same_organization(organization, contact, "contact_id")
    consent, changed = _consent_write(
        organization, contact, channel, opted_in=opted_in, reason=reason, source=source
    )
    if not changed:
        return consent
    if not opted_in:
        _emit_opted_out(organization, contact, channel, reason, keyword)
    else:
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact, changed=[f"consent.{channel}"]),
        )
    return consent


def _clean_consent(consent: Mapping | None) -> dict[str, tuple[bool, str]]:
    """`{channel: {"opted_in": bool, "reason": str}}` → `{channel: (opted_in, reason)}`."""
    if not consent:
        return {}
    if not isinstance(consent, Mapping):
        raise _invalid("consent", "Expected an object keyed by channel.")
    cleaned = {}
    for channel, value in consent.items():
        if channel not in Channel.values:
            raise _invalid("consent", f"Unknown channel {channel!r}.")
        if not isinstance(value, Mapping) or not isinstance(value.get("opted_in"), bool):
            raise _invalid("consent", f"{channel}: expected {{'opted_in': true|false}}.")
        cleaned[channel] = (value["opted_in"], str(value.get("reason") or "")[:200])
    return cleaned


def _apply_consent(organization, contact, consent, source) -> tuple[list[str], list]:
    """Write consent changes; return (changed opt-ins for contact.updated, opt-outs)."""
    opted_in, opted_out = [], []
    for channel, (wants_in, reason) in consent.items():
        _, changed = _consent_write(
            organization, contact, channel, opted_in=wants_in, reason=reason, source=source
        )
        if changed:
            if wants_in:
                opted_in.append(f"consent.{channel}")
            else:
                opted_out.append((channel, reason))
    return opted_in, opted_out


# --- contacts: create, update, merge --------------------------------------------------------


@transaction.atomic
def contact_create(
    *,
    organization,
    name: str = "",
    email: str | None = None,
    phone: str | None = None,
    identities: Iterable[tuple[str, str]] = (),
    tags: Sequence[str] | None = None,
    custom_fields: Mapping | None = None,
    lifecycle_stage: str | None = None,
    source: str = "",
    owner=None,
    company: Company | None = None,
    timezone_name: str = "",
    consent: Mapping | None = None,
    consent_source: str = "api",
) -> ContactUpsert:
    """Create a contact, or find the one it duplicates (identity, then email, then phone).

    On a match nothing is overwritten: blanks are filled (name, email, phone, owner,
    company, time zone), tags are added and missing custom fields set; `matched_by` says how
    it matched. Emits `contact.created`, or one `contact.updated` when the match changed;
    plus `contact.opted_out` per channel opted out. Idempotent for the same arguments.
    """
    tags = _clean_tags(tags)
    custom_fields = _clean_custom_fields(custom_fields)
    lifecycle_stage = _clean_lifecycle(lifecycle_stage) if lifecycle_stage else None
    timezone_name = _clean_timezone(timezone_name)
    consent = _clean_consent(consent)
    _require_member(organization, owner, "owner_id")
    _require_same_organization(organization, company, "company_id")
    name = (name or "").strip()
    if len(name) > 200:
        raise _invalid("name", "At most 200 characters.")

    keys, email, phone = _normalized_identities(organization, identities, email, phone)
    if not keys:
        raise ValidationFailed(
            "A contact needs at least one identity, email or phone.",
            code="no_identity",
            details={"email": ["Give an email, a phone or an identity."]},
        )
    _lock_identities(organization.pk, keys.items())
    contact, matched_by, known = _contact_match(organization, keys, email, phone)
    now = timezone.now()

    if contact is None:
        limit_check(organization=organization, limit="contacts")
        contact = Contact.objects.create(
            organization=organization,
            name=name,
            email=email,
            phone=phone,
            tags=tags,
            custom_fields=custom_fields,
            lifecycle_stage=lifecycle_stage or LifecycleStage.LEAD,
            source=(source or "")[:32],
            owner=owner,
            company=company,
            timezone=timezone_name,
            last_activity_at=now,
        )
        _attach_identities(organization, contact, keys)
        _, opted_out = _apply_consent(organization, contact, consent, consent_source)
        emit(
            organization=organization,
            type="contact.created",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact),
        )
        for channel, reason in opted_out:
            _emit_opted_out(organization, contact, channel, reason)
        return ContactUpsert(contact=contact, created=True)

    changed = _contact_fill_blanks(contact, name=name, email=email, phone=phone)
    new_tags = [t for t in tags if t.casefold() not in {x.casefold() for x in contact.tags}]
    if new_tags:
        contact.tags = [*contact.tags, *new_tags][:MAX_TAGS]
        changed.append("tags")
    missing = {k: v for k, v in custom_fields.items() if k not in contact.custom_fields}
    if missing:
        contact.custom_fields = {**contact.custom_fields, **missing}
        changed.append("custom_fields")
    for attr, value in (("owner", owner), ("company", company), ("timezone", timezone_name)):
        if value and not getattr(contact, contact._meta.get_field(attr).attname):
            setattr(contact, attr, value)
            changed.append(attr)
    contact.last_activity_at = now
    contact.save(update_fields=[*changed, "last_activity_at", "updated_at"])
    _attach_identities(organization, contact, keys, known=known)
    opted_in, opted_out = _apply_consent(organization, contact, consent, consent_source)
    changed += opted_in
    if changed:
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact, changed=changed),
        )
    for channel, reason in opted_out:
        _emit_opted_out(organization, contact, channel, reason)
    return ContactUpsert(contact=contact, created=False, matched_by=matched_by, changed=changed)


CONTACT_UPDATABLE = (
    "name",
    "email",
    "phone",
    "tags",
    "custom_fields",
    "lifecycle_stage",
    "source",
    "owner",
    "company",
    "timezone",
)


def _replace_identity(organization, contact, kind: str, old: str | None, new: str | None) -> None:
    """The email/phone field is the contact's canonical one: its identity follows it."""
    if old == new:
        return
    if new:
        _lock_identities(organization.pk, [(kind, new)])
        owner_id = (
            ContactIdentity.objects.filter(organization=organization, kind=kind, value=new)
            .values_list("contact_id", flat=True)
            .first()
        )
        if owner_id is not None and owner_id != contact.pk:
            raise Conflict(
                f"{kind}: {new} belongs to another contact; merge the two contacts instead.",
                code="duplicate_contact",
                details={kind: ["belongs to another contact"], "contact_id": str(owner_id)},
            )
    if old:
        ContactIdentity.objects.filter(contact=contact, kind=kind, value=old).delete()
    if new:
        _attach_identities(organization, contact, {kind: new})


@transaction.atomic
def contact_update(
    *,
    organization,
    contact: Contact,
    data: Mapping,
    consent: Mapping | None = None,
    consent_source: str = "api",
) -> Contact:
    """Change a contact's fields (only the keys present in `data`) and consent per channel.

    `tags` replaces the list; `custom_fields` is merged (a `None` value removes the key);
    `email`/`phone` are normalized, and their identity follows them (taking an email or
    phone that identifies another contact is a Conflict: merge instead). Emits one
    `contact.updated` listing what changed (nothing changed: no event), and
    `contact.opted_out` per channel opted out. Idempotent.
    """
    _require_same_organization(organization, contact, "contact_id")
    unknown = set(data) - set(CONTACT_UPDATABLE)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Not a contact field.")
    consent = _clean_consent(consent)
    contact = Contact.objects.select_for_update(no_key=True).get(pk=contact.pk)
    if contact.merged_into_id:
        raise Conflict(
            "This contact was merged into another; update the survivor.",
            code="contact_merged",
            details={"merged_into": str(contact.merged_into_id)},
        )
    region = organization.default_phone_region
    updates: dict = {}
    for key, value in data.items():
        if key == "name":
            value = (value or "").strip()
            if len(value) > 200:
                raise _invalid("name", "At most 200 characters.")
        elif key == "email":
            try:
                value = normalize_email(value) if value else None
            except InvalidIdentity as exc:
                raise _invalid("email", str(exc)) from None
        elif key == "phone":
            try:
                value = normalize_phone(value, region=region) if value else None
            except InvalidIdentity as exc:
                raise _invalid("phone", str(exc)) from None
        elif key == "tags":
            value = _clean_tags(value)
        elif key == "custom_fields":
            patch = _clean_custom_fields(value, allow_null_values=True)
            value = {**contact.custom_fields, **patch}
            for k, v in patch.items():
                if v is None:
                    value.pop(k, None)
        elif key == "lifecycle_stage":
            value = _clean_lifecycle(value)
        elif key == "source":
            value = (value or "")[:32]
        elif key == "owner":
            _require_member(organization, value, "owner_id")
        elif key == "company":
            _require_same_organization(organization, value, "company_id")
        elif key == "timezone":
            value = _clean_timezone(value)
        if _differs(contact, key, value):
            updates[key] = value

    if "email" in updates:
        _replace_identity(
            organization, contact, IdentityKind.EMAIL, contact.email, updates["email"]
        )
    if "phone" in updates:
        _replace_identity(
            organization, contact, IdentityKind.PHONE, contact.phone, updates["phone"]
        )
    for key, value in updates.items():
        setattr(contact, key, value)
    changed = list(updates)
    if changed:
        contact.save(update_fields=[*changed, "updated_at"])
    opted_in, opted_out = _apply_consent(organization, contact, consent, consent_source)
    changed += opted_in
    if changed:
        emit(
            organization=organization,
            type="contact.updated",
            subject_type="contact",
            subject_id=contact.id,
            data=contact_event_data(contact, changed=changed),
        )
    for channel, reason in opted_out:
        _emit_opted_out(organization, contact, channel, reason)
    return contact


@transaction.atomic
def contact_identity_add(*, organization, contact: Contact, kind: str, value: str):
    """Teach the CRM another way to recognize `contact`. Idempotent for the same pair.

    An identity that already identifies another contact is a Conflict (merge them instead).
    """
    _require_same_organization(organization, contact, "contact_id")
    if kind not in IdentityKind.values:
        raise _invalid("kind", f"Must be one of {', '.join(IdentityKind.values)}.")
    try:
        value = normalize_identity(kind, value, region=organization.default_phone_region)
    except InvalidIdentity as exc:
        raise _invalid("value", str(exc)) from None
    _lock_identities(organization.pk, [(kind, value)])
    existing = ContactIdentity.objects.filter(
        organization=organization, kind=kind, value=value
    ).first()
    if existing is not None:
        if existing.contact_id != contact.pk:
            raise Conflict(
                f"{kind} {value} identifies another contact; merge the two contacts instead.",
                code="duplicate_contact",
                details={"value": ["identifies another contact"]},
            )
        return existing
    return ContactIdentity.objects.create(
        organization=organization, contact=contact, kind=kind, value=value
    )


def _merge_fields(survivor: Contact, loser: Contact) -> list[str]:
    changed = _contact_fill_blanks(survivor, name=loser.name, email=loser.email, phone=loser.phone)
    for attr in ("company_id", "owner_id", "timezone", "source"):
        if getattr(loser, attr) and not getattr(survivor, attr):
            setattr(survivor, attr, getattr(loser, attr))
            changed.append(attr.removesuffix("_id"))
    known = {t.casefold() for t in survivor.tags}
    extra_tags = [t for t in loser.tags if t.casefold() not in known]
    if extra_tags:
        survivor.tags = [*survivor.tags, *extra_tags][:MAX_TAGS]
        changed.append("tags")
    extra_fields = {k: v for k, v in loser.custom_fields.items() if k not in survivor.custom_fields}
    if extra_fields:
        survivor.custom_fields = {**survivor.custom_fields, **extra_fields}
        changed.append("custom_fields")
    if LIFECYCLE_RANK.get(loser.lifecycle_stage, 0) > LIFECYCLE_RANK.get(
        survivor.lifecycle_stage, 0
    ):
        survivor.lifecycle_stage = loser.lifecycle_stage
        changed.append("lifecycle_stage")
    if loser.last_activity_at and (
        not survivor.last_activity_at or loser.last_activity_at > survivor.last_activity_at
    ):
        survivor.last_activity_at = loser.last_activity_at
    return changed


def _merge_consents(survivor: Contact, loser: Contact) -> None:
    """Per channel, the person's most recent choice wins (an opt-out on a tie)."""
    kept = {c.channel: c for c in ContactConsent.objects.filter(contact=survivor)}
    for consent in ContactConsent.objects.filter(contact=loser):
        mine = kept.get(consent.channel)
        newer = mine is None or (consent.changed_at, consent.status == "opted_out") > (
            mine.changed_at,
            mine.status == "opted_out",
        )
        if mine is not None and newer:
            mine.delete()
        if newer:
            consent.contact = survivor
            consent.save(update_fields=["contact", "updated_at"])
        else:
            consent.delete()


def _merge_conversations(survivor: Contact, loser: Contact) -> None:
    """One conversation per contact: the loser's messages join the survivor's conversation."""
    from apps.conversations.models import Conversation, Message, ReadState

    theirs = Conversation.objects.select_for_update().filter(contact=loser).first()
    mine = Conversation.objects.select_for_update().filter(contact=survivor).first()
    if theirs is None:
        Message.objects.filter(contact=loser).update(contact=survivor)
        return
    if mine is None:
        theirs.contact = survivor
        theirs.save(update_fields=["contact", "updated_at"])
        Message.objects.filter(contact=loser).update(contact=survivor)
        return
    Message.objects.filter(conversation=theirs).update(conversation=mine, contact=survivor)
    Message.objects.filter(contact=loser).update(contact=survivor)
    readers = set(ReadState.objects.filter(conversation=mine).values_list("user_id", flat=True))
    ReadState.objects.filter(conversation=theirs).exclude(user_id__in=readers).update(
        conversation=mine
    )
    _move_reverse_relations(
        Conversation, theirs, mine, skip={(Message, "conversation"), (ReadState, "conversation")}
    )

    def latest(a, b):
        return max((x for x in (a, b) if x), default=None)

    def earliest(a, b):
        return min((x for x in (a, b) if x), default=None)

    if theirs.last_message_at and (
        not mine.last_message_at or theirs.last_message_at > mine.last_message_at
    ):
        mine.last_message_at = theirs.last_message_at
        mine.last_message_preview = theirs.last_message_preview
    if theirs.last_inbound_at and (
        not mine.last_inbound_at or theirs.last_inbound_at > mine.last_inbound_at
    ):
        mine.last_inbound_at = theirs.last_inbound_at
        mine.last_inbound_channel = theirs.last_inbound_channel
        mine.last_channel_connection_id = theirs.last_channel_connection_id
    mine.waiting_since = earliest(mine.waiting_since, theirs.waiting_since)
    mine.first_response_at = earliest(mine.first_response_at, theirs.first_response_at)
    mine.escalated_at = latest(mine.escalated_at, theirs.escalated_at)
    if mine.assignee_id is None:
        mine.assignee_id = theirs.assignee_id
    if mine.waiting_since and mine.status != "open":
        mine.status, mine.snoozed_until, mine.resolved_at = "open", None, None
    mine.save()
    theirs.delete()


def _move_reverse_relations(model, old, new, *, skip: set) -> None:
    """Point every foreign key at `old` to `new` (relations other apps may add later too)."""
    for rel in model._meta.related_objects:
        if rel.many_to_many or (rel.related_model, rel.field.name) in skip:
            continue
        if rel.related_model is model:
            continue
        manager = rel.related_model._base_manager
        if rel.one_to_one:
            if not manager.filter(**{rel.field.name: new}).exists():
                manager.filter(**{rel.field.name: old}).update(**{rel.field.name: new})
            continue
        manager.filter(**{rel.field.name: old}).update(**{rel.field.name: new})


@transaction.atomic
def contact_merge(
    *, organization, survivor: Contact, duplicates: Sequence[Contact], merged_by=None
) -> Contact:
    """Merge `duplicates` into `survivor`; they stay as records marked `merged_into`.

    Moves identities, leads, deals, tasks, notes, bookings, consents (per channel the most
    recent choice wins) and conversation messages (into the survivor's one conversation),
    plus any other row pointing at a duplicate. The survivor keeps its values and fills its
    blanks from the duplicates (tags and custom fields are unioned). Emits one
    `contact.updated` with `merged_contact_ids`. Not repeatable: merging a merged contact
    is a Conflict.
    """
    from apps.conversations.models import Conversation

    ids = [survivor.pk, *(d.pk for d in duplicates)]
    if len(ids) < 2:
        raise _invalid("duplicates", "Choose at least one contact to merge.")
    if len(set(ids)) != len(ids):
        raise _invalid("duplicates", "A contact cannot be merged into itself.")
    locked = {
        c.pk: c
        for c in Contact.objects.select_for_update()
        .filter(organization=organization, pk__in=ids)
        .order_by("pk")
    }
    if len(locked) != len(ids):
        raise _not_found("duplicates", "Contact")
    merged = [c for c in locked.values() if c.merged_into_id]
    if merged:
        raise Conflict(
            f"{merged[0]} was already merged into another contact.",
            code="contact_merged",
            details={"contact_id": str(merged[0].pk)},
        )
    survivor = locked[survivor.pk]
    losers = sorted((locked[d.pk] for d in duplicates), key=lambda c: c.created_at)
    changed: list[str] = []
    skip = {
        (ContactConsent, "contact"),
        (Conversation, "contact"),
        (Contact, "merged_into"),
    }
    for loser in losers:
        changed += [f for f in _merge_fields(survivor, loser) if f not in changed]
        _merge_consents(survivor, loser)
        _merge_conversations(survivor, loser)
        _move_reverse_relations(Contact, loser, survivor, skip=skip)
        Contact.objects.filter(merged_into=loser).update(merged_into=survivor)
        loser.merged_into = survivor
        loser.save(update_fields=["merged_into", "updated_at"])
    survivor.save()
    emit(
        organization=organization,
        type="contact.updated",
        subject_type="contact",
        subject_id=survivor.id,
        data=contact_event_data(
            survivor,
            changed=changed,
            merged_contact_ids=[str(c.pk) for c in losers],
        ),
    )
    return survivor


# --- companies ------------------------------------------------------------------------------


def _company_values(data: Mapping) -> dict:
    values = dict(data)
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if not values["name"]:
            raise _invalid("name", "This field may not be blank.")
    if "domain" in values:
        values["domain"] = (values["domain"] or "").strip().lower().removeprefix("www.")
    return values


@transaction.atomic
def company_create(*, organization, name: str, **data) -> Company:
    """Create a company; a domain already used in the organization is a Conflict."""
    values = _company_values({"name": name, **data})
    try:
        with transaction.atomic():
            return Company.objects.create(organization=organization, **values)
    except IntegrityError:
        raise Conflict(
            f"domain: {values.get('domain')} is already a company here.",
            code="duplicate_company",
            details={"domain": ["already used"]},
        ) from None


@transaction.atomic
def company_update(*, organization, company: Company, data: Mapping) -> Company:
    _require_same_organization(organization, company, "company_id")
    for key, value in _company_values(data).items():
        setattr(company, key, value)
    try:
        with transaction.atomic():
            company.save()
    except IntegrityError:
        raise Conflict(
            f"domain: {company.domain} is already a company here.",
            code="duplicate_company",
            details={"domain": ["already used"]},
        ) from None
    return company


# --- leads ----------------------------------------------------------------------------------


def _lead_event_data(lead: Lead, **extra) -> dict:
    return {
        "lead_id": str(lead.id),
        "contact_id": str(lead.contact_id),
        "status": lead.status,
        "score": lead.score,
        "source": lead.source,
        "deal_id": str(lead.deal_id) if lead.deal_id else None,
        **extra,
    }


AUTO_MOVABLE_LEAD_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED)


def _lead_score_and_apply(lead: Lead) -> list[str]:
    """Recompute the score; auto-qualify/disqualify a new or contacted lead at a threshold.

    Writes the lead when something changed. Returns the events to emit (in order), so
    callers can emit them after their own event.
    """
    result = lead_score_compute(lead=lead)
    now = timezone.now()
    changed = []
    if result.score != lead.score or result.reasons != lead.score_reasons:
        lead.score, lead.score_reasons = result.score, result.reasons
        changed += ["score", "score_reasons"]
    lead.scored_at = now
    changed.append("scored_at")
    events = []
    if lead.status in AUTO_MOVABLE_LEAD_STATUSES:
        niche = lead.organization.primary_niche
        if lead.score >= niche.qualify_threshold:
            lead.status, lead.qualified_at = LeadStatus.QUALIFIED, now
            changed += ["status", "qualified_at"]
            events.append("lead.qualified")
        elif lead.score <= niche.disqualify_threshold:
            lead.status = LeadStatus.DISQUALIFIED
            lead.disqualified_reason = (
                f"Score {lead.score} is at or below {niche.disqualify_threshold}."
            )
            changed += ["status", "disqualified_reason"]
            events.append("lead.disqualified")
    if lead.pk is not None and not lead._state.adding:
        lead.save(update_fields=[*changed, "updated_at"])
    return events


def _emit_lead(organization, lead: Lead, type_: str, **extra) -> None:
    emit(
        organization=organization,
        type=type_,
        subject_type="lead",
        subject_id=lead.id,
        data=_lead_event_data(lead, **extra),
    )


@transaction.atomic
def lead_create(
    *,
    organization,
    contact: Contact,
    source: str = "",
    campaign: str = "",
    answers: dict | None = None,
    owner=None,
) -> Lead:
    """Open a lead for a contact, scored at once; emit `lead.created` (with its score).

    A score reaching a niche threshold also emits `lead.qualified` / `lead.disqualified`.
    Not idempotent: callers decide when a contact shows new buying interest.
    """
    _require_same_organization(organization, contact, "contact_id")
    _require_member(organization, owner, "owner_id")
    if answers is not None:
        answers = _clean_json_object(answers, "answers")
    lead = Lead(
        organization=organization,
        contact=contact,
        status=LeadStatus.NEW,
        source=(source or "")[:32],
        campaign=(campaign or "")[:100],
        answers=dict(answers or {}),
        owner=owner,
        last_activity_at=timezone.now(),
    )
    follow_ups = _lead_score_and_apply(lead)
    lead.save()
    emit(
        organization=organization,
        type="lead.created",
        subject_type="lead",
        subject_id=lead.id,
        data=_lead_event_data(lead, reasons=lead.score_reasons),
    )
    for type_ in follow_ups:
        _emit_lead(organization, lead, type_, reasons=lead.score_reasons)
    return lead


def _locked_lead(organization, lead: Lead) -> Lead:
    _require_same_organization(organization, lead, "lead_id")
    locked = Lead.objects.select_for_update(no_key=True).select_related("contact").get(pk=lead.pk)
    locked.organization = organization
    return locked


@transaction.atomic
def lead_rescore(*, lead: Lead) -> Lead:
    """Recompute the lead's score from its niche rules (after new answers, messages, bookings).

    A new or contacted lead crossing a threshold is qualified / disqualified (and the event
    emitted). Idempotent: unchanged inputs emit nothing (only `scored_at` moves).
    """
    organization = lead.organization
    lead = _locked_lead(organization, lead)
    for type_ in _lead_score_and_apply(lead):
        _emit_lead(organization, lead, type_, reasons=lead.score_reasons)
    return lead


def contact_leads_rescore(*, organization, contact: Contact) -> list[Lead]:
    """Rescore the contact's open leads (new, contacted, qualified); for the message ingress."""
    leads = Lead.objects.filter(
        organization=organization,
        contact=contact,
        status__in=[*AUTO_MOVABLE_LEAD_STATUSES, LeadStatus.QUALIFIED],
    ).select_related("organization__primary_niche")
    return [lead_rescore(lead=lead) for lead in leads]


LEAD_UPDATABLE = ("answers", "owner", "campaign", "source")


@transaction.atomic
def lead_update(*, organization, lead: Lead, data: Mapping) -> Lead:
    """Change a lead's answers (merged; a None value removes one), owner, campaign or source.

    New answers or source rescore the lead (which may qualify/disqualify it). Idempotent.
    """
    unknown = set(data) - set(LEAD_UPDATABLE)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Not a lead field.")
    lead = _locked_lead(organization, lead)
    changed = []
    if "answers" in data:
        _clean_json_object(data["answers"], "answers")
        answers = {**lead.answers, **data["answers"]}
        for key, value in data["answers"].items():
            if value is None:
                answers.pop(key, None)
        if answers != lead.answers:
            lead.answers = answers
            changed.append("answers")
    if "owner" in data:
        _require_member(organization, data["owner"], "owner_id")
        if _differs(lead, "owner", data["owner"]):
            lead.owner = data["owner"]
            changed.append("owner")
    for key in ("campaign", "source"):
        if key in data and getattr(lead, key) != (data[key] or ""):
            setattr(lead, key, (data[key] or "")[: 100 if key == "campaign" else 32])
            changed.append(key)
    if not changed:
        return lead
    lead.last_activity_at = timezone.now()
    lead.save(update_fields=[*changed, "last_activity_at", "updated_at"])
    if {"answers", "source"} & set(changed):
        for type_ in _lead_score_and_apply(lead):
            _emit_lead(organization, lead, type_, reasons=lead.score_reasons)
    return lead


def _refuse_converted(lead: Lead) -> None:
    if lead.status == LeadStatus.CONVERTED:
        raise Conflict(
            "This lead was already converted.",
            code="lead_converted",
            details={"deal_id": str(lead.deal_id) if lead.deal_id else None},
        )


@transaction.atomic
def lead_qualify(
    *, organization, lead: Lead, reason: str = "", changed_by=None, actor: str = ""
) -> Lead:
    """Qualify a lead by hand (also a disqualified one); emit `lead.qualified`.

    Idempotent: an already qualified lead is returned unchanged, with no event. A converted
    lead is a Conflict.
    """
    lead = _locked_lead(organization, lead)
    _refuse_converted(lead)
    if lead.status == LeadStatus.QUALIFIED:
        return lead
    lead.status, lead.qualified_at = LeadStatus.QUALIFIED, timezone.now()
    lead.disqualified_reason = ""
    lead.last_activity_at = lead.qualified_at
    lead.save(
        update_fields=[
            "status",
            "qualified_at",
            "disqualified_reason",
            "last_activity_at",
            "updated_at",
        ]
    )
    _emit_lead(
        organization,
        lead,
        "lead.qualified",
        reasons=lead.score_reasons,
        reason=(reason or "")[:200],
        **_who(changed_by, actor),
    )
    return lead


@transaction.atomic
def lead_disqualify(
    *, organization, lead: Lead, reason: str, changed_by=None, actor: str = ""
) -> Lead:
    """Disqualify a lead with a reason; emit `lead.disqualified`.

    Idempotent: an already disqualified lead is unchanged. A converted lead is a Conflict.
    """
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", "Say why the lead is disqualified.")
    if len(reason) > 200:
        raise _invalid("reason", "At most 200 characters.")
    lead = _locked_lead(organization, lead)
    _refuse_converted(lead)
    if lead.status == LeadStatus.DISQUALIFIED:
        return lead
    lead.status, lead.disqualified_reason = LeadStatus.DISQUALIFIED, reason
    lead.last_activity_at = timezone.now()
    lead.save(update_fields=["status", "disqualified_reason", "last_activity_at", "updated_at"])
    _emit_lead(organization, lead, "lead.disqualified", reason=reason, **_who(changed_by, actor))
    return lead


@dataclass
class LeadConversion:
    lead: Lead
    deal: Deal


@transaction.atomic
def lead_convert(
    *,
    organization,
    lead: Lead,
    title: str = "",
    amount=None,
    currency: str | None = None,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
    expected_close_date: date | None = None,
    owner=None,
    changed_by=None,
    actor: str = "",
) -> LeadConversion:
    """Turn a lead into a deal for its contact (the contact becomes an opportunity).

    Emits `deal.created` (see `deal_create`), `contact.updated` when the lifecycle stage
    moves, then `lead.converted` with the deal id. A converted lead is a Conflict.
    """
    lead = _locked_lead(organization, lead)
    _refuse_converted(lead)
    contact = lead.contact
    deal = deal_create(
        organization=organization,
        title=title,
        contact=contact,
        lead=lead,
        pipeline=pipeline,
        stage=stage,
        amount=amount,
        currency=currency,
        expected_close_date=expected_close_date,
        owner=owner or lead.owner,
        source=lead.source,
        changed_by=changed_by,
        actor=actor,
    )
    now = timezone.now()
    lead.status, lead.converted_at, lead.deal = LeadStatus.CONVERTED, now, deal
    lead.last_activity_at = now
    lead.save(update_fields=["status", "converted_at", "deal", "last_activity_at", "updated_at"])
    _advance_lifecycle(organization, contact, LifecycleStage.OPPORTUNITY)
    _emit_lead(organization, lead, "lead.converted", **_who(changed_by, actor))
    return LeadConversion(lead=lead, deal=deal)


def _advance_lifecycle(organization, contact: Contact | None, stage: str) -> None:
    """Move the contact forward in its lifecycle (never back); emit `contact.updated` if so."""
    if contact is None:
        return
    contact = Contact.objects.select_for_update(no_key=True).get(pk=contact.pk)
    if LIFECYCLE_RANK[stage] <= LIFECYCLE_RANK.get(contact.lifecycle_stage, 0):
        return
    contact.lifecycle_stage = stage
    contact.save(update_fields=["lifecycle_stage", "updated_at"])
    emit(
        organization=organization,
        type="contact.updated",
        subject_type="contact",
        subject_id=contact.id,
        data=contact_event_data(contact, changed=["lifecycle_stage"]),
    )


# --- pipelines and stages -------------------------------------------------------------------


@transaction.atomic
def pipeline_ensure_default(*, organization) -> Pipeline:
    """The organization's default pipeline, created from its niche's template when missing.

    Race-safe and idempotent: concurrent callers get the same pipeline. When no pipeline is
    default but one already has the template's name, that one becomes the default.
    """
    existing = Pipeline.objects.filter(organization=organization, is_default=True).first()
    if existing is not None:
        return existing
    _advisory_lock(organization.pk, "pipeline_default")
    existing = Pipeline.objects.filter(organization=organization, is_default=True).first()
    if existing is not None:
        return existing
    niche = organization.primary_niche
    template = pipeline_template_for(niche.slug if niche else None)
    candidate = Pipeline.objects.filter(organization=organization, name=template.name).first()
    if candidate is not None:
        candidate.is_default = True
        candidate.save(update_fields=["is_default", "updated_at"])
        return candidate
    pipeline = Pipeline.objects.create(
        organization=organization, name=template.name, niche=niche, is_default=True
    )
    Stage.objects.bulk_create(
        [
            Stage(
                organization=organization,
                pipeline=pipeline,
                name=s.name,
                order=i,
                probability=s.probability,
                is_won=s.is_won,
                is_lost=s.is_lost,
                max_idle_days=s.max_idle_days,
            )
            for i, s in enumerate(template.stages, start=1)
        ]
    )
    return pipeline


@transaction.atomic
def pipeline_create(
    *, organization, name: str, niche=None, stages: Sequence[Mapping] = ()
) -> Pipeline:
    """Create a pipeline with optional ordered stages (`{name, probability, is_won, ...}`)."""
    name = (name or "").strip()
    if not name:
        raise _invalid("name", "This field may not be blank.")
    if Pipeline.objects.filter(organization=organization, name=name).exists():
        raise Conflict(
            f"name: a pipeline named {name!r} exists.",
            code="duplicate_pipeline",
            details={"name": ["already used"]},
        )
    pipeline = Pipeline.objects.create(organization=organization, name=name, niche=niche)
    for order, values in enumerate(stages, start=1):
        stage_save(organization=organization, pipeline=pipeline, data={"order": order, **values})
    return pipeline


@transaction.atomic
def pipeline_set_default(*, organization, pipeline: Pipeline) -> Pipeline:
    """Make `pipeline` the organization's default (the previous default stops being it)."""
    _require_same_organization(organization, pipeline, "pipeline_id")
    _advisory_lock(organization.pk, "pipeline_default")
    Pipeline.objects.filter(organization=organization, is_default=True).exclude(
        pk=pipeline.pk
    ).update(is_default=False)
    if not pipeline.is_default:
        pipeline.is_default = True
        pipeline.save(update_fields=["is_default", "updated_at"])
    return pipeline


@transaction.atomic
def pipeline_update(*, organization, pipeline: Pipeline, data: Mapping) -> Pipeline:
    """Rename a pipeline or change its niche. Idempotent."""
    _require_same_organization(organization, pipeline, "pipeline_id")
    unknown = set(data) - {"name", "niche"}
    if unknown:
        raise _invalid(sorted(unknown)[0], "Not a pipeline field.")
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if "name" in data:
        name = (data["name"] or "").strip()
        if not name:
            raise _invalid("name", "This field may not be blank.")
        clash = Pipeline.objects.filter(organization=organization, name=name).exclude(
            pk=pipeline.pk
        )
        if clash.exists():
            raise _invalid("name", f"A pipeline named {name!r} exists.")
        pipeline.name = name
    if "niche" in data:
        pipeline.niche = data["niche"]
    pipeline.save()
    return pipeline


STAGE_FIELDS = ("name", "order", "probability", "is_won", "is_lost", "max_idle_days")


@transaction.atomic
def stage_save(
    *, organization, pipeline: Pipeline, data: Mapping, stage: Stage | None = None
) -> Stage:
    """Create or change one stage of a pipeline (validated: unique name and order, 0-100 %,
    not both won and lost)."""
    _require_same_organization(organization, pipeline, "pipeline_id")
    if stage is not None:
        _require_same_organization(organization, stage, "stage_id")
        if stage.pipeline_id != pipeline.pk:
            raise _invalid("pipeline", "A stage cannot move to another pipeline.")
    else:
        stage = Stage(organization=organization, pipeline=pipeline)
    unknown = set(data) - set(STAGE_FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Not a stage field.")
    for key, value in data.items():
        setattr(stage, key, value)
    stage.name = (stage.name or "").strip()
    if not stage.name:
        raise _invalid("name", "This field may not be blank.")
    if stage.order is None:
        stage.order = (
            Stage.objects.filter(pipeline=pipeline).aggregate(m=Max("order"))["m"] or 0
        ) + 1
    if not 0 <= (stage.probability or 0) <= 100:
        raise _invalid("probability", "Between 0 and 100.")
    if stage.is_won and stage.is_lost:
        raise _invalid("is_lost", "A stage cannot be both won and lost.")
    clash = Stage.objects.filter(pipeline=pipeline).exclude(pk=stage.pk)
    if clash.filter(name=stage.name).exists():
        raise _invalid("name", f"{stage.name!r} is already a stage of this pipeline.")
    if clash.filter(order=stage.order).exists():
        raise _invalid("order", f"Another stage is number {stage.order}.")
    stage.save()
    return stage


@transaction.atomic
def stage_delete(*, organization, stage: Stage) -> None:
    """Delete a stage no deal has ever been in (otherwise a Conflict: history keeps it)."""
    _require_same_organization(organization, stage, "stage_id")
    used = (
        Deal.objects.filter(stage=stage).exists()
        or DealStageChange.objects.filter(to_stage=stage).exists()
        or DealStageChange.objects.filter(from_stage=stage).exists()
    )
    if used:
        raise Conflict(
            f"Stage {stage.name!r} has deals or history; rename it instead.",
            code="stage_in_use",
        )
    stage.delete()


# --- deals ----------------------------------------------------------------------------------


def _deal_event_data(deal: Deal, *, from_stage: Stage | None = None, **extra) -> dict:
    return {
        "deal_id": str(deal.id),
        "contact_id": str(deal.contact_id) if deal.contact_id else None,
        "stage": deal.stage.name,
        "stage_id": str(deal.stage_id),
        "pipeline": deal.pipeline.name,
        "pipeline_id": str(deal.pipeline_id),
        "from_stage": from_stage.name if from_stage else None,
        "status": deal.status,
        "amount": str(deal.amount) if deal.amount is not None else None,
        "currency": deal.currency,
        "title": deal.title,
        **extra,
    }


def _status_for(stage: Stage) -> str:
    if stage.is_won:
        return DealStatus.WON
    if stage.is_lost:
        return DealStatus.LOST
    return DealStatus.OPEN


def _emit_deal(organization, deal: Deal, type_: str, **extra) -> None:
    emit(
        organization=organization,
        type=type_,
        subject_type="deal",
        subject_id=deal.id,
        data=_deal_event_data(deal, **extra),
    )


def _emit_terminal(organization, deal: Deal, **extra) -> None:
    if deal.status == DealStatus.WON:
        _advance_lifecycle(organization, deal.contact, LifecycleStage.CUSTOMER)
        _emit_deal(organization, deal, "deal.won", **extra)
    elif deal.status == DealStatus.LOST:
        _emit_deal(organization, deal, "deal.lost", lost_reason=deal.lost_reason, **extra)


@transaction.atomic
def deal_create(
    *,
    organization,
    title: str = "",
    contact: Contact | None = None,
    company: Company | None = None,
    lead: Lead | None = None,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
    amount=None,
    currency: str | None = None,
    expected_close_date: date | None = None,
    owner=None,
    source: str = "",
    changed_by=None,
    actor: str = "",
) -> Deal:
    """Open a deal. The pipeline defaults to the organization's default (created lazily),
    the stage to the pipeline's first open stage. Records the first stage in the history
    (who: `changed_by` user or `actor` label) and emits `deal.created` (plus `deal.won` /
    `deal.lost` when created in a terminal stage). Not idempotent.
    """
    for obj, name in (
        (contact, "contact_id"),
        (company, "company_id"),
        (lead, "lead_id"),
        (pipeline, "pipeline_id"),
        (stage, "stage_id"),
    ):
        _require_same_organization(organization, obj, name)
    _require_member(organization, owner, "owner_id")
    title = (title or "").strip()
    if not title and contact is not None:
        title = f"{contact} — new deal"
    if not title:
        raise _invalid("title", "Give a title (or a contact to name the deal after).")
    if len(title) > 200:
        raise _invalid("title", "At most 200 characters.")
    amount = _clean_amount(amount)
    currency = _clean_currency(currency, organization)
    if contact is not None and contact.merged_into_id:
        raise _invalid("contact_id", "This contact was merged into another.")
    if pipeline is None:
        pipeline = stage.pipeline if stage is not None else None
    if pipeline is None:
        pipeline = pipeline_ensure_default(organization=organization)
    if stage is None:
        stage = (
            Stage.objects.filter(pipeline=pipeline, is_won=False, is_lost=False)
            .order_by("order")
            .first()
        )
        if stage is None:
            raise _invalid("stage_id", f"Pipeline {pipeline.name!r} has no open stage.")
    if stage.pipeline_id != pipeline.pk:
        raise _invalid("stage_id", f"{stage.name!r} is not a stage of {pipeline.name!r}.")
    now = timezone.now()
    status = _status_for(stage)
    deal = Deal.objects.create(
        organization=organization,
        title=title,
        contact=contact,
        company_id=company.pk if company else (contact.company_id if contact else None),
        lead=lead,
        pipeline=pipeline,
        stage=stage,
        status=status,
        amount=amount,
        currency=currency,
        expected_close_date=expected_close_date,
        owner=owner,
        source=(source or "")[:32],
        closed_at=now if status != DealStatus.OPEN else None,
        stage_changed_at=now,
        last_activity_at=now,
    )
    DealStageChange.objects.create(
        organization=organization,
        deal=deal,
        from_stage=None,
        to_stage=stage,
        changed_by=changed_by,
        actor=(actor or "")[:100],
    )
    _emit_deal(organization, deal, "deal.created")
    _emit_terminal(organization, deal)
    return deal


@transaction.atomic
def deal_move_stage(
    *,
    organization,
    deal: Deal,
    stage: Stage,
    changed_by=None,
    actor: str = "",
    lost_reason: str = "",
) -> Deal:
    """Move a deal to another stage of its pipeline, recording who and when.

    Sets the status (won / lost / open again) and `closed_at`; emits `deal.stage_changed`,
    plus `deal.won` or `deal.lost` on a terminal stage (a won deal also makes its contact a
    customer). Idempotent: moving to the current stage changes nothing and emits nothing.
    """
    _require_same_organization(organization, deal, "deal_id")
    _require_same_organization(organization, stage, "stage_id")
    deal = (
        Deal.objects.select_for_update(no_key=True, of=("self",))
        .select_related("stage", "pipeline", "contact")
        .get(pk=deal.pk)
    )
    if stage.pk == deal.stage_id:
        return deal
    if stage.pipeline_id != deal.pipeline_id:
        raise _invalid("stage", f"{stage.name!r} is not a stage of {deal.pipeline.name!r}.")
    lost_reason = (lost_reason or "").strip()
    if len(lost_reason) > 200:
        raise _invalid("lost_reason", "At most 200 characters.")
    from_stage = deal.stage
    now = timezone.now()
    deal.stage = stage
    deal.status = _status_for(stage)
    deal.closed_at = now if deal.status != DealStatus.OPEN else None
    deal.lost_reason = lost_reason if deal.status == DealStatus.LOST else ""
    deal.stage_changed_at = deal.last_activity_at = now
    deal.save(
        update_fields=[
            "stage",
            "status",
            "closed_at",
            "lost_reason",
            "stage_changed_at",
            "last_activity_at",
            "updated_at",
        ]
    )
    DealStageChange.objects.create(
        organization=organization,
        deal=deal,
        from_stage=from_stage,
        to_stage=stage,
        changed_by=changed_by,
        actor=(actor or "")[:100],
    )
    who = _who(changed_by, actor)
    _emit_deal(organization, deal, "deal.stage_changed", from_stage=from_stage, **who)
    _emit_terminal(organization, deal, from_stage=from_stage, **who)
    return deal


DEAL_UPDATABLE = (
    "lost_reason",
    "title",
    "amount",
    "currency",
    "expected_close_date",
    "owner",
    "contact",
    "company",
)


@transaction.atomic
def deal_update(*, organization, deal: Deal, data: Mapping) -> Deal:
    """Change a deal's details (not its stage: `deal_move_stage`). No event. Idempotent."""
    _require_same_organization(organization, deal, "deal_id")
    unknown = set(data) - set(DEAL_UPDATABLE)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Not a deal field (stages move with deal_move_stage).")
    deal = Deal.objects.select_for_update(no_key=True).get(pk=deal.pk)
    changed = []
    for key, value in data.items():
        if key == "title":
            value = (value or "").strip()
            if not value or len(value) > 200:
                raise _invalid("title", "1 to 200 characters.")
        elif key == "amount":
            value = _clean_amount(value)
        elif key == "lost_reason":
            value = (value or "").strip()
            if len(value) > 200:
                raise _invalid("lost_reason", "At most 200 characters.")
        elif key == "currency":
            value = _clean_currency(value, organization)
        elif key == "owner":
            _require_member(organization, value, "owner_id")
        elif key in ("contact", "company"):
            _require_same_organization(organization, value, f"{key}_id")
        if _differs(deal, key, value):
            setattr(deal, key, value)
            changed.append(key)
    if changed:
        deal.save(update_fields=[*changed, "updated_at"])
    return deal


# --- tasks ----------------------------------------------------------------------------------


def _task_event_data(task: Task) -> dict:
    return {
        "task_id": str(task.id),
        "title": task.title,
        "status": task.status,
        "contact_id": str(task.contact_id) if task.contact_id else None,
        "deal_id": str(task.deal_id) if task.deal_id else None,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "assignee_id": str(task.assignee_id) if task.assignee_id else None,
    }


def _clean_due(value) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise _invalid("due_at", "Use an ISO 8601 time with a UTC offset.")
    return value


@transaction.atomic
def task_create(
    *,
    organization,
    title: str,
    description: str = "",
    due_at: datetime | None = None,
    assignee=None,
    contact: Contact | None = None,
    deal: Deal | None = None,
    source: str = "",
) -> Task:
    """Create a task (for a contact and/or a deal; a deal's contact is linked too) and emit
    `task.created`. Not idempotent."""
    _require_same_organization(organization, contact, "contact_id")
    _require_same_organization(organization, deal, "deal_id")
    _require_member(organization, assignee, "assignee_id")
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise _invalid("title", "1 to 200 characters.")
    if contact is None and deal is not None:
        contact = deal.contact
    task = Task.objects.create(
        organization=organization,
        title=title,
        description=description or "",
        due_at=_clean_due(due_at),
        assignee=assignee,
        contact=contact,
        deal=deal,
        source=(source or "")[:32],
    )
    emit(
        organization=organization,
        type="task.created",
        subject_type="task",
        subject_id=task.id,
        data=_task_event_data(task),
    )
    return task


TASK_UPDATABLE = ("title", "description", "due_at", "assignee")


@transaction.atomic
def task_update(*, organization, task: Task, data: Mapping) -> Task:
    """Change a task's title, description, due time or assignee. No event. Idempotent."""
    _require_same_organization(organization, task, "task_id")
    unknown = set(data) - set(TASK_UPDATABLE)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Not a task field.")
    task = Task.objects.select_for_update(no_key=True).get(pk=task.pk)
    changed = []
    for key, value in data.items():
        if key == "title":
            value = (value or "").strip()
            if not value or len(value) > 200:
                raise _invalid("title", "1 to 200 characters.")
        elif key == "due_at":
            value = _clean_due(value)
        elif key == "assignee":
            _require_member(organization, value, "assignee_id")
        if _differs(task, key, value):
            setattr(task, key, value)
            changed.append(key)
    if changed:
        task.save(update_fields=[*changed, "updated_at"])
    return task


@transaction.atomic
def task_complete(*, organization, task: Task, completed_by=None) -> Task:
    """Mark a task done and emit `task.completed`. Idempotent: a done task is unchanged.

    A cancelled task is a Conflict.
    """
    _require_same_organization(organization, task, "task_id")
    task = Task.objects.select_for_update(no_key=True).get(pk=task.pk)
    if task.status == TaskStatus.DONE:
        return task
    if task.status == TaskStatus.CANCELLED:
        raise Conflict("This task was cancelled.", code="task_cancelled")
    task.status, task.completed_at, task.completed_by = (
        TaskStatus.DONE,
        timezone.now(),
        completed_by,
    )
    task.save(update_fields=["status", "completed_at", "completed_by", "updated_at"])
    emit(
        organization=organization,
        type="task.completed",
        subject_type="task",
        subject_id=task.id,
        data={**_task_event_data(task), **_who(completed_by, "")},
    )
    return task


# --- notes ----------------------------------------------------------------------------------


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise _invalid("body", "This field may not be blank.")
    if len(body) > MAX_NOTE_LENGTH:
        raise _invalid("body", f"At most {MAX_NOTE_LENGTH} characters.")
    return body


@transaction.atomic
def note_create(
    *, organization, contact: Contact, body: str, deal: Deal | None = None, author=None
) -> Note:
    """Add a note to a contact (optionally about one of its deals). The catalog has no note
    event, so none is emitted; the contact's last activity moves. Not idempotent."""
    _require_same_organization(organization, contact, "contact_id")
    _require_same_organization(organization, deal, "deal_id")
    if contact.merged_into_id:
        raise _invalid("contact_id", "This contact was merged into another.")
    note = Note.objects.create(
        organization=organization, contact=contact, deal=deal, body=_clean_body(body), author=author
    )
    Contact.objects.filter(pk=contact.pk).update(last_activity_at=note.created_at)
    return note


@transaction.atomic
def note_update(*, organization, note: Note, body: str) -> Note:
    _require_same_organization(organization, note, "note_id")
    note.body = _clean_body(body)
    note.save(update_fields=["body", "updated_at"])
    return note
