"""Reads for organizations and staff."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.tenancy.models import Membership, Organization, User
from apps.tenancy.roles import ALL_ROLES


def organization_get_by_slug(*, slug: str) -> Organization:
    organization = Organization.objects.select_related("primary_niche").filter(slug=slug).first()
    if organization is None:
        raise NotFound(f"No organization with slug {slug!r}.")
    return organization


def user_organization_ids(*, user: User, roles=ALL_ROLES) -> list:
    """Ids of the organizations where `user` holds one of `roles` (cached on the user)."""
    cache = user.__dict__.setdefault("_sb_org_ids", {})
    key = frozenset(roles)
    if key not in cache:
        cache[key] = list(
            Membership.objects.filter(user=user, role__in=key).values_list(
                "organization_id", flat=True
            )
        )
    return cache[key]


def user_role_in(*, user: User, organization_id) -> str | None:
    roles = user.__dict__.setdefault("_sb_roles", {})
    if organization_id not in roles:
        roles[organization_id] = (
            Membership.objects.filter(user=user, organization_id=organization_id)
            .values_list("role", flat=True)
            .first()
        )
    return roles[organization_id]


def organization_members(*, organization: Organization, roles=ALL_ROLES) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization, role__in=roles).select_related(
        "user"
    )
