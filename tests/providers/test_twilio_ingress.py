"""Twilio webhooks through the real URLs: every sample signed, and every way to get it wrong."""

import pytest
from prometheus_client import REGISTRY

from apps.conversations.models import Attachment, Message
from apps.crm.models import Contact, ContactIdentity, Lead
from apps.events.models import Event
from tests.providers import factories as f

pytestmark = pytest.mark.django_db

INBOUND = [
    "twilio_inbound.form",
    "twilio_inbound_mms.form",
    "twilio_whatsapp_inbound.form",
    "twilio_whatsapp_inbound_bsuid.form",
]


def rejected(reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "switchboard_webhook_rejected_total", {"provider": "twilio", "reason": reason}
        )
        or 0.0
    )


@pytest.mark.parametrize("name", INBOUND)
def test_every_inbound_sample_is_stored_once(client, organization, twilio, name):
    body = f.sample(name)
    response = f.post_twilio(client, twilio, body)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Response/>" in response.content
    message = Message.objects.get()
    assert message.provider_message_id == "SMe287d7109a5a925f182f0e07fe5b223b"
    assert message.direction == "in" and message.text == "Msg"
    assert message.channel == ("whatsapp" if "whatsapp" in name else "sms")
    assert message.contact.phone == "+14133881111"
    assert message.raw["From"].endswith("+14133881111")
    assert f.event_count(organization, "message.received") == 1
    assert f.event_count(organization, "contact.created") == 1
    assert Lead.objects.get().source == message.channel

    again = f.post_twilio(client, twilio, body)
    assert again.status_code == 200
    assert Message.objects.count() == 1
    assert f.event_count(organization, "message.received") == 1


def test_mms_attachments_are_pending_downloads(client, twilio):
    f.post_twilio(client, twilio, f.sample("twilio_inbound_mms.form"))
    urls = sorted(Attachment.objects.values_list("provider_url", "status"))
    assert urls == [("cat.jpg", "pending"), ("dog.jpg", "pending")]
    event = Event.objects.get(type="message.received")
    assert len(event.data["attachments"]) == 2


def test_whatsapp_bsuid_is_an_identity(client, organization, twilio):
    f.post_twilio(client, twilio, f.sample("twilio_whatsapp_inbound_bsuid.form"))
    kinds = dict(ContactIdentity.objects.values_list("kind", "value"))
    assert kinds == {
        "whatsapp_bsuid": "US.1234",
        "whatsapp_id": "14133881111",
        "phone": "+14133881111",
    }


def test_sms_and_whatsapp_from_one_number_share_the_conversation(client, twilio):
    f.post_twilio(client, twilio, f.sample("twilio_inbound.form"))
    body = f.form_replace(f.sample("twilio_whatsapp_inbound.form"), MessageSid="SMother")
    f.post_twilio(client, twilio, body)
    assert Contact.objects.count() == 1
    assert len({m.conversation_id for m in Message.objects.all()}) == 1


def test_default_port_variant_of_the_url_is_accepted(client, twilio):
    body = f.sample("twilio_inbound.form")
    url = "http://testserver:80" + f.twilio_path(twilio)
    assert f.post_twilio(client, twilio, body, sign_url=url).status_code == 200


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered", "bad_signature"),
        ("wrong_secret", "bad_signature"),
        ("missing", "missing_signature"),
        ("other_url", "bad_signature"),
    ],
)
def test_bad_signatures_are_403_and_store_nothing(client, organization, twilio, case, reason):
    body = f.sample("twilio_inbound.form")
    before = rejected(reason)
    if case == "tampered":
        signature = f.twilio_signature(f.PUBLIC + f.twilio_path(twilio), body)
        response = f.post_twilio(
            client, twilio, f.form_replace(body, Body="Send me your password"), signature=signature
        )
    elif case == "wrong_secret":
        response = f.post_twilio(client, twilio, body, token="not-the-token")
    elif case == "other_url":
        response = f.post_twilio(client, twilio, body, sign_url="https://evil.example/hooks/")
    else:
        response = f.post_twilio(client, twilio, body, signature=False)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not Message.objects.exists() and not Contact.objects.exists()
    assert not Event.objects.filter(organization=organization).exists()
    assert rejected(reason) == before + 1


