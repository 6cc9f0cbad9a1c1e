"""Sends against fake provider servers on 127.0.0.1, asserting the exact requests they got.

These call the send worker's service in-process (the provider call is real HTTP); the main
paths also run through a real Celery worker in test_sends_worker.py.
"""

import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Message
from apps.conversations.services import message_record_inbound, message_send
from apps.crm.models import ContactConsent
from apps.crm.services import contact_set_consent, contact_upsert
from apps.niches.models import PlatformTemplate
from apps.providers import services
from tests.providers import factories as f
from tests.support.http import Reply

pytestmark = pytest.mark.django_db


def queue(
    organization,
    channel,
    *,
    kind,
    text="Hello",
    identities=(),
    phone=None,
    email=None,
    window=True,
    **kwargs,
):
    contact = contact_upsert(
        organization=organization, identities=list(identities), phone=phone, email=email
    ).contact
    if window:
        message_record_inbound(
            organization=organization,
            contact_id=contact.pk,
            channel=kind,
            channel_connection_id=channel.pk,
            provider_message_id=f"in-{contact.pk}",
            text="hi",
        )
    return message_send(
        organization=organization,
        contact=contact,
        text=text,
        channel=kind,
        channel_connection=channel,
        **kwargs,
    )


def deliver(message):
    result = services.message_deliver(message_id=message.id)
    message.refresh_from_db()
    return result


def sample_reply(name, status=200, **headers):
    return Reply(status=status, body=f.sample_json(name), headers=headers)


# --- exact request shapes -----------------------------------------------------------------------


def test_twilio_sms_request_matches_the_sample(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("twilio_send_response_201.json", status=201))
    message = queue(
        organization, channel, kind="sms", text="Hello from Twilio", phone="+14133881111"
    )
    assert deliver(message).outcome == "sent"
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"
    expected = f.form_replace(
        f.sample("twilio_send_request.form"),
        StatusCallback=f"http://testserver/hooks/twilio/{channel.id}/status/",
    )
    assert request.body == expected
    auth = base64.b64decode(request.headers["authorization"].split()[1]).decode()
    assert auth == f"AC00000000000000000000000000000000:{f.TWILIO_TOKEN}"
    assert request.headers["traceparent"].startswith("00-")
    assert (message.status, message.provider_message_id) == (
        "sent",
        "SM1ad8ee5b2d2a4d5d8f6e1c2b3a4d5e6f",
    )
    assert message.sent_at is not None and message.send_attempts == 1
    assert f.event_count(organization, "message.sent") == 1


def test_twilio_whatsapp_template_request_matches_the_sample(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("twilio_send_response_201.json", status=201))
    PlatformTemplate.objects.create(
        organization=organization,
        channel="whatsapp",
        purpose="booking_confirmation",
        name="HXb5b62575e6e4ff6129ad7c8efe1f983e",
        body="Your appointment is on {{1}} at {{2}}.",
    )
    message = queue(
        organization,
        channel,
        kind="whatsapp",
        text="",
        phone="+14133881111",
        window=False,
        purpose="booking_confirmation",
        template_variables=["12/1", "3pm"],
    )
    assert message.text == "Your appointment is on 12/1 at 3pm."
    assert deliver(message).outcome == "sent"
    expected = f.form_replace(
        f.sample("twilio_whatsapp_send_template_request.form"),
        StatusCallback=f"http://testserver/hooks/twilio/{channel.id}/status/",
    )
    assert receiver.requests[0].body == expected


