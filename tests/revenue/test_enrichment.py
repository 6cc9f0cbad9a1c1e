"""Lead enrichment: company from the e-mail domain (not free-mail), time zone from the phone
number, duplicate suggestions; selection, idempotency, nothing a person set is overwritten."""

import pytest

from apps.crm import services as crm
from apps.crm.models import Company, Contact
from apps.events.models import Event
from apps.revenue import jobs
from apps.revenue.jobs import (
    canonical_email,
    company_name_from_domain,
    email_domain,
    timezone_from_phone,
)
from apps.revenue.models import ContactEnrichment, DuplicateSuggestion, RevenueSettings

pytestmark = pytest.mark.django_db


def make(organization, **kwargs):
    return crm.contact_create(organization=organization, **kwargs).contact


def test_company_and_time_zone_are_filled_in(organization):
    contact = make(
        organization, name="Dr. Ana Lopez", email="ana@acme-dental.co.uk", phone="+442079460000"
    )
    run = jobs.lead_enrichment_run()
    assert run.processed == 1 and run.created == 1 and run.errors == 0
    contact.refresh_from_db()
    company = Company.objects.get(organization=organization)
    assert (company.name, company.domain, company.website) == (
        "Acme Dental",
        "acme-dental.co.uk",
        "https://acme-dental.co.uk",
    )
    assert contact.company_id == company.pk and contact.timezone == "Europe/London"
    enrichment = ContactEnrichment.objects.get(contact=contact)
    assert enrichment.company_set and enrichment.timezone_set == "Europe/London"
    updated = Event.objects.filter(type="contact.updated", subject_id=str(contact.pk)).last()
    assert set(updated.data["changed"]) == {"company", "timezone"}


def test_running_twice_does_nothing_new_until_the_contact_changes(organization):
    contact = make(organization, email="bo@northwind.io", phone="+14155550100")
    jobs.lead_enrichment_run()
    again = jobs.lead_enrichment_run()
    assert (again.processed, again.created) == (0, 0)
    crm.contact_update(organization=organization, contact=contact, data={"name": "Bo Diaz"})
    third = jobs.lead_enrichment_run()
    assert (third.processed, third.created) == (1, 0)  # looked again, nothing to fill


def test_free_mail_and_existing_values_are_left_alone(organization):
    own = crm.company_create(organization=organization, name="Own Co", domain="own.example")
    free = make(organization, email="someone@gmail.com", phone="+442079460123")
    chosen = make(
        organization, email="x@bigcorp.com", company=own, timezone_name="America/Chicago",
        phone="+14155550101",
    )  # fmt: skip
    jobs.lead_enrichment_run()
    free.refresh_from_db()
    chosen.refresh_from_db()
    assert free.company_id is None and free.timezone == "Europe/London"
    assert chosen.company_id == own.pk and chosen.timezone == "America/Chicago"
    assert not Company.objects.filter(domain="gmail.com").exists()


def test_an_existing_company_with_the_domain_is_reused(organization):
    company = crm.company_create(organization=organization, name="Globex", domain="globex.com")
    contact = make(organization, email="hank@globex.com")
    jobs.lead_enrichment_run()
    contact.refresh_from_db()
    assert contact.company_id == company.pk
    assert Company.objects.filter(organization=organization).count() == 1


def test_duplicate_suggestions(organization, other_organization):
    a = make(organization, name="Jordan Alvarez", email="jordan.alvarez+gym@gmail.com")
    b = make(organization, name="Jordan A.", email="jordan.alvarez@gmail.com")
    c = make(organization, name="Sam Lee", email="sam@initech.com", phone="+14155550177")
    d = make(organization, name="Sam Lee", phone="+12125550177")  # same name, phone suffix
    e = make(organization, name="Priya Patel", email="priya@initech.com")
    g = make(organization, name="priya patel", email="p.patel@initech.com")  # name + company
    make(other_organization, name="Sam Lee", email="sam@elsewhere.io")
    jobs.lead_enrichment_run()
    pairs = {
        (frozenset((s.contact_id, s.other_id)), s.score, s.reason)
        for s in DuplicateSuggestion.objects.all()
    }
    assert pairs == {
        (frozenset((a.pk, b.pk)), 90, "same e-mail address (ignoring +tags and dots)"),
        (frozenset((c.pk, d.pk)), 80, "same name and phone number"),
        (frozenset((e.pk, g.pk)), 70, "same name and company"),
    }
    assert all(s.organization_id == organization.pk for s in DuplicateSuggestion.objects.all())
    assert jobs.lead_enrichment_run().processed == 0
    assert DuplicateSuggestion.objects.count() == 3


def test_disabled_organizations_are_skipped(organization):
    make(organization, email="z@zeta.io")
    RevenueSettings.objects.create(organization=organization, enrichment_enabled=False)
    assert jobs.lead_enrichment_run().processed == 0


def test_merged_contacts_are_skipped(organization):
    a = make(organization, email="m1@merge.io")
    b = make(organization, email="m2@merge.io")
    crm.contact_merge(organization=organization, survivor=a, duplicates=[b])
    jobs.lead_enrichment_run()
    assert not ContactEnrichment.objects.filter(contact=b).exists()
    assert Contact.objects.get(pk=a.pk).company is not None


@pytest.mark.parametrize(
    ("phone", "zone"),
    [
        ("+14155550100", "America/Los_Angeles"),
        ("+12125550100", "America/New_York"),
        ("+442079460000", "Europe/London"),
        ("+61293744000", "Australia/Sydney"),
        ("+18005550100", ""),  # toll-free: several zones
        ("", ""),
        ("not a phone", ""),
    ],
)
def test_timezone_from_phone(phone, zone):
    assert timezone_from_phone(phone) == zone


def test_domain_helpers():
    assert email_domain("A@Www.Example.COM") == "example.com"
    assert email_domain(None) == "" and email_domain("nope") == ""
    assert company_name_from_domain("acme-dental.co.uk") == "Acme Dental"
    assert company_name_from_domain("northwind.io") == "Northwind"
    assert company_name_from_domain("big_corp.com.au") == "Big Corp"
    assert canonical_email("J.Doe+x@GoogleMail.com") == "jdoe@gmail.com"
    assert canonical_email("j.doe+x@corp.com") == "j.doe@corp.com"


def test_a_number_with_several_zones_sets_none():
    # UK mobiles also serve the Channel Islands and the Isle of Man
    assert timezone_from_phone("+447700900123") == ""