def test_rejection_is_logged_with_the_trace_id(client, twilio, caplog):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with caplog.at_level("WARNING", logger="apps.providers.hooks"):
        client.post(
            f.twilio_path(twilio),
            data=f.sample("twilio_inbound.form"),
            content_type="application/x-www-form-urlencoded",
            HTTP_TRACEPARENT=traceparent,
        )
    record = next(r for r in caplog.records if "webhook rejected" in r.getMessage())
    assert record.trace_id == "0af7651916cd43dd8448eb211c80319c"


def test_malformed_signed_form_is_400(client, twilio):
    body = f.twilio_form(Body="no sid and no sender")
    response = f.post_twilio(client, twilio, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert not Message.objects.exists()


def test_unparseable_sender_is_400(client, twilio):
    body = f.twilio_form(MessageSid="SM1", From="not a phone", Body="hi")
    response = f.post_twilio(client, twilio, body)
    assert response.status_code == 400
    assert not Contact.objects.exists()


STATUS_SAMPLES = {
    "twilio_status_sent.form": ("SM0b6e2697aae04182a9f5b5c7a8994c7f", "sent", ""),
    "twilio_status_delivered.form": ("SMe287d7109a5a925f182f0e07fe5b223b", "delivered", ""),
    "twilio_status_undelivered_30003.form": (
        "SMe287d7109a5a925f182f0e07fe5b223b",
        "failed",
        "30003",
    ),
    "twilio_status_failed_21610.form": ("SMe287d7109a5a925f182f0e07fe5b223b", "failed", "21610"),
    "twilio_status_failed_63018.form": ("SMe287d7109a5a925f182f0e07fe5b223b", "failed", "63018"),
}


@pytest.mark.parametrize("name", list(STATUS_SAMPLES))
def test_every_status_sample_updates_our_message(client, organization, twilio, name):
    sid, status, code = STATUS_SAMPLES[name]
    message = f.sent_message(organization, twilio, sid, status="queued")
    body = f.sample(name)
    assert f.post_twilio(client, twilio, body, status=True).status_code == 200
    message.refresh_from_db()
    assert message.status == status
    assert message.error_code == code
    if status == "failed":
        assert message.error_reason
        assert f.event_count(organization, "message.failed") == 1
    # a replay changes nothing
    assert f.post_twilio(client, twilio, body, status=True).status_code == 200
    assert message.status_updates.count() == 1


def test_status_21610_opts_the_contact_out(client, organization, twilio):
    message = f.sent_message(organization, twilio, "SMe287d7109a5a925f182f0e07fe5b223b")
    f.post_twilio(client, twilio, f.sample("twilio_status_failed_21610.form"), status=True)
    assert message.contact.consents.get(channel="sms").status == "opted_out"
    assert f.event_count(organization, "contact.opted_out") == 1


def test_status_callbacks_check_the_signature_too(client, organization, twilio):
    message = f.sent_message(organization, twilio, "SMe287d7109a5a925f182f0e07fe5b223b")
    body = f.sample("twilio_status_delivered.form")
    assert f.post_twilio(client, twilio, body, status=True, token="wrong").status_code == 403
    assert f.post_twilio(client, twilio, body, status=True, signature=False).status_code == 403
    message.refresh_from_db()
    assert message.status == "sent"


def test_out_of_order_statuses_never_move_back(client, organization, twilio):
    message = f.sent_message(organization, twilio, "SMx1")
    read = f.twilio_form(MessageSid="SMx1", MessageStatus="read")
    delivered = f.twilio_form(MessageSid="SMx1", MessageStatus="delivered")
    sent = f.twilio_form(MessageSid="SMx1", MessageStatus="sent")
    for body in (read, delivered, sent):
        assert f.post_twilio(client, twilio, body, status=True).status_code == 200
    message.refresh_from_db()
    assert message.status == "read"
    assert message.delivered_at is not None and message.read_at is not None
    assert f.event_count(organization, "message.read") == 1
    assert f.event_count(organization, "message.delivered") == 0


def test_unknown_message_status_is_accepted_and_ignored(client, twilio):
    body = f.sample("twilio_status_delivered.form")
    assert f.post_twilio(client, twilio, body, status=True).status_code == 200
    assert not Message.objects.exists()
