"""Factories that arrange state through the services, like production code does."""

from __future__ import annotations

import factory

from apps.niches.seed import niches_load
from apps.tenancy import services
from apps.tenancy.models import Organization


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Studio {n}")
    slug = factory.Sequence(lambda n: f"studio-{n}")
    niche = "fitness"
    timezone_name = "America/New_York"
    default_phone_region = "US"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        niches_load()  # transactional tests truncate the seeded niches
        return services.organization_create(**kwargs)


def api_key_for(organization, name: str = "test") -> str:
    return services.api_key_create(organization=organization, name=name).key


def staff_user(
    organization,
    *,
    role: str = "operator",
    email: str | None = None,
    password: str = "pw-Secret-123",  # noqa: S107
):
    email = email or f"{role}-{organization.slug}@example.com"
    return services.operator_upsert(
        organization=organization, email=email, role=role, password=password
    ).user
