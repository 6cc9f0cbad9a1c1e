import threading

import pytest
from django.db import connection, transaction

from apps.core.errors import ValidationFailed
from apps.crm.models import Contact, ContactIdentity
from apps.crm.services import contact_upsert
from apps.events.models import Event
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def events(org, type_):
    return Event.objects.filter(organization=org, type=type_).count()


def test_new_sender_creates_a_contact_with_every_identity(organization):
    result = contact_upsert(
        organization=organization,
        identities=[("whatsapp_id", "14155550100")],
        name="Ana",
        phone="whatsapp:+14155550100",
        source="whatsapp",
    )
    assert result.created
    contact = result.contact
    assert contact.phone == "+14155550100"
    assert set(contact.identities.values_list("kind", "value")) == {
        ("whatsapp_id", "14155550100"),
        ("phone", "+14155550100"),
    }
    assert events(organization, "contact.created") == 1


def test_same_identity_finds_the_same_contact(organization):
    first = contact_upsert(
        organization=organization, identities=[("manychat_id", "987")], name="Bo"
    )
    again = contact_upsert(
        organization=organization, identities=[("manychat_id", "987")], name="Bo"
    )
    assert again.contact.pk == first.contact.pk
    assert not again.created and again.matched_by == "manychat_id"
    assert events(organization, "contact.created") == 1
    assert events(organization, "contact.updated") == 0


def test_email_match_gains_the_new_identity_and_fills_blanks(organization):
    first = contact_upsert(organization=organization, email="Cy@Example.com")
    result = contact_upsert(
        organization=organization,
        identities=[("whatsapp_bsuid", "US.13491208655302741918")],
        email="cy@example.com",
        name="Cy",
        phone="415 555 0101",
    )
    assert result.contact.pk == first.contact.pk and result.matched_by == "email"
    assert result.changed == ["name", "phone"]
    assert result.contact.phone == "+14155550101"
    assert ContactIdentity.objects.filter(contact=first.contact, kind="whatsapp_bsuid").exists()
    assert events(organization, "contact.updated") == 1


def test_phone_match_across_formats(organization):
    first = contact_upsert(organization=organization, phone="+1 (415) 555-0102")
    again = contact_upsert(organization=organization, identities=[("phone", "4155550102")])
    assert again.contact.pk == first.contact.pk


def test_bsuid_wins_over_phone_when_they_disagree(organization):
    by_phone = contact_upsert(organization=organization, phone="+14155550103").contact
    by_bsuid = contact_upsert(
        organization=organization, identities=[("whatsapp_bsuid", "US.1")]
    ).contact
    assert by_phone.pk != by_bsuid.pk
    result = contact_upsert(
        organization=organization, identities=[("whatsapp_bsuid", "US.1")], phone="+14155550103"
    )
    assert result.contact.pk == by_bsuid.pk


def test_identities_are_per_organization(organization, other_organization):
    a = contact_upsert(organization=organization, identities=[("manychat_id", "1")]).contact
    b = contact_upsert(organization=other_organization, identities=[("manychat_id", "1")]).contact
    assert a.pk != b.pk


def test_merged_contact_resolves_to_the_survivor(organization):
    loser = contact_upsert(organization=organization, identities=[("manychat_id", "m1")]).contact
    survivor = contact_upsert(organization=organization, email="s@example.com").contact
    Contact.objects.filter(pk=loser.pk).update(merged_into=survivor)
    assert (
        contact_upsert(organization=organization, identities=[("manychat_id", "m1")]).contact.pk
        == survivor.pk
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phone": "not a phone"},
        {"email": "nope@"},
        {"identities": [("fax", "123")]},
        {"identities": [("manychat_id", "   ")]},
        {},
    ],
)
def test_bad_identities_write_nothing(organization, kwargs):
    with pytest.raises(ValidationFailed):
        contact_upsert(organization=organization, **kwargs)
    assert not Contact.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_messages_create_one_contact():
    organization = OrganizationFactory()
    barrier = threading.Barrier(10)
    ids, errors = [], []

    def first_message():
        try:
            barrier.wait()
            with transaction.atomic():
                result = contact_upsert(
                    organization=organization,
                    identities=[("whatsapp_id", "447700900123")],
                    phone="+447700900123",
                    source="whatsapp",
                )
            ids.append(result.contact.pk)
        except Exception as exc:  # collected so the assertion shows it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_message) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 1
    assert Contact.objects.filter(organization=organization).count() == 1
    assert events(organization, "contact.created") == 1


def test_consent_opt_out_then_back_in(organization):
    from apps.crm.services import contact_set_consent

    contact = contact_upsert(organization=organization, phone="+14155550104").contact
    contact_set_consent(
        organization=organization,
        contact=contact,
        channel="sms",
        opted_in=False,
        reason="keyword STOP",
        keyword="STOP",
        source="inbound",
    )
    contact_set_consent(
        organization=organization,
        contact=contact,
        channel="sms",
        opted_in=False,
        reason="keyword STOP",
        keyword="STOP",
        source="inbound",
    )
    assert events(organization, "contact.opted_out") == 1
    consent = contact.consents.get(channel="sms")
    assert consent.status == "opted_out" and consent.reason == "keyword STOP"
    contact_set_consent(
        organization=organization, contact=contact, channel="sms", opted_in=True, reason="START"
    )
    assert contact.consents.get(channel="sms").status == "opted_in"
