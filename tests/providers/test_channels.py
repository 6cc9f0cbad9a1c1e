"""create_channel CLI, the channel admin (scoping, masking), attachment downloads."""

import json

import pytest

from apps.conversations.models import Attachment
from apps.providers import services
from apps.providers.models import ChannelConnection
from tests.providers import factories as f
from tests.support.http import Reply
from tests.tenancy.test_cli import assert_usage_error, manage

CONFIGS = {
    "twilio": {
        "account_sid": "AC1",
        "auth_token": "tok-secret-123456",
        "from_number": "+12028831111",
    },
    "whatsapp": {
        "phone_number_id": "1122",
        "access_token": "EAA-secret",
        "app_secret": "s",
        "verify_token": "v",
    },
    "manychat": {"api_key": "k", "inbound_token": "t"},
    "mailgun": {
        "signing_key": "k",
        "domain": "mg.example.com",
        "api_key": "key",
        "from_email": "a@mg.example.com",
    },
}
STATUS_SUFFIX = {"twilio": "status/", "whatsapp": "", "manychat": None, "mailgun": "events/"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", list(CONFIGS))
def test_create_channel_json(organization, provider):
    config = {**CONFIGS[provider], "api_base": "http://127.0.0.1:9/"}
    result = manage(
        "create_channel",
        "--org",
        organization.slug,
        "--provider",
        provider,
        "--config",
        json.dumps(config),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"id", "provider", "inbound_url", "status_url"}
    channel = ChannelConnection.objects.get(pk=payload["id"])
    assert payload["provider"] == channel.provider == provider
    inbound = f"http://testserver/hooks/{provider}/{channel.id}/"
    assert payload["inbound_url"] == inbound
    suffix = STATUS_SUFFIX[provider]
    assert payload["status_url"] == (None if suffix is None else inbound + suffix)
    assert channel.config == CONFIGS[provider]  # api_base is kept apart
    assert channel.api_base == "http://127.0.0.1:9"


@pytest.mark.django_db
def test_create_channel_human_output(organization, capsys):
    from django.core.management import call_command

    call_command(
        "create_channel",
        "--org",
        organization.slug,
        "--provider",
        "twilio",
        "--config",
        json.dumps(CONFIGS["twilio"]),
    )
    assert "inbound URL: http://testserver/hooks/twilio/" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_create_channel_missing_key_is_one_line_exit_2(organization):
    config = '{"account_sid": "AC1", "from_number": "+1"}'
    result = manage(
        "create_channel",
        "--org",
        organization.slug,
        "--provider",
        "twilio",
        "--config",
        config,
        "--json",
    )
    assert_usage_error(result, "missing auth_token")
    assert not ChannelConnection.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--provider", "twilio", "--config", "{not json"], "not valid JSON"),
        (["--provider", "twilio", "--config", "[1]"], "JSON object"),
        (
            [
                "--provider",
                "manychat",
                "--config",
                '{"api_key": "k", "inbound_token": "t", "tokn": 1}',
            ],
            "unknown key tokn",
        ),
        (
            [
                "--provider",
                "manychat",
                "--config",
                '{"api_key": "k", "inbound_token": "t", "api_base": "ftp://x"}',
            ],
            "api_base",
        ),
        (
            [
                "--provider",
                "manychat",
                "--config",
                '{"api_key": "k", "inbound_token": "t", "timeout": -1}',
            ],
            "timeout",
        ),
    ],
)
def test_create_channel_errors(organization, args, fragment, capsys):
    from django.core.management import call_command

    with pytest.raises(SystemExit) as exit_info:
        call_command("create_channel", "--org", organization.slug, *args, "--json")
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and fragment in captured.err
    assert not ChannelConnection.objects.exists()


@pytest.mark.django_db
def test_create_channel_unknown_org_and_provider(capsys):
    from django.core.management import CommandError, call_command

    with pytest.raises(SystemExit):
        call_command("create_channel", "--org", "nope", "--provider", "manychat", "--config", "{}")
    assert "nope" in capsys.readouterr().err
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_channel", "--org", "nope", "--provider", "fax", "--config", "{}")


@pytest.mark.django_db
def test_credentials_are_encrypted_at_rest(organization):
    from django.db import connection

    channel = f.twilio_channel(organization)
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM providers_channelconnection WHERE id = %s", [channel.id])
        stored = cursor.fetchone()[0]
    assert f.TWILIO_TOKEN not in stored and "account_sid" not in stored


# --- admin ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_channel_admin_is_scoped_masked_and_admin_only(
    make_staff_client, organization, other_organization
):
    mine = f.twilio_channel(organization)
    theirs = f.twilio_channel(other_organization, from_number="+19998887777")
    admin = make_staff_client(organization, role="admin")
    listing = admin.get("/admin/providers/channelconnection/")
    assert listing.status_code == 200
    assert (
        "+12028831111" in listing.content.decode()
        and "+19998887777" not in listing.content.decode()
    )
    page = admin.get(f"/admin/providers/channelconnection/{mine.id}/change/").content.decode()
    assert f.TWILIO_TOKEN not in page
    assert "••••••••cdef" in page
    assert f"http://testserver/hooks/twilio/{mine.id}/status/" in page
    assert admin.get(f"/admin/providers/channelconnection/{theirs.id}/change/").status_code in (
        302,
        404,
    )
    operator = make_staff_client(organization, role="operator", email="op@pulse.example")
    assert operator.get("/admin/providers/channelconnection/").status_code == 403


