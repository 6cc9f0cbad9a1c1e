"""`/api/v1/messages/`: queue a send (202), read it, and the custom-channel inbound."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Attachment, Conversation, Message
from apps.crm.models import Contact, Lead
from apps.crm.services import contact_upsert
from apps.niches.models import PlatformTemplate
from tests.providers import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer(client, twilio):
    """A contact who wrote in by SMS (so the channel is known)."""
    f.post_twilio(client, twilio, f.sample("twilio_inbound.form"))
    return Contact.objects.get()


def send(api, **data):
    return api.post("/api/v1/messages/", data, format="json")


def test_send_is_queued_on_the_last_inbound_channel(api, writer, twilio):
    response = send(api, contact_id=str(writer.id), text="Want to book a class?")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["direction"] == "out"
    assert body["channel"] == "sms" and body["channel_connection_id"] == str(twilio.id)
    assert body["contact_id"] == str(writer.id)
    message = Message.objects.get(pk=body["id"])
    assert message.raw == {"to": "+14133881111"}
    conversation = Conversation.objects.get()
    assert conversation.waiting_since is None and conversation.first_response_at is not None


def test_get_message_with_status_history(api, writer, twilio):
    message_id = send(api, contact_id=str(writer.id), text="Hi").json()["id"]
    response = api.get(f"/api/v1/messages/{message_id}/")
    assert response.status_code == 200
    assert response.json()["status"] == "queued" and response.json()["status_history"] == []


def test_explicit_channel_for_a_contact_without_conversation(api, organization, twilio):
    contact = contact_upsert(organization=organization, phone="+14155550123").contact
    response = send(api, contact_id=str(contact.id), text="Hello", channel="sms")
    assert response.status_code == 202
    assert Conversation.objects.filter(contact=contact).exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"text": "Hi"}, "no_channel"),  # never wrote in, no channel given
        ({"text": "Hi", "channel": "email"}, "no_channel"),  # no email connection
        ({"text": "Hi", "channel": "manychat"}, "no_channel"),
    ],
)
def test_send_not_allowed_is_422(api, organization, twilio, data, code):
    contact = contact_upsert(organization=organization, phone="+14155550123").contact
    response = send(api, contact_id=str(contact.id), **data)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert not Message.objects.exists()


def test_no_address_for_the_channel_is_422(api, organization, mailgun):
    contact = contact_upsert(organization=organization, phone="+14155550123").contact
    response = send(api, contact_id=str(contact.id), text="Hi", channel="email")
    assert response.status_code == 422 and response.json()["error"]["code"] == "no_address"


@pytest.fixture
def whatsapp_writer(client, organization, whatsapp):
    """Wrote in over WhatsApp just now (the window follows the provider's timestamp)."""
    import json
    import time

    payload = f.sample_json("whatsapp_inbound_text.json")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    f.post_whatsapp(client, whatsapp, json.dumps(payload).encode())
    return Contact.objects.get()


def test_the_window_follows_the_provider_timestamp(api, client, whatsapp):
    f.post_whatsapp(client, whatsapp, f.sample("whatsapp_inbound_text.json"))  # sent in 2023
    response = send(api, contact_id=str(Contact.objects.get().id), text="Hello!")
    assert response.json()["error"]["code"] == "whatsapp_window_closed"


def test_whatsapp_inside_the_window_sends_free_text(api, whatsapp_writer):
    response = send(api, contact_id=str(whatsapp_writer.id), text="Hello!")
    assert response.status_code == 202
    assert Message.objects.get(pk=response.json()["id"]).raw == {"to": "972987654321"}


def test_whatsapp_window_closed_needs_a_template(api, organization, whatsapp_writer):
    PlatformTemplate.objects.filter(purpose="follow_up").delete()  # no seeded template either
    Conversation.objects.update(last_inbound_at=timezone.now() - timedelta(hours=25))
    response = send(api, contact_id=str(whatsapp_writer.id), text="Hello!", purpose="follow_up")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "whatsapp_window_closed"
    assert "24-hour" in response.json()["error"]["message"]
    PlatformTemplate.objects.create(
        organization=None,
        channel="whatsapp",
        purpose="follow_up",
        name="shared_follow_up",
        body="Hi {{1}}",
    )
    PlatformTemplate.objects.create(
        organization=organization,
        channel="whatsapp",
        purpose="follow_up",
        name="order_update",
        body="Hi {{1}}, order {{2}}",
    )
    PlatformTemplate.objects.create(
        organization=organization,
        channel="whatsapp",
        purpose="follow_up",
        name="not_approved",
        body="x",
        is_approved=False,
    )
    response = send(
        api,
        contact_id=str(whatsapp_writer.id),
        purpose="follow_up",
        template_variables=["Ada", "#1234"],
    )
    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["id"])
    assert message.template_name == "order_update"  # the organization's own first
    assert message.text == "Hi Ada, order #1234"
    assert message.raw["template"] == {
        "name": "order_update",
        "language": "en_US",
        "variables": ["Ada", "#1234"],
    }


