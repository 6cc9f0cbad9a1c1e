"""Lead resurrection and outreach sequences: enrolment rules, compliant sends through
`message_send` (consent, quiet hours, the WhatsApp window), stop conditions (reply, opt-out,
booking, exit statuses), daily caps, idempotency, the API and the unsubscribe link."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Message
from apps.crm import services as crm
from apps.crm.models import Contact, ContactConsent, Lead, LeadStatus
from apps.revenue import jobs, services
from apps.revenue.models import (
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepSend,
    RevenueSettings,
    Sequence,
    SequenceKind,
    SequenceStep,
)
from tests.providers import factories as pf
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db


def zone_at_local_hour(hour: int, now: datetime | None = None) -> str:
    """An IANA fixed-offset zone where it is `hour` o'clock (local) right now."""
    utc_hour = (now or timezone.now()).astimezone(timezone.get_fixed_timezone(0)).hour
    offset = (hour - utc_hour + 12) % 24 - 12  # -12..11
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


@pytest.fixture
def channels(organization):
    return {"sms": pf.twilio_channel(organization), "email": pf.mailgun_channel(organization)}


def person(organization, *, name="Maya Chen", hour=12, sms_consent=True, **kwargs):
    n = Contact.objects.count() + 1
    kwargs.setdefault("email", f"maya{n}@acme-dental.com")
    kwargs.setdefault("phone", f"+1415555{n:04d}")
    contact = crm.contact_create(
        organization=organization, name=name, timezone_name=zone_at_local_hour(hour), **kwargs
    ).contact
    if sms_consent:
        crm.contact_set_consent(
            organization=organization, contact=contact, channel="sms", opted_in=True
        )
    return contact


def silent_lead(organization, *, days=40, status=LeadStatus.NEW, **kwargs):
    contact = person(organization, **kwargs)
    lead = crm.lead_create(organization=organization, contact=contact, source="facebook")
    past = timezone.now() - timedelta(days=days)
    f.age(Lead, lead.pk, status=status, created_at=past, last_activity_at=past)
    f.age(Contact, contact.pk, last_activity_at=past)
    return lead


def enable_resurrection(organization, **settings):
    RevenueSettings.objects.update_or_create(
        organization=organization, defaults={"resurrection_enabled": True, **settings}
    )


def outbound(contact):
    return list(Message.objects.filter(contact=contact, direction="out").order_by("created_at"))


# --- lead resurrection: selection -------------------------------------------------------------


def test_resurrection_enrols_silent_leads_once(organization, channels):
    enable_resurrection(organization)
    silent = silent_lead(organization)
    silent_lead(organization, days=10)  # not silent long enough
    silent_lead(organization, status=LeadStatus.CONVERTED)
    silent_lead(organization, status=LeadStatus.DISQUALIFIED)
    run = jobs.lead_resurrection_run()
    assert (run.processed, run.created) == (1, 1)
    enrollment = Enrollment.objects.get()
    assert enrollment.contact_id == silent.contact_id and enrollment.lead_id == silent.pk
    assert enrollment.sequence.kind == SequenceKind.RESURRECTION
    assert enrollment.enrolled_by == "resurrection" and enrollment.next_step == 1
    assert jobs.lead_resurrection_run().created == 0  # idempotent
    assert Enrollment.objects.count() == 1


def test_resurrection_is_opt_in_and_configurable(organization, channels):
    silent_lead(organization, status=LeadStatus.DISQUALIFIED)
    assert jobs.lead_resurrection_run().processed == 0  # not enabled
    enable_resurrection(organization, resurrection_lead_statuses=["disqualified"])
    assert jobs.lead_resurrection_run().created == 1


def test_a_contact_is_re_engaged_at_most_once_per_cooldown(organization, channels):
    enable_resurrection(organization)
    lead = silent_lead(organization)
    jobs.lead_resurrection_run()
    enrollment = Enrollment.objects.get()
    services.enrollment_exit(enrollment=enrollment, reason="manual")
    assert jobs.lead_resurrection_run().created == 0  # within the 90-day cooldown
    f.age(Enrollment, enrollment.pk, created_at=timezone.now() - timedelta(days=91))
    assert jobs.lead_resurrection_run().created == 1
    assert Enrollment.objects.filter(lead=lead).count() == 2


