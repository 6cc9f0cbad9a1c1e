"""The default plan tiers (seeded by migration 0002; edited by superusers in the admin).

Limits are generous on purpose for `free`: an organization can try every channel and a
small team. `ai_credits_per_month` matches the decision engine's monthly grant.
"""

from __future__ import annotations

from decimal import Decimal

DEFAULT_PLANS = [
    {
        "key": "free",
        "name": "Free",
        "description": "Try Switchboard: every channel, a small team, a few hundred contacts.",
        "price": Decimal("0.00"),
        "max_operators": 5,
        "max_channels": 4,
        "max_contacts": 1_000,
        "max_decisions_per_month": 500,
        "max_outbound_messages_per_day": 300,
        "ai_credits_per_month": 500,
        "sort_order": 1,
    },
    {
        "key": "starter",
        "name": "Starter",
        "description": "One location with a front desk.",
        "price": Decimal("49.00"),
        "max_operators": 10,
        "max_channels": 6,
        "max_contacts": 10_000,
        "max_decisions_per_month": 3_000,
        "max_outbound_messages_per_day": 2_000,
        "ai_credits_per_month": 3_000,
        "sort_order": 2,
    },
    {
        "key": "growth",
        "name": "Growth",
        "description": "Several locations, a sales team, automated outreach.",
        "price": Decimal("199.00"),
        "max_operators": 30,
        "max_channels": 20,
        "max_contacts": 100_000,
        "max_decisions_per_month": 15_000,
        "max_outbound_messages_per_day": 20_000,
        "ai_credits_per_month": 15_000,
        "sort_order": 3,
    },
    {
        "key": "scale",
        "name": "Scale",
        "description": "High volume: agencies and franchises.",
        "price": Decimal("599.00"),
        "max_operators": None,
        "max_channels": None,
        "max_contacts": 1_000_000,
        "max_decisions_per_month": 75_000,
        "max_outbound_messages_per_day": 200_000,
        "ai_credits_per_month": 75_000,
        "sort_order": 4,
    },
]


def plans_ensure_defaults(plan_model=None) -> int:
    """Create the default plans that are missing (existing rows, edited or not, are kept).
    Idempotent; returns how many were created. `plan_model` lets migrations pass theirs."""
    if plan_model is None:
        from apps.revenue.models import Plan as plan_model
    existing = set(plan_model.objects.values_list("key", flat=True))
    missing = [plan_model(currency="USD", **p) for p in DEFAULT_PLANS if p["key"] not in existing]
    plan_model.objects.bulk_create(missing, ignore_conflicts=True)
    if missing:
        from apps.revenue.limits import plan_cache_clear

        plan_cache_clear()
    return len(missing)
