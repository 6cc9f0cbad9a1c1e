"""The whole loop with real parts: a Twilio SMS arrives through the signed hook (message
ingress), the decision API answers it with `execute: true`, and a real Celery worker on
`sends` delivers the reply to a fake Twilio on 127.0.0.1."""

from __future__ import annotations

import pytest

from apps.conversations.models import Message
from apps.decisions.models import Decision
from tests.decisions import factories as f
from tests.factories import api_key_for
from tests.providers.factories import form_replace, post_twilio, sample, sample_json
from tests.support.http import Reply
from tests.support.services import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_inbound_sms_is_answered_and_the_reply_delivered(client, receiver, start_worker, settings):
    from rest_framework.test import APIClient

    settings.DECISION_ENGINE = "rules"
    org = f.organization("fitness")
    channel = f.twilio_channel(org, api_base=receiver.url)
    accepted = sample_json("twilio_send_response_201.json")
    accepted["sid"] = "SMdecision1"
    receiver.respond(Reply(status=201, body=accepted))
    inbound = form_replace(sample("twilio_inbound.form"), Body="Hi! Can I book a trial class?")
    assert post_twilio(client, channel, inbound).status_code == 200
    conversation_id = Message.objects.get(direction="in").conversation_id

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org)}")
    start_worker(queues="sends")
    response = api.post(
        "/api/v1/decisions/",
        {
            "conversation_id": str(conversation_id),
            "trigger": "message.received",
            "event_id": "SMe287d7109a5a925f182f0e07fe5b223b",
            "execute": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["intent"] == "book"
    assert [a["type"] for a in body["actions"]] == ["offer_slots", "send_message"]
    send = {r["type"]: r for r in body["execution"]}["send_message"]
    assert send["status"] == "done"

    def delivered():
        message = Message.objects.get(pk=send["message_id"])
        return message if message.status in ("sent", "failed") else None

    message = wait_for(delivered, timeout=30, what="the reply to be sent")
    assert (message.status, message.provider_message_id) == ("sent", "SMdecision1")
    [request] = receiver.requests
    assert "free+trial+class" in request.body.decode()
    # n8n retrying the same event gets the same decision, executed once
    again = api.post(
        "/api/v1/decisions/",
        {
            "conversation_id": str(conversation_id),
            "trigger": "message.received",
            "event_id": "SMe287d7109a5a925f182f0e07fe5b223b",
            "execute": True,
        },
        format="json",
    )
    assert again.status_code == 200 and again.json()["execution"] == body["execution"]
    assert Decision.objects.count() == 1
    assert Message.objects.filter(direction="out").count() == 1
