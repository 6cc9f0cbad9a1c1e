"""Threading: one conversation per contact whatever the channel; reopen; activity fields."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, Message
from apps.conversations.services import (
    conversation_for_contact,
    message_apply_status,
    message_record_inbound,
)
from apps.crm.services import contact_upsert
from apps.events.models import Event
from tests.providers import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(organization):
    return contact_upsert(
        organization=organization, phone="+14155550100", email="ana@example.com"
    ).contact


def test_conversation_for_contact_is_created_once(organization, contact):
    first = conversation_for_contact(organization=organization, contact=contact, channel="sms")
    again = conversation_for_contact(organization=organization, contact=contact, channel="sms")
    assert first.pk == again.pk
    created = Event.objects.filter(type="conversation.created")
    assert created.count() == 1
    assert created.get().data == {
        "conversation_id": str(first.pk),
        "contact_id": str(contact.pk),
        "status": "open",
        "channel": "sms",
    }


def test_inbound_updates_activity_window_and_waiting(organization, contact):
    sent_at = timezone.now() - timedelta(minutes=3)
    first = message_record_inbound(
        organization=organization,
        contact_id=contact.pk,
        channel="whatsapp",
        provider_message_id="w1",
        text="Hi there",
        sent_at=sent_at,
    )
    conversation = Conversation.objects.get()
    assert conversation.last_inbound_channel == "whatsapp"
    assert conversation.last_inbound_at == sent_at
    assert conversation.waiting_since is not None
    assert conversation.last_message_preview == "Hi there"
    waiting = conversation.waiting_since
    message_record_inbound(
        organization=organization,
        contact_id=contact.pk,
        channel="sms",
        provider_message_id="s1",
        text="Also by SMS",
    )
    conversation.refresh_from_db()
    assert conversation.waiting_since == waiting  # the oldest unanswered message
    assert conversation.last_inbound_channel == "sms"
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert first.created


@pytest.mark.parametrize("status", ["resolved", "snoozed"])
def test_resolved_or_snoozed_conversation_reopens(organization, contact, status):
    conversation = conversation_for_contact(organization=organization, contact=contact)
    Conversation.objects.filter(pk=conversation.pk).update(
        status=status, resolved_at=timezone.now(), snoozed_until=timezone.now() + timedelta(days=1)
    )
    result = message_record_inbound(
        organization=organization,
        contact_id=contact.pk,
        channel="sms",
        provider_message_id="s1",
        text="back",
    )
    assert result.reopened_from == status
    conversation.refresh_from_db()
    assert conversation.status == "open"
    if status == "resolved":
        assert conversation.resolved_at is None
    else:
        assert conversation.snoozed_until is None
    change = Event.objects.get(type="conversation.status_changed")
    assert change.data["from_status"] == status and change.data["status"] == "open"


def test_duplicate_provider_id_stores_and_emits_nothing(organization, contact, twilio):
    kwargs = {
        "organization": organization,
        "contact_id": contact.pk,
        "channel": "sms",
        "channel_connection_id": twilio.pk,
        "provider_message_id": "SM1",
        "text": "x",
    }
    assert message_record_inbound(**kwargs).created
    Conversation.objects.update(status="resolved")
    again = message_record_inbound(**kwargs)
    assert not again.created
    assert Message.objects.count() == 1
    assert Conversation.objects.get().status == "resolved"  # a duplicate does not reopen
    assert Event.objects.filter(type="message.received").count() == 1


def test_same_provider_id_on_two_channels_is_two_messages(organization, contact, twilio):
    other = f.twilio_channel(organization)
    for channel in (twilio, other):
        message_record_inbound(
            organization=organization,
            contact_id=contact.pk,
            channel="sms",
            channel_connection_id=channel.pk,
            provider_message_id="SM1",
        )
    assert Message.objects.count() == 2


def test_known_sender_takes_three_statements(
    client, organization, twilio, django_assert_num_queries
):
    from django.db import connection

    f.post_twilio(client, twilio, f.sample("twilio_inbound.form"))
    body = f.form_replace(f.sample("twilio_inbound.form"), MessageSid="SMsecond", Body="again")
    statements = []
    original = connection.connection.cursor

    def counting_cursor(*args, **kwargs):  # sees Django's statements and the prepared ones
        cursor = original(*args, **kwargs)
        execute = cursor.execute

        def counted(query, *a, **k):
            statements.append(query)
            return execute(query, *a, **k)

        cursor.execute = counted
        return cursor

    connection.connection.cursor = counting_cursor
    try:
        # Django's log sees the event insert, plus the savepoint pair that the test's own
        # transaction turns the view's BEGIN/COMMIT into
        with django_assert_num_queries(3):
            assert f.post_twilio(client, twilio, body).status_code == 200
    finally:
        del connection.connection.cursor
    # every statement on the wire: savepoint, sender lookup, insert + thread, event, release
    assert len(statements) == 5
    assert (
        "crm_contactidentity" in statements[1]
        and "INSERT INTO conversations_message" in statements[2]
    )
    assert Message.objects.count() == 2


def test_monotonic_status(organization, contact, twilio):
    message = f.sent_message(organization, twilio, "SMm", phone="+14155550100")
    for status in ("read", "delivered", "sent", "delivered"):
        message_apply_status(organization=organization, message_id=message.pk, status=status)
    message.refresh_from_db()
    assert message.status == "read"
    assert message.status_updates.count() == 3
    assert Event.objects.filter(type="message.read").count() == 1


def test_status_of_another_organization_is_ignored(organization, other_organization, twilio):
    message = f.sent_message(organization, twilio, "SMo")
    result = message_apply_status(
        organization=other_organization, message_id=message.pk, status="read"
    )
    assert result.message is None
    message.refresh_from_db()
    assert message.status == "sent"
