"""CRM test data, arranged through the services (and, for other apps' rows the CRM reads,
through their models until those apps ship services)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from apps.crm import services
from apps.events.models import Event

_seq = itertools.count(1)


def contact(organization, **kwargs):
    n = next(_seq)
    kwargs.setdefault("name", f"Contact {n}")
    if not (kwargs.get("email") or kwargs.get("phone") or kwargs.get("identities")):
        kwargs["email"] = f"contact{n}@example.com"
    return services.contact_create(organization=organization, **kwargs).contact


def deal(organization, **kwargs):
    kwargs.setdefault("title", f"Deal {next(_seq)}")
    return services.deal_create(organization=organization, **kwargs)


def lead(organization, **kwargs):
    if kwargs.get("contact") is None:
        kwargs["contact"] = contact(organization)
    return services.lead_create(organization=organization, **kwargs)


def rule(organization, *, kind, points, condition, key=None, answer_field="", order=0):
    from apps.niches.models import QualificationRule

    return QualificationRule.objects.create(
        niche=organization.primary_niche,
        key=key or f"test-{kind}-{next(_seq)}",
        name=f"Test {kind} rule",
        kind=kind,
        answer_field=answer_field,
        condition=condition,
        points=points,
        order=order,
    )


def message(contact_, text, *, direction="in", at=None):
    from apps.conversations.models import Conversation, Message

    conversation, _ = Conversation.objects.get_or_create(
        contact=contact_, defaults={"organization_id": contact_.organization_id}
    )
    created = Message.objects.create(
        organization_id=contact_.organization_id,
        conversation=conversation,
        contact=contact_,
        direction=direction,
        channel="sms",
        sender_kind="contact" if direction == "in" else "agent",
        text=text,
        status="received" if direction == "in" else "sent",
    )
    at = at or timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message_at=at, last_message_preview=text[:200]
    )
    return created


def booking(contact_, *, start=None, status="scheduled", slug="trial"):
    from apps.bookings.models import AppointmentType, Booking, Resource

    org_id = contact_.organization_id
    kind, _ = AppointmentType.objects.get_or_create(
        organization_id=org_id, slug=slug, defaults={"name": "Free trial class"}
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
    )


def events(organization, type_=None):
    queryset = Event.objects.filter(organization=organization).order_by("sequence")
    if type_:
        queryset = queryset.filter(type=type_)
    return list(queryset)


def event_types(organization) -> list[str]:
    return [e.type for e in events(organization)]