def test_one_enrolment_per_contact_with_several_silent_leads(organization, channels):
    enable_resurrection(organization)
    lead = silent_lead(organization)
    second = crm.lead_create(organization=organization, contact=lead.contact)
    past = timezone.now() - timedelta(days=50)
    f.age(Lead, second.pk, created_at=past, last_activity_at=past)
    assert jobs.lead_resurrection_run().created == 1


# --- sending ------------------------------------------------------------------------------------


def test_the_sequence_sends_each_step_once_then_completes(organization, channels):
    enable_resurrection(organization)
    lead = silent_lead(organization)
    jobs.lead_resurrection_run()
    run = jobs.sequences_advance_run()
    assert run.created == 1
    [message] = outbound(lead.contact)
    assert message.channel == "sms" and message.sender_kind == "system"
    assert message.status == "queued"
    assert "Maya" in message.text and organization.name in message.text
    enrollment = Enrollment.objects.get()
    assert enrollment.next_step == 2 and enrollment.status == EnrollmentStatus.ACTIVE
    assert enrollment.next_send_at > timezone.now() + timedelta(hours=95)
    assert jobs.sequences_advance_run().created == 0  # not due: nothing twice

    later = timezone.now() + timedelta(hours=97)
    lead.contact.timezone = zone_at_local_hour(12, later)
    Contact.objects.filter(pk=lead.contact_id).update(timezone=lead.contact.timezone)
    assert jobs.sequences_advance_run(now=later).created == 1
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED and enrollment.next_send_at is None
    assert len(outbound(lead.contact)) == 2
    assert list(EnrollmentStepSend.objects.values_list("position", "status")) == [
        (1, "sent"),
        (2, "sent"),
    ]
    assert jobs.sequences_advance_run(now=later).processed == 0


def test_quiet_hours_hold_the_send_until_the_window_ends(organization, channels):
    enable_resurrection(organization)
    lead = silent_lead(organization, hour=23)  # 23:00 for the contact: quiet until 08:00
    jobs.lead_resurrection_run()
    run = jobs.sequences_advance_run()
    assert run.created == 0 and run.details == {"held_quiet_hours": 1}
    assert not outbound(lead.contact)
    enrollment = Enrollment.objects.get()
    local = enrollment.next_send_at.astimezone(timezone.get_fixed_timezone(0))
    tz_local = enrollment.next_send_at.astimezone(
        __import__("zoneinfo").ZoneInfo(lead.contact.timezone)
    )
    assert (tz_local.hour, tz_local.minute) == (8, 0) and local > timezone.now()
    assert jobs.sequences_advance_run(now=enrollment.next_send_at).created == 1


def test_email_is_not_held_by_sms_quiet_hours_and_carries_an_unsubscribe_link(
    client, organization, channels
):
    sequence = Sequence.objects.create(organization=organization, name="Newsletter")
    SequenceStep.objects.create(
        organization=organization, sequence=sequence, position=1, channel="email",
        subject="Spring classes", body="Hi {first_name}, spring classes are open!",
    )  # fmt: skip
    contact = person(organization, hour=23, sms_consent=False)
    services.sequence_enroll(organization=organization, sequence=sequence, contact=contact)
    assert jobs.sequences_advance_run().created == 1
    [message] = outbound(contact)
    assert message.channel == "email" and message.subject == "Spring classes"
    assert message.text.startswith("Hi Maya, spring classes are open!")
    link = message.text.rsplit(" ", 1)[1]
    path = link.removeprefix("http://testserver").removeprefix("http://127.0.0.1:8000")
    assert client.get(path).json()["channel"] == "email"
    assert not ContactConsent.objects.filter(contact=contact, channel="email").exists()
    response = client.post(path)
    assert response.status_code == 200 and response.json() == {"unsubscribed": True}
    consent = ContactConsent.objects.get(contact=contact, channel="email")
    assert consent.status == "opted_out" and consent.source == "unsubscribe"
    assert client.post(path.replace(path.split("/")[-2], "forged-token")).status_code == 404


