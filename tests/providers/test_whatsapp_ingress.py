"""WhatsApp Cloud API webhooks through the real URL: handshake, samples, batches, BSUIDs."""

import json

import pytest

from apps.conversations.models import Attachment, Message
from apps.crm.models import Contact, ContactIdentity
from apps.events.models import Event
from tests.providers import factories as f

pytestmark = pytest.mark.django_db

# README vectors (secret "test_app_secret" over the exact file bytes): our signing agrees.
README_VECTORS = {
    "whatsapp_inbound_text.json": "sha256=539004114ddfe258e472eeb3020fd0ca0e57951a627b90e437862aa3b9963c1d",
    "whatsapp_status_read.json": "sha256=c459ce8babecc8e8b831d70dbdc61e4cba74639c4f366a068b27047259a9a170",
}

INBOUND = {
    "whatsapp_inbound_text.json": ("wamid.xyzxyz", "Body Text"),
    "whatsapp_inbound_reply_with_context.json": ("wamid.xyzxyz", "replied text"),
    "whatsapp_inbound_image.json": ("wamid.xyzxyz", ""),
    "whatsapp_inbound_text_bsuid_only.json": ("external_id", "Hello World"),
}


@pytest.mark.parametrize("name", list(README_VECTORS))
def test_readme_signature_vectors(name):
    assert f.whatsapp_signature(f.sample(name)) == README_VECTORS[name]


def test_verify_handshake(client, whatsapp):
    url = f"/hooks/whatsapp/{whatsapp.id}/"
    ok = client.get(
        url,
        {
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": "meatyhamhock",
        },
    )
    assert ok.status_code == 200 and ok.content == b"1158201444"
    assert ok["Content-Type"].startswith("text/plain")
    for params in (
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "meatyhamhock"},
        {},
    ):
        assert client.get(url, params).status_code == 403


@pytest.mark.parametrize("name", list(INBOUND))
def test_every_inbound_sample(client, organization, name):
    wamid, text = INBOUND[name]
    body = f.sample(name)
    whatsapp = f.whatsapp_channel(organization, phone_number_id=f.whatsapp_number_of(body))
    response = f.post_whatsapp(client, whatsapp, body)
    assert response.status_code == 200
    message = Message.objects.get()
    assert (message.provider_message_id, message.text, message.channel) == (wamid, text, "whatsapp")
    assert message.sent_at is not None
    assert message.raw["message"]["id"] == wamid
    assert f.event_count(organization, "message.received") == 1
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    assert Message.objects.count() == 1


def test_the_real_captured_body_verifies_with_its_secret(client, organization):
    body = f.sample("whatsapp_inbound_text_signed.raw")
    channel = f.whatsapp_channel(
        organization,
        app_secret="1222e786b144d0e85b9f365372d93676",
        phone_number_id=f.whatsapp_number_of(body),
    )
    signature = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
    assert f.post_whatsapp(client, channel, body, signature=signature).status_code == 200
    assert Message.objects.get().text == "Hey there! I am using PyWa."


def test_identities_names_and_reply_context(client, organization, whatsapp):
    ours = f.sent_message(
        organization, whatsapp, "wamid.xyzxyz==", kind="whatsapp", phone="+972987654321"
    )
    f.post_whatsapp(client, whatsapp, f.sample("whatsapp_inbound_reply_with_context.json"))
    inbound = Message.objects.get(direction="in")
    assert inbound.reply_to_id == ours.id and inbound.reply_to_provider_id == "wamid.xyzxyz=="
    assert inbound.contact_id == ours.contact_id
    contact = Contact.objects.get(pk=ours.contact_id)
    assert contact.name == "Test Name"
    assert set(contact.identities.values_list("kind", "value")) == {
        ("phone", "+972987654321"),
        ("whatsapp_id", "972987654321"),
        ("whatsapp_bsuid", "US.13491208655302741918"),
    }


