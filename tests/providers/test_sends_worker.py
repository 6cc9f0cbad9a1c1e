"""The main send paths end to end: API → queued row → a REAL Celery worker on `sends` →
fake provider on 127.0.0.1 → sent/failed (+ status callbacks through the real hook URL)."""

import itertools
import time

import pytest

from apps.conversations.models import Message
from apps.crm.models import ContactConsent
from apps.crm.services import contact_upsert
from apps.providers import services
from tests.factories import OrganizationFactory, api_key_for
from tests.providers import factories as f
from tests.support.http import Reply
from tests.support.services import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def api_client(org):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org)}")
    return client


def final(message_id, timeout=30):
    def done():
        message = Message.objects.get(pk=message_id)
        return message if message.status in ("sent", "failed") else None

    return wait_for(done, timeout=timeout, what=f"message {message_id} to be sent or failed")


def twilio_accepts(sid):
    body = f.sample_json("twilio_send_response_201.json")
    body["sid"] = sid
    return Reply(status=201, body=body)


def test_twilio_send_via_api_worker_and_status_callback(
    org, api_client, client, receiver, start_worker
):
    channel = f.twilio_channel(org, api_base=receiver.url)
    receiver.respond(twilio_accepts("SMworker1"))
    f.post_twilio(client, channel, f.sample("twilio_inbound.form"))  # the contact writes in
    contact_id = Message.objects.get().contact_id
    start_worker(queues="sends")
    response = api_client.post(
        "/api/v1/messages/",
        {"contact_id": str(contact_id), "text": "Hello from Twilio"},
        format="json",
    )
    assert response.status_code == 202
    message = final(response.json()["id"])
    assert (message.status, message.provider_message_id) == ("sent", "SMworker1")
    [request] = receiver.requests
    assert request.body == f.form_replace(
        f.sample("twilio_send_request.form"),
        StatusCallback=f"http://testserver/hooks/twilio/{channel.id}/status/",
    )
    assert request.headers["traceparent"].split("-")[1] == message.trace_id
    body = f.twilio_form(MessageSid="SMworker1", MessageStatus="delivered")
    assert f.post_twilio(client, channel, body, status=True).status_code == 200
    assert api_client.get(f"/api/v1/messages/{message.id}/").json()["status"] == "delivered"
    assert f.event_count(org, "message.sent") == 1 and f.event_count(org, "message.delivered") == 1


def test_whatsapp_429_then_success_and_timeout_then_success(org, receiver, start_worker):
    channel = f.whatsapp_channel(org, api_base=receiver.url, timeout=1)
    replies = iter(
        [
            Reply(
                status=400,
                body=f.sample_json("whatsapp_send_error_130429.json"),
                headers={"Retry-After": "1"},
            ),
            Reply(
                status=200, body=f.sample_json("whatsapp_send_response.json"), delay=2.5
            ),  # times out
            Reply(status=200, body=f.sample_json("whatsapp_send_response.json")),
        ]
    )
    receiver.respond(lambda request: next(replies))
    contact = contact_upsert(organization=org, identities=[("whatsapp_id", "16505551234")]).contact
    from apps.conversations.services import message_record_inbound, message_send

    message_record_inbound(
        organization=org,
        contact_id=contact.pk,
        channel="whatsapp",
        channel_connection_id=channel.pk,
        provider_message_id="wamid.in",
        text="hi",
    )
    message = message_send(
        organization=org, contact=contact, text="Hello! How can we help?", channel="whatsapp"
    )
    start_worker(queues="sends")
    message = final(message.id, timeout=45)
    assert message.status == "sent"
    assert message.send_attempts == 3
    assert len(receiver.requests) == 3
    assert all(r.json()["text"]["body"] == "Hello! How can we help?" for r in receiver.requests)
    history = list(message.status_updates.values_list("status", flat=True))
    assert history == ["sent"]


def test_permanent_failures_through_the_worker(org, receiver, start_worker):
    from apps.conversations.services import message_record_inbound, message_send

    twilio = f.twilio_channel(org, api_base=receiver.url)
    whatsapp = f.whatsapp_channel(org, api_base=receiver.url)

    def reply(request):
        if request.path.endswith("Messages.json"):
            return Reply(status=400, body=f.sample_json("twilio_send_error_21610.json"))
        return Reply(status=400, body=f.sample_json("whatsapp_send_error_131047.json"))

    receiver.respond(reply)
    sms_contact = contact_upsert(organization=org, phone="+14133881111").contact
    wa_contact = contact_upsert(
        organization=org, identities=[("whatsapp_id", "16505551234")]
    ).contact
    message_record_inbound(
        organization=org,
        contact_id=wa_contact.pk,
        channel="whatsapp",
        channel_connection_id=whatsapp.pk,
        provider_message_id="wamid.in",
        text="hi",
    )
    sms = message_send(
        organization=org, contact=sms_contact, text="Hi", channel="sms", channel_connection=twilio
    )
    wa = message_send(organization=org, contact=wa_contact, text="Hi", channel="whatsapp")
    start_worker(queues="sends")
    sms, wa = final(sms.id), final(wa.id)
    assert (sms.status, sms.error_code) == ("failed", "21610")
    assert ContactConsent.objects.get(contact=sms_contact, channel="sms").status == "opted_out"
    assert (wa.status, wa.error_code) == ("failed", "131047")
    assert "24-hour window" in wa.error_reason
    assert f.event_count(org, "message.failed") == 2


def test_rate_limited_sends_wait_and_all_go_out(org, receiver, start_worker):
    from apps.conversations.services import message_send

    channel = f.twilio_channel(org, api_base=receiver.url)  # 1 message/s
    counter = iter(range(100))
    receiver.respond(lambda request: twilio_accepts(f"SMrate{next(counter)}"))
    ids = []
    for n in range(3):
        contact = contact_upsert(organization=org, phone=f"+1413388111{n}").contact
        ids.append(
            message_send(
                organization=org,
                contact=contact,
                text=f"m{n}",
                channel="sms",
                channel_connection=channel,
            ).id
        )
    start_worker(queues="sends")
    messages = [final(i) for i in ids]
    assert [m.status for m in messages] == ["sent"] * 3
    assert all(m.error_code == "" for m in messages)
    times = sorted(r.received_at for r in receiver.requests)
    assert len(times) == 3
    # 1 message/s: the provider never saw two sends closer than the bucket allows (lower bound)
    assert all(b - a >= 0.8 for a, b in itertools.pairwise(times))


def test_sweeper_recovers_a_send_whose_task_was_lost(org, receiver, start_worker):
    """A broker outage at enqueue time leaves only the row; the beat sweeper republishes it."""
    from datetime import timedelta

    from django.utils import timezone

    channel = f.twilio_channel(org, api_base=receiver.url)
    receiver.respond(twilio_accepts("SMlost"))
    contact = contact_upsert(organization=org, phone="+14133881111").contact
    # as message_send leaves it when the publish after commit failed
    from apps.conversations.services import conversation_for_contact

    conversation = conversation_for_contact(organization=org, contact=contact)
    message = Message.objects.create(
        organization=org,
        conversation=conversation,
        contact=contact,
        direction="out",
        channel="sms",
        channel_connection=channel,
        sender_kind="agent",
        text="Hello from Twilio",
        status="queued",
        next_attempt_at=timezone.now() - timedelta(minutes=1),
        raw={"to": "+14133881111"},
    )
    start_worker(queues="sends")
    time.sleep(0.5)
    assert Message.objects.get(pk=message.pk).status == "queued"  # nobody published it
    assert services.sends_sweep() == [str(message.id)]
    assert final(message.id).provider_message_id == "SMlost"