def test_whatsapp_text_request_matches_the_sample(organization, receiver):
    channel = f.whatsapp_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("whatsapp_send_response.json"))
    message = queue(
        organization,
        channel,
        kind="whatsapp",
        text="Hello! How can we help?",
        identities=[("whatsapp_id", "16505551234")],
    )
    assert deliver(message).outcome == "sent"
    [request] = receiver.requests
    assert request.path == "/v25.0/1122334455667/messages"
    assert request.headers["authorization"] == "Bearer EAAG-test-access-token"
    expected = {
        **f.sample_json("whatsapp_send_text_request.json"),
        "biz_opaque_callback_data": f"outbox:{message.id}",
    }
    assert request.json() == expected
    assert (
        message.provider_message_id == "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    )


def test_whatsapp_template_request_matches_the_sample(organization, receiver):
    channel = f.whatsapp_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("whatsapp_send_response.json"))
    PlatformTemplate.objects.create(
        organization=None,
        channel="whatsapp",
        purpose="follow_up",
        name="order_update",
        body="Hi {{1}}, about {{2}}",
    )
    message = queue(
        organization,
        channel,
        kind="whatsapp",
        text="",
        identities=[("whatsapp_id", "16505551234")],
        window=False,
        purpose="follow_up",
        template_variables=["Ada", "#1234"],
    )
    assert deliver(message).outcome == "sent"
    assert receiver.requests[0].json() == f.sample_json("whatsapp_send_template_request.json")


def test_manychat_request_matches_the_sample(organization, receiver):
    channel = f.manychat_channel(organization, api_base=receiver.url)
    receiver.respond(Reply(body={"status": "success"}))
    message = queue(
        organization,
        channel,
        kind="manychat",
        text="Hello! How can I help you today?",
        identities=[("manychat_id", "1515862162")],
    )
    assert deliver(message).outcome == "sent"
    [request] = receiver.requests
    assert request.path == "/fb/sending/sendContent"
    assert request.headers["authorization"] == "Bearer mc-api-key-123456"
    assert request.json() == f.sample_json("manychat_send_content_request.json")
    assert message.status == "sent" and message.provider_message_id is None


def test_mailgun_send_through_anymail_threads_the_reply(organization, receiver):
    channel = f.mailgun_channel(organization, api_base=receiver.url + "/v3")
    receiver.respond(
        Reply(body={"id": "<20240101.1@inbound.example.com>", "message": "Queued. Thank you."})
    )
    contact = contact_upsert(organization=organization, email="ana@example.com").contact
    message_record_inbound(
        organization=organization,
        contact_id=contact.pk,
        channel="email",
        channel_connection_id=channel.pk,
        provider_message_id="orig@mail.example.org",
        email_message_id="orig@mail.example.org",
        subject="Class times",
        text="When are your classes?",
    )
    message = message_send(
        organization=organization, contact=contact, text="Mornings at 7.", channel="email"
    )
    assert deliver(message).outcome == "sent"
    [request] = receiver.requests
    assert request.path == "/v3/inbound.example.com/messages"
    form = request.form()
    assert (form["to"], form["text"], form["subject"]) == (
        "ana@example.com",
        "Mornings at 7.",
        "Re: Class times",
    )
    assert form["from"] == "hello@inbound.example.com"
    assert form["h:In-Reply-To"] == form["h:References"] == "<orig@mail.example.org>"
    assert form["h:Message-Id"].endswith("@inbound.example.com>")
    assert message.provider_message_id == "20240101.1@inbound.example.com"
    assert message.email_message_id.endswith("@inbound.example.com")


# --- error mapping --------------------------------------------------------------------------------


def test_twilio_21610_is_final_and_opts_the_contact_out(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("twilio_send_error_21610.json", status=400))
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    assert deliver(message).outcome == "failed"
    assert (message.status, message.error_code) == ("failed", "21610")
    assert "STOP" in message.error_reason
    assert ContactConsent.objects.get(contact=message.contact, channel="sms").status == "opted_out"
    assert f.event_count(organization, "message.failed") == 1
    assert f.event_count(organization, "contact.opted_out") == 1