def test_bsuid_only_sender_then_with_phone_is_one_contact(client, organization):
    body = f.sample("whatsapp_inbound_text_bsuid_only.json")
    whatsapp = f.whatsapp_channel(organization, phone_number_id=f.whatsapp_number_of(body))
    f.post_whatsapp(client, whatsapp, body)
    contact = Contact.objects.get()
    assert contact.phone is None and contact.name == "Kerry Fisher"
    assert list(contact.identities.values_list("kind", "value")) == [("whatsapp_bsuid", "US.1234")]
    # Later the same person writes with both BSUID and wa_id: same contact, gains the phone.
    payload = f.sample_json("whatsapp_inbound_text_bsuid_only.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = "250788123200"
    value["messages"][0].update({"id": "wamid.second", "from": "250788123200"})
    f.post_whatsapp(client, whatsapp, json.dumps(payload).encode())
    assert Contact.objects.count() == 1
    contact.refresh_from_db()
    assert contact.phone == "+250788123200"
    assert ContactIdentity.objects.filter(contact=contact, kind="whatsapp_id").exists()


def test_image_becomes_a_pending_attachment(client, whatsapp):
    f.post_whatsapp(client, whatsapp, f.sample("whatsapp_inbound_image.json"))
    attachment = Attachment.objects.get()
    assert (attachment.content_type, attachment.provider_media_id, attachment.status) == (
        "image/jpeg",
        "65463453",
        "pending",
    )
    assert Message.objects.get().conversation.last_message_preview == "[attachment]"


def test_a_batch_of_entries_messages_and_statuses(client, organization, whatsapp):
    ours = f.sent_message(
        organization, whatsapp, "wamid.out1", kind="whatsapp", phone="+972987654321"
    )
    text = f.sample_json("whatsapp_inbound_text.json")
    bsuid = f.sample_json("whatsapp_inbound_text_bsuid_only.json")
    bsuid["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "1122334455667"
    status = f.sample_json("whatsapp_status_read.json")
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.out1"
    second = json.loads(json.dumps(text["entry"][0]["changes"][0]["value"]["messages"][0]))
    second.update({"id": "wamid.two", "text": {"body": "Second"}})
    text["entry"][0]["changes"][0]["value"]["messages"].append(second)
    batch = {
        "object": "whatsapp_business_account",
        "entry": text["entry"] + bsuid["entry"] + status["entry"],
    }
    body = json.dumps(batch).encode()
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    assert sorted(
        Message.objects.filter(direction="in").values_list("provider_message_id", flat=True)
    ) == [
        "external_id",
        "wamid.two",
        "wamid.xyzxyz",
    ]
    ours.refresh_from_db()
    assert ours.status == "read"
    assert f.event_count(organization, "message.received") == 3
    assert f.event_count(organization, "message.read") == 1
    # replaying the whole batch stores and emits nothing new
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    assert Message.objects.count() == 4
    assert f.event_count(organization, "message.received") == 3
    assert f.event_count(organization, "message.read") == 1


STATUSES = {
    "whatsapp_status_sent.json": ("wamid.xyzxyz", "sent", ""),
    "whatsapp_status_delivered.json": ("wamid.xyzxyz", "delivered", ""),
    "whatsapp_status_read.json": ("wamid.xyzxyz", "read", ""),
    "whatsapp_status_failed.json": ("wamid.xyzxyz", "failed", "130472"),
    "whatsapp_status_failed_131047.json": ("wamid.xyzxyz", "failed", "131047"),
    "whatsapp_status_failed_courier.json": ("external_id", "failed", "131014"),
}


@pytest.mark.parametrize("name", list(STATUSES))
def test_every_status_sample(client, organization, name):
    wamid, status, code = STATUSES[name]
    body = f.sample(name)
    whatsapp = f.whatsapp_channel(organization, phone_number_id=f.whatsapp_number_of(body))
    message = f.sent_message(organization, whatsapp, wamid, kind="whatsapp", status="queued")
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code) == (status, code)
    if code == "131047":
        assert "24-hour window" in message.error_reason
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    assert message.status_updates.count() == 1


def test_read_before_delivered_stays_read(client, organization, whatsapp):
    message = f.sent_message(organization, whatsapp, "wamid.xyzxyz", kind="whatsapp")
    for name in (
        "whatsapp_status_read.json",
        "whatsapp_status_delivered.json",
        "whatsapp_status_sent.json",
    ):
        f.post_whatsapp(client, whatsapp, f.sample(name))
    message.refresh_from_db()
    assert message.status == "read"
    assert sorted(message.status_updates.values_list("status", flat=True)) == [
        "delivered",
        "read",
        "sent",
    ]
    assert f.event_count(organization, "message.delivered") == 0
    assert f.event_count(organization, "message.read") == 1


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "missing", "not_hex"])
def test_bad_signatures_are_403(client, organization, whatsapp, case):
    body = f.sample("whatsapp_inbound_text.json")
    if case == "tampered":
        response = f.post_whatsapp(
            client,
            whatsapp,
            body.replace(b"Body Text", b"Evil Text"),
            signature=f.whatsapp_signature(body),
        )
    elif case == "wrong_secret":
        response = f.post_whatsapp(client, whatsapp, body, secret="other")
    elif case == "not_hex":
        response = f.post_whatsapp(client, whatsapp, body, signature="sha256=zz")
    else:
        response = f.post_whatsapp(client, whatsapp, body, signature=False)
    assert response.status_code == 403
    assert not Message.objects.exists() and not Contact.objects.exists()
    assert not Event.objects.filter(organization=organization).exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"entry": "x"}',
        b'{"entry": [1]}',
        b'{"entry": [{"changes": [{"value": {"messages": [{"no": "id"}]}}]}]}',
        b'{"entry": [{"changes": [{"value": {"messages": [{"id": "w1"}]}}]}]}',
        b'{"entry": [{"changes": [{"value": {"statuses": [{"id": "w1"}]}}]}]}',
        "\u00ff".encode("latin-1"),
    ],
)
def test_malformed_signed_payloads_are_400(client, whatsapp, body):
    response = f.post_whatsapp(client, whatsapp, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_request"
    assert not Message.objects.exists()


def test_a_batch_with_one_bad_item_stores_nothing(client, whatsapp):
    payload = f.sample_json("whatsapp_inbound_text.json")
    payload["entry"][0]["changes"][0]["value"]["messages"].append(
        {"id": "w2", "from": "12", "type": "text"}
    )
    response = f.post_whatsapp(client, whatsapp, json.dumps(payload).encode())
    assert response.status_code == 400
    assert not Message.objects.exists() and not Contact.objects.exists()


def test_a_change_for_another_organizations_number_is_never_ingested(
    client, organization, other_organization, whatsapp
):
    """One Meta app (same app secret, same callback) serves both organizations' numbers:
    a change naming the other channel's `phone_number_id` is skipped, not stored here."""
    theirs = f.whatsapp_channel(other_organization, phone_number_id="9988776655443")
    ours = f.sent_message(organization, whatsapp, "wamid.xyzxyz", kind="whatsapp")
    foreign_text = f.sample_json("whatsapp_inbound_text.json")
    foreign_status = f.sample_json("whatsapp_status_read.json")
    for payload in (foreign_text, foreign_status):
        payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = theirs.config[
            "phone_number_id"
        ]
    own = f.sample_json("whatsapp_inbound_text.json")
    own["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.own"
    batch = {
        "object": "whatsapp_business_account",
        "entry": foreign_text["entry"] + foreign_status["entry"] + own["entry"],
    }
    response = f.post_whatsapp(client, whatsapp, json.dumps(batch).encode())
    assert response.status_code == 200
    assert list(
        Message.objects.filter(direction="in").values_list("provider_message_id", flat=True)
    ) == ["wamid.own"]
    ours.refresh_from_db()
    assert ours.status != "read" and not ours.status_updates.exists()
    assert f.event_count(organization, "message.received") == 1
    assert not Event.objects.filter(organization=other_organization).exists()
    # Alone, the foreign change is accepted (Meta must not retry it here) and stores nothing.
    only_foreign = json.dumps(foreign_text).encode()
    assert f.post_whatsapp(client, whatsapp, only_foreign).status_code == 200
    assert Message.objects.filter(direction="in").count() == 1
    # Routed to its own channel, the same change lands in its own organization.
    assert f.post_whatsapp(client, theirs, only_foreign).status_code == 200
    landed = Message.objects.get(direction="in", provider_message_id="wamid.xyzxyz")
    assert landed.organization == other_organization