def test_unknown_template_is_422(api, whatsapp_writer):
    response = send(api, contact_id=str(whatsapp_writer.id), template="nope")
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_template"


def test_foreign_contact_and_message_are_404(api, other_api, writer):
    response = send(other_api, contact_id=str(writer.id), text="Hi")
    assert response.status_code == 404
    message_id = send(api, contact_id=str(writer.id), text="Hi").json()["id"]
    assert other_api.get(f"/api/v1/messages/{message_id}/").status_code == 404
    assert api.get("/api/v1/messages/00000000-0000-0000-0000-000000000000/").status_code == 404


@pytest.mark.parametrize(
    "data",
    [{}, {"contact_id": "nope", "text": "x"}, {"text": "x"}, {"contact_id": None, "text": "x"}],
)
def test_bad_input_is_400_and_writes_nothing(api, writer, data):
    response = send(api, **data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not Message.objects.filter(direction="out").exists()


def test_bad_channel_and_blank_text(api, writer):
    assert send(api, contact_id=str(writer.id), text="x", channel="fax").status_code == 400
    assert send(api, contact_id=str(writer.id), text="  ").status_code == 400
    assert not Message.objects.filter(direction="out").exists()


def test_idempotency_key_sends_once_and_replays_refusals(api, writer, organization):
    headers = {"HTTP_IDEMPOTENCY_KEY": "send-1"}
    first = api.post(
        "/api/v1/messages/", {"contact_id": str(writer.id), "text": "Hi"}, format="json", **headers
    )
    again = api.post(
        "/api/v1/messages/", {"contact_id": str(writer.id), "text": "Hi"}, format="json", **headers
    )
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(direction="out").count() == 1
    refused = {"HTTP_IDEMPOTENCY_KEY": "send-2"}
    data = {"contact_id": str(writer.id), "text": "Hi", "channel": "email"}
    assert api.post("/api/v1/messages/", data, format="json", **refused).status_code == 422
    assert api.post("/api/v1/messages/", data, format="json", **refused).status_code == 422


# --- inbound for custom channels ----------------------------------------------------------------


def inbound(api, **data):
    return api.post("/api/v1/messages/inbound/", data, format="json")


def test_inbound_creates_contact_lead_and_threads(api, organization):
    data = {
        "message_id": "widget-1",
        "from": {"external_id": "visitor-77", "email": "Ana@Example.com", "name": "Ana"},
        "text": "Do you have Saturday classes?",
        "attachments": [{"url": "https://cdn.example.com/a.png", "content_type": "image/png"}],
    }
    response = inbound(api, **data)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["duplicate"] is False
    message = Message.objects.get(pk=body["message_id"])
    assert (message.channel, message.channel_connection_id, message.text) == (
        "api",
        None,
        data["text"],
    )
    assert message.contact.email == "ana@example.com"
    assert Lead.objects.get().source == "api"
    assert Attachment.objects.get().status == "pending"
    assert f.event_count(organization, "message.received") == 1
    again = inbound(api, **data)
    assert again.status_code == 200
    assert again.json() == {**body, "duplicate": True}
    assert Message.objects.count() == 1


def test_inbound_ids_are_per_organization(api, other_api):
    data = {"message_id": "m-1", "from": {"phone": "+14155550100"}, "text": "hi"}
    assert inbound(api, **data).json()["duplicate"] is False
    assert inbound(other_api, **data).json()["duplicate"] is False
    assert Message.objects.count() == 2


@pytest.mark.parametrize(
    "data",
    [
        {"text": "no sender"},
        {"from": {}, "text": "x"},
        {"from": {"name": "only a name"}, "text": "x"},
        {"from": {"phone": "not a phone"}, "text": "x"},
        {"from": {"email": "nope@"}, "text": "x"},
        {"from": {"external_id": "a"}, "channel": "fax"},
        {"from": {"external_id": "a"}, "attachments": [{"url": "not a url"}]},
    ],
)
def test_inbound_bad_input_is_400(api, data):
    response = inbound(api, **data)
    assert response.status_code == 400, response.content
    assert not Message.objects.exists() and not Contact.objects.exists()


def test_inbound_in_reply_to_a_foreign_message_is_ignored(api, other_api, writer):
    message_id = send(api, contact_id=str(writer.id), text="Hi").json()["id"]
    response = inbound(
        other_api, **{"from": {"external_id": "x"}, "text": "re", "in_reply_to": message_id}
    )
    assert response.status_code == 200
    assert Message.objects.get(pk=response.json()["message_id"]).reply_to_id is None


def test_inbound_stop_keyword_opts_out(api, organization):
    inbound(api, **{"from": {"phone": "+14155550100"}, "text": "STOP", "channel": "sms"})
    contact = Contact.objects.get()
    assert contact.consents.get(channel="sms").status == "opted_out"
