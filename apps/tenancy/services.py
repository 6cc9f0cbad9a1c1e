"""Write actions for organizations, staff and API keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core.errors import Conflict, ValidationFailed
from apps.niches.selectors import niche_get_by_slug
from apps.revenue.limits import limit_check
from apps.tenancy.authentication import KEY_PREFIX, hash_secret
from apps.tenancy.models import ApiKey, Membership, Organization, Profile, User
from apps.tenancy.roles import Role


def _full_clean(obj, *, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        details = exc.message_dict
        field, messages = next(iter(details.items()))
        raise ValidationFailed(f"{field}: {messages[0]}", details=details) from None


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50].strip("-") or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(
    *,
    name: str,
    niche: str,
    slug: str | None = None,
    timezone_name: str = "UTC",
    default_phone_region: str = "US",
) -> Organization:
    """Create an organization with its primary niche. Not idempotent: a taken slug is a Conflict."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name: This field may not be blank.", details={"name": ["blank"]})
    organization = Organization(
        name=name,
        slug=slug or _unique_slug(name),
        primary_niche=niche_get_by_slug(slug=niche),
        timezone=timezone_name,
        default_phone_region=default_phone_region.upper(),
    )
    _full_clean(organization, exclude=["primary_niche"])
    try:
        with transaction.atomic():
            organization.save()
    except IntegrityError:
        raise Conflict(
            f"An organization with slug {organization.slug!r} already exists.", code="slug_taken"
        ) from None
    return organization


def organization_provision_defaults(*, organization: Organization) -> None:
    """Give a new organization what its niche needs to work on day one: the niche's default
    appointment types with a bookable resource, and the default sales pipeline.

    Idempotent (each step matches what exists and never overwrites an owner's edits).
    """
    from apps.bookings.services import appointment_types_ensure_defaults
    from apps.crm.services import pipeline_ensure_default

    appointment_types_ensure_defaults(organization=organization)
    pipeline_ensure_default(organization=organization)


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    key: str  # the full secret; shown once, never stored


@transaction.atomic
def api_key_create(
    *, organization: Organization, name: str = "default", created_by: User | None = None
) -> IssuedApiKey:
    """Issue a new key. The raw key is returned once; only its hash is stored."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(30)
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name.strip() or "default",
        prefix=prefix,
        secret_hash=hash_secret(secret),
        created_by=created_by,
    )
    return IssuedApiKey(api_key=api_key, key=f"{KEY_PREFIX}{prefix}_{secret}")


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key (idempotent: revoking twice keeps the first time)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
    return api_key


@dataclass(frozen=True)
class OperatorAccount:
    user: User
    membership: Membership
    created: bool
    password: str | None  # set only when generated here


@transaction.atomic
def operator_upsert(
    *,
    organization: Organization,
    email: str,
    role: str,
    password: str | None = None,
    full_name: str = "",
) -> OperatorAccount:
    """Give `email` console access to `organization` with `role`.

    Creates the staff user (with a generated password unless one is given) or reuses it;
    creates or updates the membership. Idempotent for the same arguments.
    """
    if role not in Role.values:
        raise ValidationFailed(
            f"role: must be one of {', '.join(Role.values)}.", details={"role": ["invalid"]}
        )
    email = User.objects.normalize_email((email or "").strip()).lower()
    probe = User(email=email)
    _full_clean(probe, exclude=["password"])
    generated = None
    user = User.objects.select_for_update().filter(email__iexact=email).first()
    created = user is None
    if created:
        if password is None:
            generated = password = secrets.token_urlsafe(12)
        user = User.objects.create_user(
            email=email, password=password, is_staff=True, full_name=full_name
        )
        Profile.objects.create(user=user, display_name=full_name)
    else:
        changed = []
        if password is not None:
            user.set_password(password)
            changed.append("password")
        if not user.is_staff:
            user.is_staff = True
            changed.append("is_staff")
        if full_name and user.full_name != full_name:
            user.full_name = full_name
            changed.append("full_name")
        if changed:
            user.save(update_fields=changed)
        Profile.objects.get_or_create(user=user, defaults={"display_name": full_name})
    if not Membership.objects.filter(user=user, organization=organization).exists():
        limit_check(organization=organization, limit="operators")
    membership, _ = Membership.objects.update_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    return OperatorAccount(user=user, membership=membership, created=created, password=generated)


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    membership.delete()
