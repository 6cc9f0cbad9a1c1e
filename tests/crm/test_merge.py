"""Merging duplicate contacts moves everything to the survivor, once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, Message, ReadState
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.crm import services
from apps.crm.models import Contact, ContactConsent
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(organization, member):
    survivor = f.contact(
        organization,
        name="Maya Chen",
        email="maya@example.com",
        tags=["member"],
        custom_fields={"goal": "strength"},
    )
    loser = f.contact(
        organization,
        phone="+14155550142",
        identities=[("whatsapp_id", "14155550142")],
        tags=["trial"],
        custom_fields={"goal": "cardio", "shoe": "38"},
        owner=member,
        lifecycle_stage="opportunity",
    )
    return survivor, loser


def test_every_relation_moves_to_the_survivor(organization, pair, member):
    survivor, loser = pair
    lead = f.lead(organization, contact=loser, source="instagram")
    deal = f.deal(organization, contact=loser)
    task = services.task_create(organization=organization, title="Call", contact=loser)
    note = services.note_create(organization=organization, contact=loser, body="Hi")
    booking = f.booking(loser)
    f.message(survivor, "first, by email")
    moved = f.message(loser, "hello on whatsapp")
    ReadState.objects.create(
        organization=organization, conversation=moved.conversation, user=member
    )

    result = services.contact_merge(
        organization=organization, survivor=survivor, duplicates=[loser]
    )

    assert result.pk == survivor.pk
    loser.refresh_from_db()
    survivor.refresh_from_db()
    assert loser.merged_into_id == survivor.pk
    assert set(survivor.identities.values_list("kind", "value")) == {
        ("email", "maya@example.com"),
        ("phone", "+14155550142"),
        ("whatsapp_id", "14155550142"),
    }
    assert not loser.identities.exists()
    for obj in (lead, deal, task, note, booking):
        obj.refresh_from_db()
        assert obj.contact_id == survivor.pk, type(obj).__name__
    # one conversation per contact: the loser's messages joined the survivor's
    assert Conversation.objects.filter(contact=survivor).count() == 1
    assert not Conversation.objects.filter(contact=loser).exists()
    conversation = Conversation.objects.get(contact=survivor)
    assert set(conversation.messages.values_list("text", flat=True)) == {
        "first, by email",
        "hello on whatsapp",
    }
    assert set(Message.objects.filter(pk=moved.pk).values_list("contact_id", flat=True)) == {
        survivor.pk
    }
    assert ReadState.objects.filter(conversation=conversation, user=member).exists()
    # the survivor keeps its values and fills blanks
    assert survivor.name == "Maya Chen" and survivor.email == "maya@example.com"
    assert survivor.phone == "+14155550142" and survivor.owner == member
    assert survivor.tags == ["member", "trial"]
    assert survivor.custom_fields == {"goal": "strength", "shoe": "38"}
    assert survivor.lifecycle_stage == "opportunity"


def test_merge_emits_one_contact_updated_with_the_merged_ids(organization, pair):
    survivor, loser = pair
    before = len(f.events(organization))
    services.contact_merge(organization=organization, survivor=survivor, duplicates=[loser])
    new = f.events(organization)[before:]
    assert [e.type for e in new] == ["contact.updated"]
    assert new[0].subject_id == str(survivor.pk)
    assert new[0].data["merged_contact_ids"] == [str(loser.pk)]
    assert "phone" in new[0].data["changed"]


def test_a_loser_conversation_moves_whole_when_the_survivor_has_none(organization, pair):
    survivor, loser = pair
    message = f.message(loser, "only here")
    services.contact_merge(organization=organization, survivor=survivor, duplicates=[loser])
    conversation = Conversation.objects.get(contact=survivor)
    assert conversation.pk == message.conversation_id
    assert conversation.messages.get().contact_id == survivor.pk


def test_consent_keeps_the_most_recent_choice_per_channel(organization, pair):
    survivor, loser = pair
    services.contact_set_consent(
        organization=organization, contact=survivor, channel="sms", opted_in=True
    )
    services.contact_set_consent(
        organization=organization, contact=loser, channel="sms", opted_in=False, reason="STOP"
    )
    services.contact_set_consent(
        organization=organization, contact=loser, channel="email", opted_in=True
    )
    services.contact_set_consent(
        organization=organization, contact=survivor, channel="whatsapp", opted_in=False
    )
    ContactConsent.objects.filter(contact=survivor, channel="sms").update(
        changed_at=timezone.now() - timedelta(days=3)
    )
    services.contact_merge(organization=organization, survivor=survivor, duplicates=[loser])
    assert dict(
        ContactConsent.objects.filter(contact=survivor).values_list("channel", "status")
    ) == {
        "sms": "opted_out",
        "email": "opted_in",
        "whatsapp": "opted_out",
    }
    assert not ContactConsent.objects.filter(contact=loser).exists()


def test_merging_several_and_chains_resolve_to_the_survivor(organization):
    a, b, c = (f.contact(organization, identities=[("manychat_id", x)]) for x in "abc")
    services.contact_merge(organization=organization, survivor=b, duplicates=[c])
    services.contact_merge(organization=organization, survivor=a, duplicates=[b])
    assert set(Contact.objects.filter(merged_into=a).values_list("pk", flat=True)) == {b.pk, c.pk}
    found = services.contact_upsert(organization=organization, identities=[("manychat_id", "c")])
    assert found.contact.pk == a.pk


def test_merged_contacts_leave_lists_and_upserts(organization, pair):
    from apps.crm.selectors import contact_list

    survivor, loser = pair
    services.contact_merge(organization=organization, survivor=survivor, duplicates=[loser])
    assert list(contact_list(organization=organization)) == [survivor]
    again = services.contact_upsert(organization=organization, phone="4155550142")
    assert again.contact.pk == survivor.pk


def test_merging_twice_is_a_conflict(organization, pair):
    survivor, loser = pair
    services.contact_merge(organization=organization, survivor=survivor, duplicates=[loser])
    with pytest.raises(Conflict):
        services.contact_merge(organization=organization, survivor=survivor, duplicates=[loser])


def test_bad_merges_change_nothing(organization, other_organization, pair):
    survivor, loser = pair
    foreign = f.contact(other_organization, email="x@example.com")
    before = len(f.events(organization))
    with pytest.raises(NotFound):
        services.contact_merge(organization=organization, survivor=survivor, duplicates=[foreign])
    with pytest.raises(ValidationFailed):
        services.contact_merge(organization=organization, survivor=survivor, duplicates=[survivor])
    with pytest.raises(ValidationFailed):
        services.contact_merge(organization=organization, survivor=survivor, duplicates=[])
    assert len(f.events(organization)) == before
    loser.refresh_from_db()
    assert loser.merged_into_id is None
