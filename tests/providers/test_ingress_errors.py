"""Unknown channels, size limits, and a little fuzzing: bad input never produces a 5xx."""

import json
import os
import random
import threading
import uuid

import pytest
from django.db import connection
from django.test import Client

from apps.conversations.models import Message
from apps.crm.models import Contact, Lead
from apps.events.models import Event
from apps.providers.services import channel_update
from tests.factories import OrganizationFactory
from tests.providers import factories as f

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("provider", ["twilio", "whatsapp", "manychat", "mailgun"])
def test_unknown_channel_is_404(client, provider):
    response = client.post(
        f"/hooks/{provider}/{uuid.uuid4()}/", data=b"x", content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_not_a_uuid_is_404(client):
    assert client.post("/hooks/twilio/123/", data=b"", content_type="text/plain").status_code == 404


def test_channel_of_another_provider_is_404(client, twilio):
    body = f.sample("whatsapp_inbound_text.json")
    response = client.post(
        f"/hooks/whatsapp/{twilio.id}/",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=f.whatsapp_signature(body),
    )
    assert response.status_code == 404


def test_disabled_channel_is_404(client, twilio):
    assert f.post_twilio(client, twilio, f.sample("twilio_inbound.form")).status_code == 200
    channel_update(channel=twilio, status="disabled")
    body = f.form_replace(f.sample("twilio_inbound.form"), MessageSid="SMnew")
    assert f.post_twilio(client, twilio, body).status_code == 404
    assert Message.objects.count() == 1


def test_get_on_a_post_only_hook_is_405(client, twilio):
    assert client.get(f.twilio_path(twilio)).status_code == 405


@pytest.mark.parametrize("provider", ["twilio", "whatsapp", "manychat"])
def test_over_the_body_limit_is_413(client, settings, twilio, whatsapp, manychat, provider):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    channel = {"twilio": twilio, "whatsapp": whatsapp, "manychat": manychat}[provider]
    big = b"Body=" + b"a" * 5000
    headers = {"HTTP_X_SWITCHBOARD_TOKEN": f.MANYCHAT_TOKEN, "HTTP_X_TWILIO_SIGNATURE": "x"}
    response = client.post(
        f"/hooks/{provider}/{channel.id}/", data=big, content_type="application/json", **headers
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_lying_content_length_is_413_not_500(twilio):
    client = Client()
    response = client.generic(
        "POST",
        f.twilio_path(twilio),
        data=b"Body=x",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(50 * 1024 * 1024),
    )
    assert response.status_code == 413


def test_huge_but_allowed_fields(client, twilio):
    body = f.twilio_form(
        MessageSid="SMbig", From="+14133881111", Body="é" * 100_000, ProfileName="n" * 5000
    )
    response = f.post_twilio(client, twilio, body)
    assert response.status_code == 200
    message = Message.objects.get()
    assert len(message.text) == 100_000
    assert len(message.contact.name) == 200


def test_too_long_ids_and_nul_bytes(client, twilio, whatsapp):
    body = f.twilio_form(MessageSid="SM" + "x" * 300, From="+14133881111", Body="hi")
    assert f.post_twilio(client, twilio, body).status_code == 400
    body = f.twilio_form(MessageSid="SMnul", From="+14133881111", Body="a\x00b", ProfileName="\x00")
    assert f.post_twilio(client, twilio, body).status_code == 200
    assert Message.objects.get().text == "ab"
    payload = f.sample_json("whatsapp_inbound_text.json")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "x\u0000y"
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "w" * 300
    assert f.post_whatsapp(client, whatsapp, json.dumps(payload).encode()).status_code == 400
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.nul"
    assert f.post_whatsapp(client, whatsapp, json.dumps(payload).encode()).status_code == 200
    assert Message.objects.get(provider_message_id="wamid.nul").text == "xy"


CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "text/plain",
    "application/octet-stream",
]


def test_fuzz_random_bodies_never_5xx(client, twilio, whatsapp, manychat, mailgun):
    rng = random.Random(5)
    targets = [
        (f"/hooks/twilio/{twilio.id}/", {}),
        (f"/hooks/twilio/{twilio.id}/status/", {}),
        (f"/hooks/whatsapp/{whatsapp.id}/", {}),
        (f"/hooks/manychat/{manychat.id}/", {"HTTP_X_SWITCHBOARD_TOKEN": f.MANYCHAT_TOKEN}),
        (f"/hooks/mailgun/{mailgun.id}/", {}),
        (f"/hooks/mailgun/{mailgun.id}/events/", {}),
    ]
    for i in range(240):
        path, headers = targets[i % len(targets)]
        body = (
            os.urandom(rng.randint(0, 2000))
            if i % 3
            else rng.choice(
                [b"a=b&c", b"%%%", b"=&=&", b'{"entry": [{}]}', b'{"signature": 1}', b"\x00" * 10]
            )
        )
        content_type = rng.choice(CONTENT_TYPES)
        extra = dict(headers)
        if "whatsapp" in path:
            extra["HTTP_X_HUB_SIGNATURE_256"] = f.whatsapp_signature(body)  # signed garbage
        if "twilio" in path:
            from django.http import QueryDict

            try:
                params = QueryDict(body)
                from twilio.request_validator import RequestValidator

                extra["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator(
                    f.TWILIO_TOKEN
                ).compute_signature(f.PUBLIC + path, params)
            except Exception:
                extra["HTTP_X_TWILIO_SIGNATURE"] = "x"
        response = client.post(path, data=body, content_type=content_type, **extra)
        assert response.status_code < 500, (path, content_type, body[:80], response.content[:200])


def test_fuzz_signed_json_shapes_never_5xx(client, whatsapp, manychat):
    rng = random.Random(7)
    atoms = [None, True, 0, -1, 1e308, "", "x" * 3000, [], {}, "\u0000", "\ud800x"[1:], 2**70]
    for _ in range(200):
        value = {
            "object": rng.choice(atoms),
            "entry": [
                {
                    "changes": [
                        {
                            "field": rng.choice(["messages", None, 1]),
                            "value": {
                                "contacts": rng.choice(
                                    [[{"wa_id": rng.choice(atoms)}], atoms[3], None]
                                ),
                                "messages": [
                                    {
                                        "id": rng.choice(["w1", rng.choice(atoms)]),
                                        "from": rng.choice(["14155550100", rng.choice(atoms)]),
                                        "timestamp": rng.choice(atoms),
                                        "type": rng.choice(["text", "image", "location", None]),
                                        "text": rng.choice(
                                            [{"body": rng.choice(atoms)}, rng.choice(atoms)]
                                        ),
                                        "image": rng.choice([{}, rng.choice(atoms)]),
                                    }
                                ],
                                "statuses": rng.choice(
                                    [[], [{"id": rng.choice(atoms), "status": rng.choice(atoms)}]]
                                ),
                            },
                        }
                    ]
                }
            ],
        }
        body = json.dumps(value).encode()
        assert f.post_whatsapp(client, whatsapp, body).status_code < 500, body[:300]
        mc = {
            "data": {
                "id": rng.choice([*atoms, "123"]),
                "last_input_text": rng.choice(atoms),
                "name": rng.choice(atoms),
                "whatsapp_phone": rng.choice([*atoms, "+14155550100"]),
            }
        }
        assert f.post_manychat(client, manychat, json.dumps(mc).encode()).status_code < 500


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_store_one_message():
    organization = OrganizationFactory()
    channel = f.twilio_channel(organization)
    body = f.sample("twilio_whatsapp_inbound_bsuid.form")
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def send():
        try:
            barrier.wait()
            statuses.append(f.post_twilio(Client(), channel, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    assert Message.objects.count() == 1
    assert Contact.objects.count() == 1
    assert Lead.objects.count() == 1
    counts = {
        t: Event.objects.filter(organization=organization, type=t).count()
        for t in ("message.received", "contact.created", "lead.created", "conversation.created")
    }
    assert counts == {
        "message.received": 1,
        "contact.created": 1,
        "lead.created": 1,
        "conversation.created": 1,
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_whatsapp_duplicates_of_a_known_sender():
    organization = OrganizationFactory()
    channel = f.whatsapp_channel(organization)
    first = f.sample_json("whatsapp_inbound_text.json")
    assert f.post_whatsapp(Client(), channel, json.dumps(first).encode()).status_code == 200
    first["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.concurrent"
    body = json.dumps(first).encode()
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def send():
        try:
            barrier.wait()
            statuses.append(f.post_whatsapp(Client(), channel, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    assert Message.objects.filter(provider_message_id="wamid.concurrent").count() == 1
    assert Event.objects.filter(organization=organization, type="message.received").count() == 2
