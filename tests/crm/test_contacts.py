"""Contact create (duplicate detection), update, identities and consent."""

import pytest

from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.crm import services
from apps.crm.models import Contact, ContactIdentity
from apps.events.models import Event
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


def test_create_stores_every_field_and_emits_created_then_opted_out(organization, member):
    result = services.contact_create(
        organization=organization,
        name="  Maya Chen ",
        email="Maya@Example.com",
        phone="(415) 555-0142",
        tags=["trial", "Trial", " mornings ", ""],
        custom_fields={"goal": "strength"},
        lifecycle_stage="subscriber",
        source="api",
        owner=member,
        timezone_name="America/Los_Angeles",
        consent={"sms": {"opted_in": False, "reason": "asked"}, "email": {"opted_in": True}},
    )
    contact = result.contact
    assert result.created and result.matched_by is None
    assert (contact.name, contact.email, contact.phone) == (
        "Maya Chen",
        "maya@example.com",
        "+14155550142",
    )
    assert contact.tags == ["trial", "mornings"]
    assert contact.custom_fields == {"goal": "strength"}
    assert contact.owner == member and contact.timezone == "America/Los_Angeles"
    assert dict(contact.consents.values_list("channel", "status")) == {
        "sms": "opted_out",
        "email": "opted_in",
    }
    assert set(contact.identities.values_list("kind", flat=True)) == {"email", "phone"}
    assert f.event_types(organization) == ["contact.created", "contact.opted_out"]
    opted_out = f.events(organization, "contact.opted_out")[0]
    assert opted_out.data["channel"] == "sms" and opted_out.data["reason"] == "asked"


@pytest.mark.parametrize(
    ("second", "matched_by"),
    [
        ({"identities": [("manychat_id", "mc-1")]}, "manychat_id"),
        ({"email": "MAYA@example.com"}, "email"),
        ({"phone": "+1 415 555 0142"}, "phone"),
    ],
)
def test_duplicate_detection_identity_then_email_then_phone(organization, second, matched_by):
    first = services.contact_create(
        organization=organization,
        identities=[("manychat_id", "mc-1")],
        email="maya@example.com",
        phone="4155550142",
    ).contact
    if matched_by == "phone":  # a contact known by phone only
        ContactIdentity.objects.filter(contact=first).exclude(kind="phone").delete()
        Contact.objects.filter(pk=first.pk).update(email=None)
    result = services.contact_create(organization=organization, **second)
    assert not result.created
    assert result.contact.pk == first.pk and result.matched_by == matched_by
    assert Contact.objects.filter(organization=organization).count() == 1


def test_a_match_fills_blanks_and_adds_tags_but_overwrites_nothing(organization, member):
    first = f.contact(
        organization,
        name="Maya",
        email="maya@example.com",
        tags=["trial"],
        custom_fields={"goal": "strength"},
        lifecycle_stage="lead",
    )
    result = services.contact_create(
        organization=organization,
        name="Someone Else",
        email="maya@example.com",
        phone="4155550142",
        tags=["TRIAL", "vip"],
        custom_fields={"goal": "cardio", "plan": "unlimited"},
        lifecycle_stage="customer",
        owner=member,
    )
    contact = result.contact
    contact.refresh_from_db()
    assert contact.pk == first.pk and result.matched_by == "email"
    assert contact.name == "Maya" and contact.lifecycle_stage == "lead"
    assert contact.phone == "+14155550142" and contact.owner == member
    assert contact.tags == ["trial", "vip"]
    assert contact.custom_fields == {"goal": "strength", "plan": "unlimited"}
    assert set(result.changed) == {"phone", "tags", "custom_fields", "owner"}
    updated = f.events(organization, "contact.updated")
    assert len(updated) == 1 and set(updated[0].data["changed"]) == set(result.changed)