@pytest.mark.parametrize(
    ("provider", "sample", "status", "code", "words"),
    [
        ("twilio", "twilio_send_error_63016.json", 400, "63016", "24-hour window"),
        ("whatsapp", "whatsapp_send_error_131047.json", 400, "131047", "24-hour window"),
        (
            "twilio",
            {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400},
            400,
            "21211",
            "Invalid",
        ),
        (
            "whatsapp",
            {"error": {"code": 131026, "message": "Message undeliverable"}},
            400,
            "131026",
            "invalid",
        ),
    ],
)
def test_permanent_errors_are_final_with_their_reason(
    organization, receiver, provider, sample, status, code, words
):
    make = f.twilio_channel if provider == "twilio" else f.whatsapp_channel
    channel = make(organization, api_base=receiver.url)
    body = f.sample_json(sample) if isinstance(sample, str) else sample
    receiver.respond(Reply(status=status, body=body))
    message = queue(
        organization,
        channel,
        kind="whatsapp",
        phone="+14133881111",
        identities=[("whatsapp_id", "14133881111")],
    )
    assert deliver(message).outcome == "failed"
    assert (message.status, message.error_code) == ("failed", code)
    assert words in message.error_reason
    assert message.next_attempt_at is None
    event = f.event_count(organization, "message.failed")
    assert event == 1


@pytest.mark.parametrize(
    ("provider", "reply"),
    [
        ("twilio", Reply(status=429, body=f.sample_json("twilio_send_error_20429.json"))),
        ("whatsapp", Reply(status=400, body=f.sample_json("whatsapp_send_error_130429.json"))),
        ("whatsapp", Reply(status=400, body=f.sample_json("whatsapp_send_error_131056.json"))),
        ("twilio", Reply(status=503, body="upstream down")),
        ("whatsapp", Reply(status=500, body={"error": {"message": "oops"}})),
    ],
)
def test_transient_errors_are_rescheduled(organization, receiver, provider, reply):
    make = f.twilio_channel if provider == "twilio" else f.whatsapp_channel
    channel = make(organization, api_base=receiver.url)
    receiver.respond(reply)
    message = queue(
        organization,
        channel,
        kind="whatsapp",
        phone="+14133881111",
        identities=[("whatsapp_id", "14133881111")],
    )
    before = timezone.now()
    result = deliver(message)
    assert result.outcome == "retry" and 0 < result.retry_in <= 2.0
    assert message.status == "queued" and message.send_attempts == 1
    assert message.next_attempt_at > before
    assert message.error_code and message.error_reason
    assert f.event_count(organization, "message.failed") == 0


def test_timeout_is_retried(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url, timeout=0.5)
    receiver.respond(
        Reply(status=201, body=f.sample_json("twilio_send_response_201.json"), delay=1.5)
    )
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    assert deliver(message).outcome == "retry"
    assert (message.status, message.error_code) == ("queued", "timeout")


