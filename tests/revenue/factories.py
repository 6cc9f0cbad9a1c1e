"""Revenue test data, arranged through the services."""

from __future__ import annotations

import itertools
from decimal import Decimal

from apps.crm import services as crm
from apps.revenue import services
from apps.revenue.models import Plan

_seq = itertools.count(1)


def contact(organization, **kwargs):
    n = next(_seq)
    kwargs.setdefault("name", f"Contact {n}")
    if not (kwargs.get("email") or kwargs.get("phone")):
        kwargs["email"] = f"person{n}@acme-{n}.test"
    return crm.contact_create(organization=organization, **kwargs).contact


def deal(organization, **kwargs):
    kwargs.setdefault("title", f"Deal {next(_seq)}")
    return crm.deal_create(organization=organization, **kwargs)


def stage(organization, name: str):
    from apps.crm.models import Stage

    pipeline = crm.pipeline_ensure_default(organization=organization)
    return Stage.objects.get(pipeline=pipeline, name=name)


def won_stage(organization):
    from apps.crm.models import Stage

    pipeline = crm.pipeline_ensure_default(organization=organization)
    return Stage.objects.filter(pipeline=pipeline, is_won=True).first()


def invoice(organization, *, lines=None, **kwargs):
    if lines is None:
        lines = [{"description": "Membership", "unit_price": "100.00"}]
    return services.invoice_create(organization=organization, lines=lines, **kwargs)


def sent_invoice(organization, **kwargs):
    created = invoice(organization, **kwargs)
    return services.invoice_send(organization=organization, invoice=created)


def set_limit(organization, field: str, value):
    """Give the organization's plan `field` = value (through the service, cache cleared)."""
    plan = Plan.objects.get(key=organization.plan)
    return services.plan_update(plan=plan, data={field: value})


def money(value: str) -> Decimal:
    return Decimal(value)