def test_no_sms_consent_skips_the_step_and_tries_the_next(organization, channels):
    sequence = Sequence.objects.create(organization=organization, name="Two channels")
    for position, channel in ((1, "sms"), (2, "email")):
        SequenceStep.objects.create(
            organization=organization, sequence=sequence, position=position, channel=channel,
            body="Hello {first_name}",
        )  # fmt: skip
    contact = person(organization, sms_consent=False)
    services.sequence_enroll(organization=organization, sequence=sequence, contact=contact)
    run = jobs.sequences_advance_run()
    assert run.details == {"skipped_no_consent": 1}
    assert not outbound(contact)
    skipped = EnrollmentStepSend.objects.get()
    assert skipped.status == "skipped" and "no consent on sms" in skipped.reason
    assert jobs.sequences_advance_run().created == 1
    assert outbound(contact)[0].channel == "email"


def test_a_reply_stops_the_sequence(organization, channels):
    enable_resurrection(organization)
    lead = silent_lead(organization)
    jobs.lead_resurrection_run()
    jobs.sequences_advance_run()
    f.inbound(lead.contact, "Oh hi! Yes still interested")
    Enrollment.objects.update(next_send_at=timezone.now())
    run = jobs.sequences_advance_run()
    assert run.details == {"exited_replied": 1} and run.created == 0
    enrollment = Enrollment.objects.get()
    assert enrollment.status == EnrollmentStatus.EXITED and enrollment.exit_reason == "replied"
    assert len(outbound(lead.contact)) == 1


def test_an_opt_out_stops_the_sequence(organization, channels):
    enable_resurrection(organization)
    lead = silent_lead(organization)
    jobs.lead_resurrection_run()
    crm.contact_set_consent(
        organization=organization, contact=lead.contact, channel="sms", opted_in=False
    )
    assert jobs.sequences_advance_run().details == {"exited_opted_out": 1}
    assert Enrollment.objects.get().exit_reason == "opted_out"
    assert not outbound(lead.contact)


def test_whatsapp_outside_the_window_uses_the_approved_template(organization, channels):
    pf.whatsapp_channel(organization)
    sequence = Sequence.objects.create(organization=organization, name="WA")
    SequenceStep.objects.create(
        organization=organization, sequence=sequence, position=1, channel="whatsapp",
        body="Hi {first_name}!", template_purpose="reactivation",
    )  # fmt: skip
    contact = person(organization, sms_consent=False)
    crm.contact_set_consent(
        organization=organization, contact=contact, channel="whatsapp", opted_in=True
    )
    services.sequence_enroll(organization=organization, sequence=sequence, contact=contact)
    assert jobs.sequences_advance_run().created == 1
    [message] = outbound(contact)
    assert message.channel == "whatsapp" and message.template_name == "sb_reactivation"


def test_whatsapp_without_a_template_skips_the_step(organization, channels):
    from apps.niches.models import PlatformTemplate

    PlatformTemplate.objects.update(is_approved=False)
    pf.whatsapp_channel(organization)
    sequence = Sequence.objects.create(organization=organization, name="WA")
    SequenceStep.objects.create(
        organization=organization, sequence=sequence, position=1, channel="whatsapp",
        body="Hi", template_purpose="reactivation",
    )  # fmt: skip
    contact = person(organization)
    crm.contact_set_consent(
        organization=organization, contact=contact, channel="whatsapp", opted_in=True
    )
    services.sequence_enroll(organization=organization, sequence=sequence, contact=contact)
    run = jobs.sequences_advance_run()
    assert run.details == {"skipped_whatsapp_window_closed": 1}
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED


def test_daily_caps_hold_the_rest_until_tomorrow(organization, channels):
    enable_resurrection(organization, outreach_daily_cap=1)
    leads = [silent_lead(organization) for _ in range(2)]
    jobs.lead_resurrection_run()
    run = jobs.sequences_advance_run()
    assert run.created == 1 and run.details == {"held_daily_cap": 1}
    held = Enrollment.objects.get(next_step=1)
    local = held.next_send_at.astimezone(organization.tz)
    assert (local.hour, local.minute) == (0, 5)
    assert sum(len(outbound(lead.contact)) for lead in leads) == 1
    assert jobs.sequences_advance_run().created == 0  # the cap holds within the day


