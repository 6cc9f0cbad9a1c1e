"""Decision test data: organizations provisioned like production (niche appointment types,
resource hours, default pipeline), contacts, leads, deals and bookings through their
services; conversations and messages through their models (the conversations services
are not on main yet), and the agent's memory through real decisions where it matters.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from apps.bookings.models import AppointmentType
from apps.bookings.services import booking_create, booking_mark_no_show
from apps.bookings.slots import slots_compute
from apps.conversations.models import Conversation, Message
from apps.crm import services as crm
from apps.decisions.models import ConversationMemory
from apps.decisions.selectors import decision_subject_get
from apps.decisions.services import decision_prepare, decision_record
from apps.providers.services import channel_create
from apps.tenancy.services import organization_provision_defaults
from tests.factories import OrganizationFactory

# A Tuesday, 10:00 in New York: inside every niche's opening hours, outside quiet hours.
NOW = datetime(2030, 3, 5, 15, 0, tzinfo=UTC)
_seq = itertools.count(1)


def organization(niche: str = "fitness", **kwargs):
    n = next(_seq)
    kwargs.setdefault("name", f"{niche.replace('_', ' ').title()} {n}")
    kwargs.setdefault("slug", f"{niche.replace('_', '-')}-{n}")
    kwargs.setdefault("timezone_name", "America/New_York")
    org = OrganizationFactory(niche=niche, **kwargs)
    organization_provision_defaults(organization=org)
    return org


def contact(
    org, *, name: str = "Ana Lopez", consent: dict | None = None, timezone: str = "", **kwargs
):
    n = next(_seq)
    kwargs.setdefault("email", f"ana{n}@example.com")
    kwargs.setdefault("phone", f"+1415555{n % 10000:04d}")
    found = crm.contact_create(organization=org, name=name, **kwargs).contact
    if timezone:
        found = crm.contact_update(organization=org, contact=found, data={"timezone": timezone})
    for channel, opted_in in (consent if consent is not None else {"sms": True}).items():
        crm.contact_set_consent(
            organization=org, contact=found, channel=channel, opted_in=opted_in, reason="test"
        )
    return found


def lead(org, who, **kwargs):
    return crm.lead_create(organization=org, contact=who, **kwargs)


def deal(org, who, **kwargs):
    kwargs.setdefault("title", f"{who} deal")
    return crm.deal_create(organization=org, contact=who, **kwargs)


def conversation(who, *, channel: str = "sms", last_inbound_at=None, agent_active: bool = True):
    found, _ = Conversation.objects.get_or_create(
        contact=who, defaults={"organization_id": who.organization_id}
    )
    Conversation.objects.filter(pk=found.pk).update(
        last_inbound_channel=channel if last_inbound_at else "",
        last_inbound_at=last_inbound_at,
        agent_active=agent_active,
    )
    found.refresh_from_db()
    return found


def message(who, text: str, *, at, direction: str = "in", channel: str = "sms"):
    conv = conversation(who, channel=channel, last_inbound_at=at if direction == "in" else None)
    created = Message.objects.create(
        organization_id=who.organization_id,
        conversation=conv,
        contact=who,
        direction=direction,
        channel=channel,
        sender_kind="contact" if direction == "in" else "agent",
        text=text,
        status="received" if direction == "in" else "sent",
    )
    Message.objects.filter(pk=created.pk).update(created_at=at)
    if direction == "in":
        Conversation.objects.filter(pk=conv.pk).update(
            last_inbound_at=at, last_inbound_channel=channel, last_message_at=at
        )
    return created


def memory(who, **facts):
    found, _ = ConversationMemory.objects.update_or_create(
        contact=who, defaults={"organization_id": who.organization_id, "facts": facts}
    )
    return found


def default_type(org) -> AppointmentType:
    return AppointmentType.objects.filter(organization=org, is_active=True).order_by("name").first()


def first_free(org, kind=None, *, now=NOW, after=timedelta(days=1)):
    kind = kind or default_type(org)
    slots = slots_compute(
        organization=org,
        appointment_type=kind,
        start=now + after,
        end=now + after + timedelta(days=7),
        now=now,
    )
    return kind, slots[0]


def booking(org, who, *, kind=None, now=NOW, after=timedelta(days=1)):
    kind, slot = first_free(org, kind, now=now, after=after)
    return booking_create(
        organization=org, contact=who, appointment_type=kind, start=slot.start, now=now
    )


def no_show(org, who, *, now=NOW):
    """A booking in the week before `now` that the contact missed."""
    past = now - timedelta(days=8)
    made = booking(org, who, now=past, after=timedelta(hours=6))
    return booking_mark_no_show(booking=made, now=now - timedelta(minutes=1))


def twilio_channel(org, api_base: str = ""):
    config = {
        "account_sid": "AC00000000000000000000000000000000",
        "auth_token": "test_auth_token_0123456789abcdef",
        "from_number": "+12028831111",
    }
    if api_base:
        config["api_base"] = api_base
    return channel_create(organization=org, provider="twilio", config=config)


def subject(org, who):
    return decision_subject_get(organization=org, contact_id=who.pk)


def simulate(org, who, *, trigger="message.received", message="", now=NOW, **kwargs):
    """The guarded plan of one decision, without recording it."""
    found, conv = subject(org, who)
    return decision_prepare(
        organization=org,
        contact=found,
        conversation=conv,
        trigger=trigger,
        message=message,
        now=now,
        simulate=True,
        **kwargs,
    )


def decide(org, who, *, trigger="message.received", message="", now=NOW, **kwargs):
    """Prepare and record one decision (credits, memory, event), as the API does."""
    found, conv = subject(org, who)
    plan = decision_prepare(
        organization=org,
        contact=found,
        conversation=conv,
        trigger=trigger,
        message=message,
        now=now,
        **kwargs,
    )
    decision, _ = decision_record(plan=plan)
    return decision