def test_retries_are_bounded(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    receiver.respond(Reply(status=503, body="down"))
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    Message.objects.filter(pk=message.pk).update(send_attempts=services.MAX_SEND_ATTEMPTS - 1)
    assert deliver(message).outcome == "failed"
    assert message.error_reason.startswith(f"Gave up after {services.MAX_SEND_ATTEMPTS} attempts")


def test_retry_after_is_honoured(organization, receiver):
    channel = f.whatsapp_channel(organization, api_base=receiver.url)
    receiver.respond(
        Reply(status=429, body={"error": {"code": 130429}}, headers={"Retry-After": "30"})
    )
    message = queue(
        organization, channel, kind="whatsapp", identities=[("whatsapp_id", "14133881111")]
    )
    assert deliver(message).retry_in >= 30


def test_backoff_grows_with_jitter():
    delays = [services.retry_delay(n) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(services.RETRY_MAX_SECONDS, services.RETRY_BASE_SECONDS * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling


# --- policy at send time ------------------------------------------------------------------------


def twilio_accepts(request):
    """Twilio's 201 with a fresh SID per request."""
    body = f.sample_json("twilio_send_response_201.json")
    body["sid"] = f"SM{time.monotonic_ns():032x}"[:34]
    return Reply(status=201, body=body)


def test_rate_limit_waits_instead_of_failing(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)  # 1 message/s per long code
    receiver.respond(twilio_accepts)
    first = queue(organization, channel, kind="sms", phone="+14133881111")
    second = queue(organization, channel, kind="sms", phone="+14133881112")
    assert deliver(first).outcome == "sent"
    result = deliver(second)
    assert result.outcome == "rate_limited" and 0 < result.retry_in <= 1.0
    assert (second.status, second.send_attempts) == ("queued", 0)
    assert second.next_attempt_at > timezone.now() - timedelta(seconds=1)
    assert len(receiver.requests) == 1
    time.sleep(result.retry_in + 0.05)
    assert deliver(second).outcome == "sent"


def test_opted_out_after_queueing_is_never_sent(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    contact_set_consent(
        organization=organization, contact=message.contact, channel="sms", opted_in=False
    )
    assert deliver(message).outcome == "failed"
    assert message.error_code == "opted_out"
    assert receiver.requests == []


def test_disabled_channel_fails_the_send(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    services.channel_update(channel=channel, status="disabled")
    assert deliver(message).outcome == "failed"
    assert message.error_code == "no_channel"


def test_a_claimed_message_is_not_sent_twice(organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("twilio_send_response_201.json", status=201))
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    assert deliver(message).outcome == "sent"
    assert deliver(message).outcome == "skipped"
    assert len(receiver.requests) == 1


def test_sweeper_requeues_lost_and_stuck_sends(organization, twilio):
    lost = queue(organization, twilio, kind="sms", phone="+14133881111")
    stuck = queue(organization, twilio, kind="sms", phone="+14133881112")
    fresh = queue(organization, twilio, kind="sms", phone="+14133881113")
    past = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=lost.pk).update(next_attempt_at=past)
    Message.objects.filter(pk=stuck.pk).update(
        status="sending", send_attempts=1, next_attempt_at=past
    )
    published = services.sends_sweep()
    assert set(published) == {str(lost.id), str(stuck.id)}
    stuck.refresh_from_db()
    assert stuck.status == "queued"
    fresh.refresh_from_db()
    assert fresh.status == "queued"


def test_send_retry_replays_a_failed_message(organization, receiver):
    from apps.conversations.services import message_send_retry

    channel = f.twilio_channel(organization, api_base=receiver.url, rate_per_second=50)
    receiver.respond(Reply(status=400, body={"code": 21211, "message": "bad"}))
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    deliver(message)
    assert message.status == "failed"
    receiver.respond(sample_reply("twilio_send_response_201.json", status=201))
    message_send_retry(organization=organization, message=message)
    assert deliver(message).outcome == "sent"
    assert message.error_code == "" and message.status == "sent"


def test_a_status_that_beats_the_send_record_is_applied_after(client, organization, receiver):
    channel = f.twilio_channel(organization, api_base=receiver.url)
    receiver.respond(sample_reply("twilio_send_response_201.json", status=201))
    message = queue(organization, channel, kind="sms", phone="+14133881111")
    early = f.twilio_form(
        MessageSid="SM1ad8ee5b2d2a4d5d8f6e1c2b3a4d5e6f", MessageStatus="delivered"
    )
    assert f.post_twilio(client, channel, early, status=True).status_code == 200
    assert deliver(message).outcome == "sent"
    message.refresh_from_db()
    assert message.status == "delivered"
    assert f.event_count(organization, "message.delivered") == 1


def test_whatsapp_window_closing_before_the_send_fails_it(organization, receiver):
    from apps.conversations.models import Conversation

    channel = f.whatsapp_channel(organization, api_base=receiver.url)
    message = queue(
        organization, channel, kind="whatsapp", identities=[("whatsapp_id", "16505551234")]
    )
    Conversation.objects.filter(pk=message.conversation_id).update(
        last_inbound_at=timezone.now() - timedelta(hours=25)
    )
    assert deliver(message).outcome == "failed"
    assert message.error_code == "whatsapp_window_closed"
    assert receiver.requests == []