def test_the_same_create_twice_changes_nothing_the_second_time(organization):
    kwargs = {"name": "Bo", "email": "bo@example.com", "tags": ["x"]}
    services.contact_create(organization=organization, **kwargs)
    services.contact_create(organization=organization, **kwargs)
    assert f.event_types(organization) == ["contact.created"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "nope@"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"email": "a@example.com", "tags": ["x" * 51]}, "tags"),
        ({"email": "a@example.com", "tags": "vip"}, "tags"),
        ({"email": "a@example.com", "custom_fields": ["a"]}, "custom_fields"),
        ({"email": "a@example.com", "lifecycle_stage": "vip"}, "lifecycle_stage"),
        ({"email": "a@example.com", "timezone_name": "Mars/Olympus"}, "timezone"),
        ({"email": "a@example.com", "consent": {"fax": {"opted_in": True}}}, "consent"),
        ({"email": "a@example.com", "consent": {"sms": {"opted_in": "yes"}}}, "consent"),
        ({}, "email"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(organization, kwargs, field):
    with pytest.raises(ValidationFailed) as caught:
        services.contact_create(organization=organization, **kwargs)
    assert field in caught.value.details
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_a_foreign_owner_or_company_is_not_found(organization, other_organization, other_member):
    with pytest.raises(NotFound) as caught:
        services.contact_create(
            organization=organization, email="a@example.com", owner=other_member
        )
    assert "owner_id" in caught.value.details
    company = services.company_create(organization=other_organization, name="Harbor")
    with pytest.raises(NotFound):
        services.contact_create(organization=organization, email="a@example.com", company=company)
    assert not Contact.objects.filter(organization=organization).exists()


def test_update_changes_only_given_fields_and_emits_once(organization, member):
    contact = f.contact(
        organization, email="maya@example.com", tags=["a", "b"], custom_fields={"x": 1, "y": 2}
    )
    services.contact_update(
        organization=organization,
        contact=contact,
        data={
            "tags": ["c"],
            "custom_fields": {"y": None, "z": 3},
            "lifecycle_stage": "customer",
            "owner": member,
            "name": "Maya Chen",
        },
        consent={"whatsapp": {"opted_in": True}},
    )
    contact.refresh_from_db()
    assert contact.tags == ["c"] and contact.custom_fields == {"x": 1, "z": 3}
    assert contact.lifecycle_stage == "customer" and contact.owner == member
    assert contact.email == "maya@example.com"
    updated = f.events(organization, "contact.updated")
    assert len(updated) == 1
    assert set(updated[0].data["changed"]) == {
        "tags",
        "custom_fields",
        "lifecycle_stage",
        "owner",
        "name",
        "consent.whatsapp",
    }


def test_update_with_the_same_values_emits_nothing(organization):
    contact = f.contact(organization, email="a@example.com", tags=["a"])
    before = len(f.events(organization))
    services.contact_update(
        organization=organization, contact=contact, data={"tags": ["a"], "email": "A@example.com"}
    )
    assert len(f.events(organization)) == before


def test_changing_the_email_moves_its_identity(organization):
    contact = f.contact(organization, email="old@example.com")
    services.contact_update(
        organization=organization, contact=contact, data={"email": "new@example.com"}
    )
    assert list(contact.identities.values_list("kind", "value")) == [("email", "new@example.com")]
    assert (
        services.contact_upsert(organization=organization, email="new@example.com").contact
        == contact
    )


def test_taking_another_contacts_email_is_a_conflict(organization):
    f.contact(organization, email="taken@example.com")
    contact = f.contact(organization, email="mine@example.com")
    with pytest.raises(Conflict) as caught:
        services.contact_update(
            organization=organization, contact=contact, data={"email": "taken@example.com"}
        )
    assert caught.value.code == "duplicate_contact"
    contact.refresh_from_db()
    assert contact.email == "mine@example.com"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"phone": "abc"}, "phone"),
        ({"organization": None}, "organization"),
        ({"tags": [1]}, "tags"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
    ],
)
def test_bad_updates_name_the_field(organization, data, field):
    contact = f.contact(organization, email="a@example.com")
    before = len(f.events(organization))
    with pytest.raises(ValidationFailed) as caught:
        services.contact_update(organization=organization, contact=contact, data=data)
    assert field in caught.value.details
    assert len(f.events(organization)) == before


def test_opting_out_through_update_emits_opted_out_not_updated(organization):
    contact = f.contact(organization, email="a@example.com")
    services.contact_update(
        organization=organization,
        contact=contact,
        data={},
        consent={"email": {"opted_in": False, "reason": "unsubscribe link"}},
    )
    assert f.event_types(organization) == ["contact.created", "contact.opted_out"]


def test_identity_add_is_idempotent_and_refuses_another_contacts(organization):
    a = f.contact(organization, email="a@example.com")
    b = f.contact(organization, email="b@example.com")
    first = services.contact_identity_add(
        organization=organization, contact=a, kind="whatsapp_id", value="+1 415 555 0100"
    )
    again = services.contact_identity_add(
        organization=organization, contact=a, kind="whatsapp_id", value="14155550100"
    )
    assert first.pk == again.pk and first.value == "14155550100"
    with pytest.raises(Conflict):
        services.contact_identity_add(
            organization=organization, contact=b, kind="whatsapp_id", value="14155550100"
        )
