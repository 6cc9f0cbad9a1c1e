"""Seed content for the five niches. `niches_load` is idempotent: it creates what is missing
and updates shared content in place, never touching organization overrides.
"""

from __future__ import annotations

from django.db import transaction

NICHES = [
    {
        "slug": "fitness",
        "name": "Fitness studio",
        "description": "Boutique gyms, yoga and pilates studios, personal trainers: trial classes, "
        "memberships and retention.",
    },
    {
        "slug": "med_spa",
        "name": "Med spa",
        "description": "Aesthetic clinics offering injectables, laser and skin treatments: "
        "consultations first, no medical promises.",
    },
    {
        "slug": "real_estate",
        "name": "Real estate",
        "description": "Agents and teams: buyer and seller leads, property viewings, "
        "fair-housing compliant conversations.",
    },
    {
        "slug": "consultant",
        "name": "Consultant",
        "description": "Coaches, agencies and independent consultants: discovery calls, "
        "proposals and retainers.",
    },
    {
        "slug": "local_service",
        "name": "Local service",
        "description": "Plumbers, cleaners, electricians and other trades: quotes, on-site "
        "visits and repeat work.",
    },
]


@transaction.atomic
def niches_load(*, niche_model=None) -> dict[str, int]:
    """Create or update the shared niche content. Returns how many rows were created per kind."""
    if niche_model is None:
        from apps.niches.models import Niche as niche_model
    created = 0
    for row in NICHES:
        _, was_created = niche_model.objects.update_or_create(
            slug=row["slug"], defaults={"name": row["name"], "description": row["description"]}
        )
        created += int(was_created)
    return {"niches": created}
