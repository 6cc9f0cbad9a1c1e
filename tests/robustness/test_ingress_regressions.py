"""Regressions for what the ingress fuzzer found (docs/robustness.md, "Found and fixed")."""

import json

import pytest

from apps.conversations.models import Conversation, Message
from apps.crm.models import Contact, Lead
from tests.providers import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_api_rate_limit(settings):
    settings.API_RATE_LIMIT_PER_SECOND = 0


def _whatsapp_text(wamid: str, sender: str, text: str = "Hello") -> dict:
    payload = f.sample_json("whatsapp_inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"][0].update(id=wamid, **{"from": sender})
    value["messages"][0]["text"]["body"] = text
    value["contacts"][0]["wa_id"] = sender
    return payload


def test_lone_surrogates_are_stored_as_replacement_characters(client, whatsapp):
    # json.dumps escapes the lone surrogate as \ud800, as a broken client would send it
    body = json.dumps(_whatsapp_text("wamid.sur", "14155550100", "caf\ud800 ok")).encode()
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    assert Message.objects.get(provider_message_id="wamid.sur").text == "caf\ufffd ok"


def test_lone_surrogate_in_a_status_error_is_stored(client, organization, whatsapp):
    payload = f.sample_json("whatsapp_status_failed.json")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    f.sent_message(organization, whatsapp, status["id"], kind="whatsapp")
    status["errors"][0]["error_data"]["details"] = "\ud800bad"
    status["errors"][0]["code"] = 1  # not a known code: the details are the reason
    body = json.dumps(payload).encode()
    assert f.post_whatsapp(client, whatsapp, body).status_code == 200
    assert Message.objects.get(provider_message_id=status["id"]).error_reason == "\ufffdbad"


def test_replay_naming_another_sender_creates_no_contact(client, whatsapp):
    first = json.dumps(_whatsapp_text("wamid.once", "14155550100")).encode()
    assert f.post_whatsapp(client, whatsapp, first).status_code == 200
    counts = (Contact.objects.count(), Lead.objects.count(), Conversation.objects.count())
    replay = json.dumps(_whatsapp_text("wamid.once", "14155550199")).encode()
    assert f.post_whatsapp(client, whatsapp, replay).status_code == 200
    assert (Contact.objects.count(), Lead.objects.count(), Conversation.objects.count()) == counts
    assert Message.objects.count() == 1


def test_api_duplicate_naming_another_sender_answers_with_the_original(api):
    body = {"message_id": "w-1", "from": {"external_id": "visitor-1"}, "text": "hi"}
    first = api.post("/api/v1/messages/inbound/", body, format="json").json()
    body["from"] = {"external_id": "visitor-2"}
    again = api.post("/api/v1/messages/inbound/", body, format="json")
    assert again.status_code == 200
    assert again.json() == {**first, "duplicate": True}
    assert Contact.objects.count() == 1
    assert Conversation.objects.count() == 1


def test_api_validation_error_quoting_a_lone_surrogate_is_400(api):
    body = json.dumps({"from": {"external_id": "v"}, "channel": "\ud800sms"})
    response = api.post("/api/v1/messages/inbound/", body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "\ufffdsms" in error["message"]
    assert Contact.objects.count() == 0


def test_api_body_over_the_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = {"from": {"external_id": "v"}, "text": "x" * 5000}
    response = api.post("/api/v1/messages/inbound/", body, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Message.objects.count() == 0


def test_mailgun_event_with_an_impossible_timestamp_is_400(client, mailgun):
    payload = f.sample_json("mailgun_event_delivered.json")
    payload["event-data"]["timestamp"] = 2**70
    body = f.mailgun_event_fresh(payload, key=f.MAILGUN_KEY)
    response = f.post_mailgun(client, mailgun, body, events=True)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_mailgun_event_with_a_list_delivery_status_is_accepted(client, mailgun):
    payload = f.sample_json("mailgun_event_delivered.json")
    payload["event-data"]["delivery-status"] = [1, 2]
    body = f.mailgun_event_fresh(payload, key=f.MAILGUN_KEY)
    assert f.post_mailgun(client, mailgun, body, events=True).status_code == 200


@pytest.mark.parametrize("wamid", ["wamid.\ud800", "wamid.\x00"])
def test_a_message_id_that_cannot_be_stored_is_400(client, whatsapp, wamid):
    body = json.dumps(_whatsapp_text(wamid, "14155550100")).encode()
    response = f.post_whatsapp(client, whatsapp, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert (Contact.objects.count(), Message.objects.count()) == (0, 0)


def test_a_status_for_an_id_that_cannot_be_stored_is_400(client, whatsapp):
    payload = f.sample_json("whatsapp_status_read.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.\ud800"
    response = f.post_whatsapp(client, whatsapp, json.dumps(payload).encode())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_a_reply_context_that_cannot_be_stored_does_not_lose_the_message(client, whatsapp):
    payload = _whatsapp_text("wamid.ctx", "14155550100")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = {"id": "a\x00\ud800"}
    assert f.post_whatsapp(client, whatsapp, json.dumps(payload).encode()).status_code == 200
    assert Message.objects.get(provider_message_id="wamid.ctx").reply_to_provider_id == "a\ufffd"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-05-04T10:54:33", "2026-05-04T10:54:33+00:00"),  # naive: taken as UTC (was a 500)
        ("0001-01-01T00:00:00+14:00", None),  # stored as 1 BC, unreadable afterwards
        ("9999-12-31T23:59:59-12:00", None),  # year 10000 in UTC
    ],
)
def test_sender_timestamps_that_cannot_be_one_are_not_kept(client, manychat, given, stored):
    payload = f.sample_json("manychat_external_request.json")
    payload["data"]["last_interaction"] = given
    assert f.post_manychat(client, manychat, json.dumps(payload).encode()).status_code == 200
    message = Message.objects.get()  # reads back
    assert (message.sent_at.isoformat() if message.sent_at else None) == stored
    assert message.raw["data"]["last_interaction"] == given