@pytest.mark.django_db
def test_channel_admin_add_and_change_keep_secrets(make_staff_client, organization):
    admin = make_staff_client(organization, role="admin")
    response = admin.post(
        "/admin/providers/channelconnection/add/",
        {
            "organization": organization.id,
            "provider": "manychat",
            "name": "IG",
            "credentials": json.dumps({"api_key": "k1", "inbound_token": "t1"}),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = ChannelConnection.objects.get()
    assert channel.config == {"api_key": "k1", "inbound_token": "t1"}
    response = admin.post(
        f"/admin/providers/channelconnection/{channel.id}/change/",
        {
            "organization": organization.id,
            "name": "Instagram",
            "status": "active",
            "credentials": json.dumps({"api_key": "k2"}),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert (
        channel.config == {"api_key": "k2", "inbound_token": "t1"} and channel.name == "Instagram"
    )
    bad = admin.post(
        "/admin/providers/channelconnection/add/",
        {
            "organization": organization.id,
            "provider": "twilio",
            "credentials": json.dumps({"account_sid": "x"}),
        },
    )
    assert bad.status_code == 200 and "missing" in bad.content.decode()
    assert ChannelConnection.objects.count() == 1


@pytest.mark.django_db
def test_delivery_admin_is_scoped_and_read_only(
    make_staff_client, organization, other_organization
):
    mine = f.sent_message(organization, f.twilio_channel(organization), "SMmine")
    f.sent_message(other_organization, f.twilio_channel(other_organization), "SMtheirs")
    operator = make_staff_client(organization, role="operator")
    page = operator.get("/admin/providers/messagedelivery/")
    assert page.status_code == 200
    assert "SMmine" in page.content.decode() and "SMtheirs" not in page.content.decode()
    assert operator.get(f"/admin/providers/messagedelivery/{mine.id}/change/").status_code == 200
    assert operator.get("/admin/providers/messagedelivery/add/").status_code == 403


# --- attachments --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_twilio_media_is_downloaded_with_basic_auth(
    client, organization, receiver, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    channel = f.twilio_channel(organization)
    receiver.respond(Reply(body=b"\x89PNG...", headers={"Content-Type": "image/png"}))
    body = f.twilio_form(
        MessageSid="SMm",
        From="+14133881111",
        Body="",
        NumMedia="1",
        MediaUrl0=f"{receiver.url}/media/ME1",
        MediaContentType0="image/png",
    )
    f.post_twilio(client, channel, body)
    attachment = Attachment.objects.get()
    assert services.attachment_download(attachment_id=attachment.id) == "stored"
    attachment.refresh_from_db()
    assert attachment.file.read() == b"\x89PNG..." and attachment.size == 7
    assert attachment.file.name.endswith(".png")
    assert receiver.requests[0].headers["authorization"].startswith("Basic ")


@pytest.mark.django_db
def test_whatsapp_media_is_fetched_in_two_steps(client, organization, receiver, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    channel = f.whatsapp_channel(organization, api_base=receiver.url)

    def reply(request):
        if request.path == "/v25.0/65463453":
            return Reply(body={"url": f"{receiver.url}/files/65463453", "mime_type": "image/jpeg"})
        return Reply(body=b"jpeg-bytes", headers={"Content-Type": "image/jpeg"})

    receiver.respond(reply)
    f.post_whatsapp(client, channel, f.sample("whatsapp_inbound_image.json"))
    attachment = Attachment.objects.get()
    assert services.attachment_download(attachment_id=attachment.id) == "stored"
    assert [r.path for r in receiver.requests] == ["/v25.0/65463453", "/files/65463453"]
    assert all(
        r.headers["authorization"] == "Bearer EAAG-test-access-token" for r in receiver.requests
    )


@pytest.mark.django_db
def test_unusable_media_url_fails_the_attachment_only(client, organization):
    channel = f.twilio_channel(organization)
    f.post_twilio(client, channel, f.sample("twilio_inbound_mms.form"))  # MediaUrl0=cat.jpg
    attachment = Attachment.objects.order_by("provider_url").first()
    assert services.attachment_download(attachment_id=attachment.id) == "failed"
    attachment.refresh_from_db()
    assert attachment.status == "failed" and "cat.jpg" in attachment.error


@pytest.mark.django_db
def test_private_urls_from_the_api_are_not_fetched(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    api.post(
        "/api/v1/messages/inbound/",
        {
            "from": {"external_id": "x"},
            "text": "",
            "attachments": [{"url": "http://127.0.0.1:9/secret"}],
        },
        format="json",
    )
    attachment = Attachment.objects.get()
    assert services.attachment_download(attachment_id=attachment.id) == "failed"


@pytest.mark.django_db
def test_demo_seed_is_idempotent():
    from apps.conversations.models import Message
    from apps.providers.demo import _DEMO_SENDERS, seed_demo
    from tests.factories import OrganizationFactory

    organization = OrganizationFactory(slug="demo")
    seed_demo(organization=organization)
    first = Message.objects.filter(organization=organization).count()
    seed_demo(organization=organization)
    assert ChannelConnection.objects.filter(organization=organization).count() == 2
    # One message per demo sender, and the second run adds none.
    assert first == len(_DEMO_SENDERS["demo"]) == 4
    assert Message.objects.filter(organization=organization).count() == first


def test_sends_sweep_is_scheduled():
    from apps.core.schedule import collect_beat_schedule

    entry = collect_beat_schedule()["providers.sends-sweep"]
    assert entry["task"] == "apps.providers.tasks.sends_sweep"