def test_the_plan_message_limit_holds_sequence_sends(organization, channels):
    enable_resurrection(organization)
    f.set_limit(organization, "max_outbound_messages_per_day", 0)
    lead = silent_lead(organization)
    jobs.lead_resurrection_run()
    assert jobs.sequences_advance_run().details == {"held_daily_cap": 1}
    assert not outbound(lead.contact)


def test_a_sequences_own_daily_cap(organization, channels):
    sequence = Sequence.objects.create(organization=organization, name="Capped", daily_cap=1)
    SequenceStep.objects.create(
        organization=organization, sequence=sequence, position=1, channel="email", body="Hi"
    )
    for _ in range(3):
        services.sequence_enroll(
            organization=organization, sequence=sequence, contact=person(organization)
        )
    assert jobs.sequences_advance_run().created == 1


# --- outreach enrolment rules and exits ---------------------------------------------------------


@pytest.fixture
def outreach(organization, channels):
    sequence = Sequence.objects.create(
        organization=organization,
        name="Instagram welcome",
        auto_enroll=True,
        enroll_lead_sources=["instagram"],
        enroll_tags=["trial"],
        enroll_created_within_days=7,
        exit_lead_statuses=["converted"],
    )
    for position, delay in ((1, 0), (2, 24)):
        SequenceStep.objects.create(
            organization=organization, sequence=sequence, position=position, channel="email",
            delay_hours=delay, subject="Welcome", body="Welcome {first_name}",
        )  # fmt: skip
    return sequence


def test_outreach_enrolment_rules(organization, outreach):
    match = person(organization, tags=["trial"])
    crm.lead_create(organization=organization, contact=match, source="instagram")
    wrong_source = person(organization, tags=["trial"])
    crm.lead_create(organization=organization, contact=wrong_source, source="google")
    no_tag = person(organization)
    crm.lead_create(organization=organization, contact=no_tag, source="instagram")
    old = person(organization, tags=["trial"])
    old_lead = crm.lead_create(organization=organization, contact=old, source="instagram")
    f.age(Lead, old_lead.pk, created_at=timezone.now() - timedelta(days=8))
    run = jobs.outreach_enroll_run()
    assert (run.processed, run.created) == (1, 1)
    assert Enrollment.objects.get().contact_id == match.pk
    assert jobs.outreach_enroll_run().created == 0  # idempotent
    Sequence.objects.filter(pk=outreach.pk).update(is_active=False)
    third = person(organization, tags=["trial"])
    crm.lead_create(organization=organization, contact=third, source="instagram")
    assert jobs.outreach_enroll_run().processed == 0  # paused sequences enrol nobody


def test_exit_rules_lead_status_and_booking(organization, outreach):
    converted = person(organization, tags=["trial"])
    lead = crm.lead_create(organization=organization, contact=converted, source="instagram")
    booked = person(organization, tags=["trial"])
    crm.lead_create(organization=organization, contact=booked, source="instagram")
    jobs.outreach_enroll_run()
    jobs.sequences_advance_run()
    crm.lead_convert(organization=organization, lead=lead, amount="10")
    f.booking(booked)
    Enrollment.objects.update(next_send_at=timezone.now())
    run = jobs.sequences_advance_run()
    assert run.details == {"exited_lead_converted": 1, "exited_booked": 1}
    assert set(Enrollment.objects.values_list("exit_reason", flat=True)) == {
        "lead_converted",
        "booked",
    }


def test_enrol_through_the_api(api, other_api, organization, other_organization, outreach):
    contact = person(organization)
    url = f"/api/v1/sequences/{outreach.pk}/enrollments/"
    first = api.post(url, {"contact_id": str(contact.pk)}, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["status"] == "active" and first.json()["next_step"] == 1
    again = api.post(url, {"contact_id": str(contact.pk)}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert other_api.post(url, {"contact_id": str(contact.pk)}, format="json").status_code == 404
    foreign = f.contact(other_organization)
    response = api.post(url, {"contact_id": str(foreign.pk)}, format="json")
    assert response.status_code == 404 and "contact_id" in response.json()["error"]["message"]
    assert api.post(url, {}, format="json").status_code == 400
    empty = Sequence.objects.create(organization=organization, name="Empty")
    conflict = api.post(
        f"/api/v1/sequences/{empty.pk}/enrollments/", {"contact_id": str(contact.pk)},
        format="json",
    )  # fmt: skip
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "sequence_empty"
