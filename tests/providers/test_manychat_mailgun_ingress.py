"""ManyChat and Mailgun webhooks through the real URLs."""

import json
import time

import pytest

from apps.conversations.models import Attachment, Message
from apps.crm.models import Contact
from apps.events.models import Event
from tests.providers import factories as f

pytestmark = pytest.mark.django_db


# --- ManyChat ---------------------------------------------------------------------------------


def test_manychat_sample(client, organization, manychat):
    body = f.sample("manychat_external_request.json")
    response = f.post_manychat(client, manychat, body)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted" and response.json()["duplicate"] is False
    message = Message.objects.get()
    assert message.channel == "manychat"
    assert message.text == "Hola, busco villa para 10 personas"
    assert message.provider_message_id.startswith("mc_")
    contact = message.contact
    assert contact.name == "Hans" and contact.phone == "+50688217229"
    assert ("manychat_id", "1515862162") in set(contact.identities.values_list("kind", "value"))
    assert f.event_count(organization, "lead.created") == 1
    # a retried request derives the same id: a duplicate
    again = f.post_manychat(client, manychat, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert Message.objects.count() == 1


def test_manychat_new_text_is_a_new_message(client, manychat):
    payload = f.sample_json("manychat_external_request.json")
    f.post_manychat(client, manychat, json.dumps(payload).encode())
    payload["data"]["last_input_text"] = "Para el 12 de junio"
    f.post_manychat(client, manychat, json.dumps(payload).encode())
    assert Message.objects.count() == 2
    assert Contact.objects.count() == 1


@pytest.mark.parametrize("token", ["wrong-token", None])
def test_manychat_bad_or_missing_token_is_403(client, organization, manychat, token):
    response = f.post_manychat(
        client, manychat, f.sample("manychat_external_request.json"), token=token
    )
    assert response.status_code == 403
    assert not Message.objects.exists()
    assert not Event.objects.filter(organization=organization).exists()


@pytest.mark.parametrize("body", [b"{", b"[1]", b'{"data": {"name": "no id"}}', b'{"data": "x"}'])
def test_manychat_malformed_is_400(client, manychat, body):
    assert f.post_manychat(client, manychat, body).status_code == 400


# --- Mailgun ----------------------------------------------------------------------------------

FORMS = ["mailgun_inbound.form", "mailgun_inbound_mime.form", "mailgun_inbound_reply.form"]


@pytest.fixture
def old_timestamps_ok(settings):
    settings.MAILGUN_WEBHOOK_TOLERANCE = 10**10  # the samples were signed in 2016


@pytest.mark.parametrize("name", FORMS)
def test_mailgun_samples_verbatim(client, organization, mailgun, old_timestamps_ok, name):
    response = f.post_mailgun(client, mailgun, f.sample(name))
    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert message.channel == "email"
    if name == "mailgun_inbound_mime.form":
        assert message.contact.email == "test@example.org"
        assert message.subject == "Raw MIME test"
        assert message.email_message_id == "CAEPk3RKEx@mail.example.org"
        assert "It's a body" in message.text
    else:
        assert message.contact.email == "from+test@example.org"
        assert message.contact.name == "Displayed From"
        assert message.text == "stripped plaintext body"


@pytest.mark.parametrize("name", FORMS)
def test_mailgun_samples_freshly_signed(client, mailgun, name):
    response = f.post_mailgun(client, mailgun, f.mailgun_fresh(f.sample(name)))
    assert response.status_code == 200, response.content
    assert Message.objects.count() == 1


def test_mailgun_stale_timestamp_is_403(client, mailgun):
    assert f.post_mailgun(client, mailgun, f.sample("mailgun_inbound.form")).status_code == 403
    stale = f.mailgun_fresh(f.sample("mailgun_inbound.form"), timestamp=int(time.time()) - 301)
    assert f.post_mailgun(client, mailgun, stale).status_code == 403
    future = f.mailgun_fresh(f.sample("mailgun_inbound.form"), timestamp=int(time.time()) + 400)
    assert f.post_mailgun(client, mailgun, future).status_code == 403
    assert not Message.objects.exists()


def test_mailgun_replayed_token_is_403(client, mailgun):
    body = f.mailgun_fresh(f.sample("mailgun_inbound.form"))
    assert f.post_mailgun(client, mailgun, body).status_code == 200
    # the same signature with another body (Mailgun's signature does not cover the body)
    forged = f.form_replace(body, **{"stripped-text": "forged", "Message-Id": "x"})
    assert f.post_mailgun(client, mailgun, forged).status_code == 403
    assert Message.objects.count() == 1


@pytest.mark.parametrize("case", ["tampered", "wrong_key", "missing"])
def test_mailgun_bad_signature_is_403(client, organization, mailgun, case):
    body = f.mailgun_fresh(f.sample("mailgun_inbound.form"))
    if case == "tampered":
        body = f.form_replace(body, signature="0" * 64)
    elif case == "wrong_key":
        body = f.mailgun_fresh(f.sample("mailgun_inbound.form"), key="another-key")
    else:
        body = f.form_replace(body, signature="")
    assert f.post_mailgun(client, mailgun, body).status_code == 403
    assert not Message.objects.exists()
    assert not Event.objects.filter(organization=organization).exists()


def test_signing_key_is_per_channel(client, organization, mailgun):
    other = f.mailgun_channel(organization, signing_key="second-channel-key")
    body = f.mailgun_fresh(f.sample("mailgun_inbound.form"))
    assert f.post_mailgun(client, other, body).status_code == 403
    assert f.post_mailgun(client, mailgun, body).status_code == 200


def test_mailgun_reply_threads_on_in_reply_to(client, organization, mailgun):
    ours = f.sent_message(
        organization,
        mailgun,
        "20161206184535.12345.67890@inbound.example.com",
        kind="email",
        phone="+14155550100",
    )
    Message.objects.filter(pk=ours.pk).update(
        email_message_id="20161206184535.12345.67890@inbound.example.com"
    )
    f.post_mailgun(client, mailgun, f.mailgun_fresh(f.sample("mailgun_inbound_reply.form")))
    reply = Message.objects.get(direction="in")
    assert reply.conversation_id == ours.conversation_id
    assert reply.contact_id == ours.contact_id
    assert reply.reply_to_id == ours.id
    assert reply.subject == "Re: Test subject"


def test_mailgun_multipart_attachment_is_stored(client, mailgun):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.http import QueryDict

    fields = QueryDict(f.mailgun_fresh(f.sample("mailgun_inbound.form"))).dict()
    fields["attachment-count"] = "1"
    fields["attachment-1"] = SimpleUploadedFile(
        "menu.txt", b"classes at 9", content_type="text/plain"
    )
    response = client.post(f"/hooks/mailgun/{mailgun.id}/", data=fields)
    assert response.status_code == 200, response.content
    attachment = Attachment.objects.get()
    assert attachment.status == "stored" and attachment.size == 12
    assert attachment.file.read() == b"classes at 9"


def test_mailgun_delivered_event_sample(client, organization, settings):
    settings.MAILGUN_WEBHOOK_TOLERANCE = 10**10
    channel = f.mailgun_channel(organization, signing_key=f.MAILGUN_EVENT_KEY)
    message = f.sent_message(
        organization, channel, "20130503182626.18666.16540@app.symfony.com", kind="email"
    )
    response = f.post_mailgun(
        client, channel, f.sample("mailgun_event_delivered.json"), events=True
    )
    assert response.status_code == 200, response.content
    message.refresh_from_db()
    assert message.status == "delivered"
    assert f.event_count(organization, "message.delivered") == 1


def test_mailgun_events_check_signature_and_freshness(client, organization):
    channel = f.mailgun_channel(organization, signing_key=f.MAILGUN_EVENT_KEY)
    message = f.sent_message(
        organization, channel, "20130503182626.18666.16540@app.symfony.com", kind="email"
    )
    payload = f.sample_json("mailgun_event_delivered.json")
    assert (
        f.post_mailgun(
            client, channel, f.sample("mailgun_event_delivered.json"), events=True
        ).status_code
        == 403
    )
    wrong = f.mailgun_event_fresh(payload, key="nope")
    assert f.post_mailgun(client, channel, wrong, events=True).status_code == 403
    missing = json.dumps({"event-data": payload["event-data"]}).encode()
    assert f.post_mailgun(client, channel, missing, events=True).status_code == 403
    message.refresh_from_db()
    assert message.status == "sent"
    fresh = f.mailgun_event_fresh(payload)
    assert f.post_mailgun(client, channel, fresh, events=True).status_code == 200
    assert f.post_mailgun(client, channel, fresh, events=True).status_code == 403  # replay
    payload["event-data"]["event"] = "failed"
    payload["event-data"]["severity"] = "permanent"
    f.post_mailgun(client, channel, f.mailgun_event_fresh(payload), events=True)
    message.refresh_from_db()
    assert message.status == "failed"


@pytest.mark.parametrize("body", [b"token=a&timestamp=1", b"\xff\xfe"])
def test_mailgun_garbage_is_4xx(client, mailgun, body):
    assert f.post_mailgun(client, mailgun, body).status_code in (400, 403)


def test_mailgun_signed_but_not_an_email_is_400(client, mailgun):
    body = f.mailgun_fresh(b"recipient=x%40example.com")
    assert f.post_mailgun(client, mailgun, body).status_code == 400
