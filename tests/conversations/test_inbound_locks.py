"""Inbound threading and inbox actions lock the conversation row without blocking
foreign-key checks.

Found by the end-to-end suite: while n8n's call recorded a row pointing at a conversation
and emitted its event (holding the organization's event counter until commit), a customer's
reply locked that conversation `FOR UPDATE` and queued behind the counter; the first
transaction's deferred foreign-key check at COMMIT (`FOR KEY SHARE` on the conversation)
then queued behind the reply: a deadlock, and the Twilio webhook answered 500. Neither
changes a key column, so both take `FOR NO KEY UPDATE`, which foreign-key checks pass.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from apps.conversations.models import Conversation, Message
from apps.conversations.services import (
    conversation_set_status,
    message_event_data,
    message_record_inbound,
)
from apps.events.services import emit
from tests.conversations import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def _customer_replies(organization, person, conversation):
    return message_record_inbound(
        organization=organization,
        contact_id=person.pk,
        conversation_id=conversation.pk,
        channel="sms",
        provider_message_id="SM-reply",
        text="Thanks!",
    )


def _operator_resolves(organization, person, conversation):
    return conversation_set_status(
        organization=organization, conversation=conversation, status="resolved"
    )


@pytest.mark.parametrize("change", [_customer_replies, _operator_resolves])
def test_a_change_while_another_transaction_references_the_conversation(organization, change):
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "Hi", channel="sms")
    reply: dict = {}
    reply_pid: list[int] = []

    def concurrent_change():
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    reply_pid.append(cursor.fetchone()[0])
                reply["recorded"] = change(organization, person, conversation)
        except Exception as exc:  # recorded for the assertion below
            reply["error"] = exc
        finally:
            connection.close()

    with transaction.atomic():
        # A row pointing at the conversation (its FK is checked at COMMIT) and an event.
        note = Message.objects.create(
            organization=organization,
            conversation=conversation,
            contact=person,
            direction="out",
            channel="sms",
            is_internal_note=True,
            text="Called them back",
        )
        emit(
            organization=organization,
            type="message.sent",
            subject_type="message",
            subject_id=note.pk,
            data=message_event_data(note),
        )
        thread = threading.Thread(target=concurrent_change)
        thread.start()
        deadline = time.monotonic() + 10
        while not (reply_pid and _waiting_on_a_lock(reply_pid[0])):
            assert time.monotonic() < deadline, "the change never waited for the event counter"
            assert thread.is_alive(), reply
            time.sleep(0.02)
    thread.join(timeout=20)

    assert "error" not in reply, reply.get("error")
    conversation = Conversation.objects.get(pk=conversation.pk)
    if change is _customer_replies:
        assert reply["recorded"].created
        assert Message.objects.filter(conversation=conversation, text="Thanks!").exists()
        assert conversation.last_message_preview == "Thanks!"
    else:
        assert conversation.status == "resolved"
