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


def booking(contact_, *, start=None, status="scheduled", **fields):
    """A booking row (the bookings app's own services need availability set up)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.bookings.models import AppointmentType, Booking, Resource

    org_id = contact_.organization_id
    kind, _ = AppointmentType.objects.get_or_create(
        organization_id=org_id, slug="trial", defaults={"name": "Free trial class"}
    )
    resource, _ = Resource.objects.get_or_create(organization_id=org_id, name="Studio A")
    start = start or timezone.now() + timedelta(days=1, minutes=next(_seq) * 60)
    end = start + timedelta(minutes=45)
    return Booking.objects.create(
        organization_id=org_id,
        contact=contact_,
        appointment_type=kind,
        resource=resource,
        start=start,
        end=end,
        blocked_start=start,
        blocked_end=end,
        status=status,
        source="test",
        **fields,
    )


def inbound(contact_, text, *, channel="sms", at=None):
    """An inbound message threaded like ingress does (conversation activity included)."""
    from apps.conversations.services import message_record_inbound

    return message_record_inbound(
        organization=contact_.organization,
        contact_id=contact_.pk,
        channel=channel,
        text=text,
        now=at,
    )


def age(model, pk, **fields):
    """Move timestamps into the past (the jobs select by age)."""
    model.objects.filter(pk=pk).update(**fields)
