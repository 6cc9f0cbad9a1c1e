"""STOP / START / HELP keywords, and never sending to an opted-out contact."""

import pytest

from apps.conversations.models import Message
from apps.crm.models import ContactConsent
from apps.niches.models import ComplianceRule
from apps.tenancy.models import Organization
from tests.providers import factories as f

pytestmark = pytest.mark.django_db


def text_in(client, channel, text, sid):
    body = f.twilio_form(MessageSid=sid, From="+14133881111", To="+12028831111", Body=text)
    assert f.post_twilio(client, channel, body).status_code == 200


@pytest.mark.parametrize("word", ["STOP", "stop", " Unsubscribe. ", "QUIT"])
def test_stop_opts_out_on_that_channel(client, organization, twilio, word):
    text_in(client, twilio, word, "SM1")
    consent = ContactConsent.objects.get()
    assert (consent.channel, consent.status, consent.source) == ("sms", "opted_out", "inbound")
    assert f.event_count(organization, "contact.opted_out") == 1
    assert Message.objects.filter(direction="in").count() == 1  # still recorded


def test_stop_inside_a_sentence_is_not_a_keyword(client, twilio):
    text_in(client, twilio, "please stop calling me at work", "SM1")
    assert not ContactConsent.objects.exists()


def test_start_opts_back_in(client, organization, twilio):
    text_in(client, twilio, "STOP", "SM1")
    text_in(client, twilio, "START", "SM2")
    assert ContactConsent.objects.get().status == "opted_in"


def test_help_replies_with_the_organization_help_text(client, organization, twilio):
    Organization.objects.filter(pk=organization.pk).update(help_text="Pulse: call 555-0100.")
    text_in(client, twilio, "HELP", "SM1")
    reply = Message.objects.get(direction="out")
    assert (reply.text, reply.status, reply.sender_kind) == (
        "Pulse: call 555-0100.",
        "queued",
        "system",
    )
    assert reply.channel_connection_id == twilio.pk and reply.channel == "sms"


def test_help_default_text(client, organization, twilio):
    text_in(client, twilio, "info", "SM1")
    reply = Message.objects.get(direction="out")
    assert organization.name in reply.text and "STOP" in reply.text


def test_niche_keywords_add_to_the_baseline(client, organization, twilio):
    ComplianceRule.objects.create(
        niche=organization.primary_niche,
        key="fitness-opt-out-test",
        name="Spanish opt-out",
        kind="opt_out_keywords",
        severity="block",
        config={"stop": ["PARAR", "BAJA"], "start": ["ALTA"], "help": ["AYUDA"]},
    )
    text_in(client, twilio, "baja", "SM1")
    assert ContactConsent.objects.get().status == "opted_out"
    text_in(client, twilio, "ALTA", "SM2")
    assert ContactConsent.objects.get().status == "opted_in"
    text_in(client, twilio, "STOP", "SM3")  # the CTIA baseline always works
    assert ContactConsent.objects.get().status == "opted_out"


def test_global_rule_for_another_channel_does_not_apply(client, organization, twilio):
    ComplianceRule.objects.create(
        niche=None,
        key="email-only-keywords",
        name="Email keywords",
        kind="opt_out_keywords",
        severity="block",
        channels=["email"],
        config={"stop": ["REMOVE"]},
    )
    text_in(client, twilio, "REMOVE", "SM1")
    assert not ContactConsent.objects.exists()
    text_in(client, twilio, "STOP", "SM2")
    assert ContactConsent.objects.get().status == "opted_out"


def test_opted_out_contact_gets_no_help_and_no_api_send(client, api, organization, twilio):
    text_in(client, twilio, "STOP", "SM1")
    text_in(client, twilio, "HELP", "SM2")
    assert not Message.objects.filter(direction="out").exists()
    contact_id = Message.objects.first().contact_id
    response = api.post(
        "/api/v1/messages/", {"contact_id": str(contact_id), "text": "Hi"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "opted_out"
    assert not Message.objects.filter(direction="out").exists()
